"""Parameter checks shared by every room: each error names the parameter and the allowed range."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable


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


def check_widths(widths, name: str = "hidden") -> tuple[int, ...]:
    """A sequence of positive layer widths (an empty sequence means no hidden layer)."""
    if isinstance(widths, numbers.Integral) and not isinstance(widths, bool):
        widths = (widths,)
    try:
        widths = tuple(widths)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers, got {widths!r}") from None
    return tuple(check_int(w, f"{name}[{i}]", min_value=1) for i, w in enumerate(widths))


def _check_range(value, name, lo, hi, kind):
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise ValueError(f"{name} must be {kind} in [{lo_s}, {hi_s}], got {value}")
