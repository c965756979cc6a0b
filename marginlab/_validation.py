"""Parameter checks shared by every room: each error names the parameter and the allowed range.

Two layers, one vocabulary:

- ``check_*`` functions check one value now (``check_int(n, "n_samples", min_value=1)``);
- constraint objects (:class:`Int`, :class:`Real`, :class:`Choice`, :class:`Bool`, :class:`Text`,
  :class:`Mapping`, :class:`ListOf`, :class:`Nullable`, :class:`Table`) declare a parameter once, as
  scikit-learn's ``_parameter_constraints`` do; calling one, ``constraint(value, name)``, checks ``value`` and
  returns it normalized. A :class:`Table` declares a JSON object key by key (default and constraint) plus
  named cross-field rules, and generates the error paths (``spec.margins.n_samples``) as it descends.

:func:`check_options` checks a dict of keyword options against the signature of the callee that will get
them, so a misspelt option is reported before any work, with the allowed names.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import numbers
import re
from collections.abc import Callable, Iterable


# -- one value --------------------------------------------------------------------------------------
def check_int(value, name: str, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Return ``value`` as int or raise ``ValueError``/``TypeError`` naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    _check_range(value, name, min_value, max_value, "an integer")
    return value


def check_float(value, name: str, *, min_value: float | None = None, max_value: float | None = None,
                min_inclusive: bool = True, max_inclusive: bool = True) -> float:
    """Return ``value`` as float, finite and inside the given range, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo_ok = min_value is None or (value >= min_value if min_inclusive else value > min_value)
    hi_ok = max_value is None or (value <= max_value if max_inclusive else value < max_value)
    if not (lo_ok and hi_ok):
        lo = "-inf" if min_value is None else f"{min_value:g}"
        hi = "inf" if max_value is None else f"{max_value:g}"
        lb = "[" if (min_value is not None and min_inclusive) else "("
        rb = "]" if (max_value is not None and max_inclusive) else ")"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {value:g}")
    return value


def check_fraction(value, name: str) -> float:
    """A fraction in the closed interval [0, 1]."""
    return check_float(value, name, min_value=0.0, max_value=1.0)


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value.lower()


def check_widths(widths, name: str = "hidden", *, min_layers: int = 0, max_layers: int | None = None,
                 max_width: int | None = None) -> tuple[int, ...]:
    """Layer widths from a sequence, a single integer or text (``"16, 16"``, ``"16 16"``, ``"16;16"``): a
    tuple of integers in [1, ``max_width``], between ``min_layers`` and ``max_layers`` of them (an empty
    tuple means no hidden layer). The one width parser of the package (CLI, apps, models)."""
    if isinstance(widths, str):
        parts = [p for p in re.split(r"[\s,;]+", widths) if p]
        try:
            widths = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"{name} must be integers separated by commas (e.g. '64, 64'), got "
                             f"{widths!r}") from None
    elif isinstance(widths, numbers.Integral) and not isinstance(widths, bool):
        widths = (widths,)
    try:
        widths = tuple(widths)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < min_layers or (max_layers is not None and len(widths) > max_layers):
        hi = "inf" if max_layers is None else max_layers
        raise ValueError(f"{name} must list between {min_layers} and {hi} layer widths, got {len(widths)}")
    return tuple(check_int(w, f"{name}[{i}]", min_value=1, max_value=max_width) for i, w in enumerate(widths))


def _check_range(value, name, lo, hi, kind):
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise ValueError(f"{name} must be {kind} in [{lo_s}, {hi_s}], got {value}")


# -- options of a callee ----------------------------------------------------------------------------
def accepted_options(callee, *, skip: Iterable[str] = ()) -> list[str] | None:
    """The keyword names ``callee`` (a function or a class) accepts, less ``skip``; ``None`` when it takes
    ``**kwargs`` (any name may be right, so none can be called wrong)."""
    skip = set(skip)
    names = []
    for p in inspect.signature(callee).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) or p.name in skip:
            continue
        names.append(p.name)
    return names


def check_options(options, name: str, callee, *, owner: str, skip: Iterable[str] = ()) -> dict:
    """Raise unless ``options`` is a dict whose keys ``callee`` accepts (see :func:`accepted_options`); the
    error names ``<name>.<key>``, the ``owner`` (e.g. ``margin method 'batched'``) and the allowed names."""
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be an object (dict) of options for {owner}, got {options!r}")
    allowed = accepted_options(callee, skip=skip)
    if allowed is None:
        return options
    unknown = [k for k in options if k not in allowed]
    if unknown:
        keys = ", ".join(f"{name}.{k}" for k in unknown)
        verb = "is not an option" if len(unknown) == 1 else "are not options"
        raise ValueError(f"{keys} {verb} of {owner} (allowed: {', '.join(allowed) or 'none'})")
    return options


# -- declared constraints ---------------------------------------------------------------------------
class Constraint:
    """A declared parameter constraint: ``constraint(value, name)`` returns the checked value."""

    def __call__(self, value, name: str):  # pragma: no cover - abstract
        raise NotImplementedError


class Int(Constraint):
    """An integer in [lo, hi] (either end open-ended when None)."""

    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def __call__(self, value, name):
        return check_int(value, name, min_value=self.lo, max_value=self.hi)


class Real(Constraint):
    """A finite real number in the interval from ``lo`` to ``hi`` (``closed``: "both", "left", "right",
    "neither"). The value is kept as given (an integer stays an integer, so a spec's JSON and fingerprint do
    not change) unless ``cast=float``."""

    def __init__(self, lo: float | None = None, hi: float | None = None, *, closed: str = "both",
                 cast: Callable | None = None):
        self.lo, self.hi, self.closed, self.cast = lo, hi, closed, cast

    def __call__(self, value, name):
        check_float(value, name, min_value=self.lo, max_value=self.hi,
                    min_inclusive=self.closed in ("both", "left"),
                    max_inclusive=self.closed in ("both", "right"))
        return value if self.cast is None else self.cast(value)


class Choice(Constraint):
    """One of ``options`` (case-insensitive, returned lower-case). ``options`` may be a function returning
    them, so a registry is read when a value is checked, not when the table is declared."""

    def __init__(self, options):
        self.options = options

    def __call__(self, value, name):
        options = self.options() if callable(self.options) else self.options
        return check_choice(value, name, options)


class OfType(Constraint):
    """A value of one type, kept as is; subclasses set ``kind`` and the ``words`` messages use for it."""

    kind, words = object, "a value"

    def __call__(self, value, name):
        if not isinstance(value, self.kind):
            raise TypeError(f"{name} must be {self.words}, got {value!r}")
        return value


class Bool(OfType):
    """true or false (JSON booleans: 0 and 1 are not)."""

    kind, words = bool, "true or false"


class Mapping(OfType):
    """A JSON object (dict) whose content another rule checks (e.g. options against their callee)."""

    kind, words = dict, "an object (dict)"


class Text(Constraint):
    """A string; ``nonempty`` after stripping, and without any character of ``forbid``."""

    def __init__(self, *, nonempty: bool = False, forbid: str = "", strip: bool = False):
        self.nonempty, self.forbid, self.strip = nonempty, forbid, strip

    def __call__(self, value, name):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
        bad = [c for c in self.forbid if c in value]
        if (self.nonempty and not value.strip()) or bad:
            shown = ", ".join(repr(c) for c in self.forbid)
            rule = "a non-empty string" if self.nonempty else "a string"
            without = f" without {shown}" if self.forbid else ""
            raise ValueError(f"{name} must be {rule}{without}, got {value!r}")
        return value.strip() if self.strip else value


class Nullable(Constraint):
    """``None`` or a value ``inner`` accepts; with a ``default``, ``None`` stands for that default."""

    _NONE = object()

    def __init__(self, inner: Constraint, *, default=_NONE):
        self.inner, self.default = inner, default

    def __call__(self, value, name):
        if value is None:
            return None if self.default is self._NONE else self.inner(copy.deepcopy(self.default), name)
        return self.inner(value, name)


class ListOf(Constraint):
    """A list of values ``item`` accepts (errors name ``name[i]``), at least ``min_len`` long (1 unless
    ``empty``), without duplicates when ``unique``."""

    def __init__(self, item: Constraint, *, empty: bool = False, unique: bool = False, min_len: int = 1):
        self.item, self.unique = item, unique
        self.min_len = 0 if empty else min_len

    def __call__(self, value, name):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise TypeError(f"{name} must be a list, got {value!r}")
        value = [self.item(v, f"{name}[{i}]") for i, v in enumerate(value)]
        if len(value) < self.min_len:
            need = "must not be empty" if self.min_len == 1 else f"must have at least {self.min_len} entries"
            raise ValueError(f"{name} {need}, got {value!r}")
        if self.unique:
            check_unique(value, name)
        return value


def check_unique(values, name: str) -> None:
    keys = [json.dumps(v, sort_keys=True) for v in values]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"{name} has duplicate entries {', '.join(dup)}: every entry must be distinct")


class Table(Constraint):
    """A JSON object declared key by key: ``keys`` maps each key to ``(default, constraint)``; missing keys
    get (a copy of) their default, unknown keys are rejected with the allowed ones, each value is checked as
    ``<name>.<key>``, then every cross-field ``rule(obj, name)`` runs in order on the filled object (a rule
    raises naming the fields involved, or fills in a value that depends on others). ``None`` stands for an
    empty object. ``fill=False`` checks the same way but returns the object as given (defaults not written
    out), for entries whose stored form must stay as the user wrote it."""

    def __init__(self, keys: dict, *, rules: Iterable[Callable] = (), fill: bool = True):
        self.keys, self.rules, self.fill = keys, tuple(rules), fill

    @property
    def defaults(self) -> dict:
        return {k: copy.deepcopy(d) for k, (d, _) in self.keys.items()}

    def __call__(self, value, name):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise TypeError(f"{name} must be an object (dict), got {type(value).__name__}")
        unknown = sorted(set(value) - set(self.keys))
        if unknown:
            raise ValueError(f"{name}: unknown key(s) {', '.join(map(repr, unknown))} "
                             f"(allowed: {', '.join(sorted(self.keys))})")
        out = {}
        for key, (default, constraint) in self.keys.items():
            raw = copy.deepcopy(value[key]) if key in value else copy.deepcopy(default)
            out[key] = constraint(raw, f"{name}.{key}") if constraint is not None else raw
        for rule in self.rules:
            rule(out, name)
        return out if self.fill else copy.deepcopy(value)
