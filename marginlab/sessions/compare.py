"""``CompareSession``: two playgrounds on the same data and seed, trained side by side (A/B comparison).

The common settings (a :class:`PlaygroundSettings`) define the data, the seed and everything both sides
share; ``a`` and ``b`` are the settings where the sides differ (``a={"loss": "cross_entropy"}, b={"loss":
"hinge"}``, ``b={"label_corruption": 20}``, ``a={"hidden": "4"}, b={"hidden": "64"}``). The data-defining
settings and the seed cannot differ: the point of the comparison is that only the named change does. Each
side is a full :class:`PlaygroundSession`; one :meth:`tick` advances both, and the margins of both are kept
over training for overlaid histograms and min / mean margin curves. The state holds both sides' states, so
a link or "copy as code" rebuilds the comparison at the same step.
"""

from __future__ import annotations

import pprint

import numpy as np

from .base import STATE_VERSION, Session, SessionError
from .playground_settings import PlaygroundSettings

__all__ = ["CompareSession", "SHARED_SETTINGS", "SIDES"]

SIDES = ("a", "b")
# what both sides must share: the data (and how it is drawn and split) and the seed of the initial weights
SHARED_SETTINGS = ("dataset", "n_samples", "noise", "test_percent", "n_classes", "seed", "data_seed")
VIEW_ONLY = ("steps_per_tick", "margin_every", "representation")


def _check_side(diff, name: str) -> dict:
    if diff is None:
        return {}
    if not isinstance(diff, dict):
        raise SessionError(f"{name} must be a dict of playground settings, e.g. {name}={{'loss': 'hinge'}}; "
                           f"got {type(diff).__name__}")
    known = set(PlaygroundSettings.__dataclass_fields__)
    unknown = sorted(set(diff) - known)
    if unknown:
        raise SessionError(f"{name} names unknown setting(s) {', '.join(unknown)}; known: "
                           f"{', '.join(sorted(known))}")
    shared = sorted(set(diff) & set(SHARED_SETTINGS + VIEW_ONLY))
    if shared:
        raise SessionError(f"{name} sets {', '.join(shared)}, which both sides share (the same data and "
                           f"seed, one Play button): pass {shared[0]}=... to compare() itself")
    return dict(diff)


def side_label(diff: dict, name: str) -> str:
    """``"A: loss=hinge"``: the side's letter and what it changes."""
    what = ", ".join(f"{k}={v}" for k, v in diff.items()) or "common settings"
    return f"{name.upper()}: {what}"


class CompareSession(Session):
    """Two :class:`PlaygroundSession` sides (``sides["a"]``, ``sides["b"]``) on the same data and seed.
    ``CompareSession(a={...}, b={...}, **common_settings)``; see the module docstring."""

    app = "compare"
    Settings = PlaygroundSettings

    def __init__(self, settings=None, *, a=None, b=None, background: bool = True, grid_resolution: int = 50,
                 device="cpu", sides=None, on_progress=None, **common):
        self.diffs = {"a": _check_side(a, "a"), "b": _check_side(b, "b")}
        super().__init__(settings, on_progress=on_progress, **common)
        self.options = {"background": background, "grid_resolution": grid_resolution, "device": device}
        self.sides = sides if sides is not None else {k: self._build(k) for k in SIDES}
        self.selection = None

    def _build(self, side: str):
        from .playground import PlaygroundSession

        try:
            return PlaygroundSession(self.settings.replace(**self.diffs[side]), **self.options)
        except (TypeError, ValueError) as exc:
            raise SessionError(f"{side}: {exc}") from None

    @property
    def labels(self) -> dict[str, str]:
        return {k: side_label(self.diffs[k], k) for k in SIDES}

    # -- settings ------------------------------------------------------------------------------------------
    def update(self, **changes):
        """Change common settings: each side takes those it does not set itself (its own ``a`` / ``b``
        values win). Validated on both sides before either changes."""
        for k in SIDES:  # check first, so a value one side refuses changes neither side nor the common ones
            mine = {n: v for n, v in changes.items() if n not in self.diffs[k]}
            try:
                self.sides[k].settings.replace(**mine).validate()
            except TypeError:
                pass  # an unknown name: the common update below names it
        new = super().update(**changes)
        for k in SIDES:
            self.sides[k].update(**{n: v for n, v in changes.items() if n not in self.diffs[k]})
        return new

    def set_side(self, side: str, **changes):
        """Change what side ``side`` ("a" or "b") sets itself (its run restarts unless the change is live)."""
        if side not in SIDES:
            raise SessionError(f"side must be 'a' or 'b' (got {side!r})")
        diff = _check_side({**self.diffs[side], **changes}, side)
        try:
            self.sides[side].update(**changes)
        except (TypeError, ValueError) as exc:
            raise SessionError(f"{side}: {exc}") from None
        self.diffs[side] = diff
        return self.sides[side].settings

    # -- training --------------------------------------------------------------------------------------------
    def tick(self) -> dict:
        """One Play tick of both sides: ``{"a": Tick, "b": Tick}``."""
        return {k: self.sides[k].tick() for k in SIDES}

    def step(self, n_steps: int | None = None) -> None:
        for k in SIDES:
            self.sides[k].step(n_steps)

    def reset(self) -> None:
        for k in SIDES:
            self.sides[k].reset()
        self.selection = None

    def set_playing(self, playing: bool) -> bool:
        """Both sides; pausing solves their exact margins (True when either did)."""
        return any([self.sides[k].set_playing(playing) for k in SIDES])

    @property
    def diverged(self) -> bool:
        return any(self.sides[k].diverged for k in SIDES)

    # -- margins -------------------------------------------------------------------------------------------
    def histogram_groups(self, split: str = "train") -> dict:
        """The ``split`` margins (signed) of each side, keyed by side label: the overlaid histogram."""
        if split not in ("train", "test"):
            raise SessionError(f"split must be 'train' or 'test' (got {split!r})")
        out = {}
        for k in SIDES:
            g = self.sides[k].histogram_groups()
            m = np.concatenate([g["train clean"], g["train corrupted"]]) if split == "train" else g["test"]
            out[f"{k.upper()} {split}"] = m
        return out

    def margin_curves(self) -> tuple[dict, dict]:
        """``(epochs, curves)``: per side the epochs of its margin measurements and the training set's min and
        mean margin there, keyed ``"A min"``, ``"A mean"``, ``"B min"``, ``"B mean"``."""
        epochs, curves = {}, {}
        for k in SIDES:
            log = self.sides[k].margin_log
            for stat in ("min", "mean"):
                epochs[f"{k.upper()} {stat}"] = list(log["epoch"])
                curves[f"{k.upper()} {stat}"] = list(log[f"train {stat}"])
        return epochs, curves

    def select(self, split: str, row: int) -> dict:
        """Select the same sample on both sides (the data are the same): ``{"a": selection, "b": ...}``."""
        out = {k: self.sides[k].select(split, row) for k in SIDES}
        self.selection = {"split": split, "row": int(row)}
        return out

    # -- state ---------------------------------------------------------------------------------------------
    def _state_extra(self) -> dict:
        return {"a": self.diffs["a"], "b": self.diffs["b"],
                "sides": {k: self.sides[k].state() for k in SIDES}}

    @classmethod
    def from_state(cls, state: dict, *, replay: bool = True, **kwargs) -> CompareSession:
        """Rebuild both sides from :meth:`state` (``replay=True`` retrains each to its step)."""
        from .playground import PlaygroundSession

        if not isinstance(state, dict):
            raise SessionError(f"state must be a dict, got {type(state).__name__}")
        if state.get("app") != cls.app:
            raise SessionError(f"state is for the {state.get('app')!r} app, not {cls.app!r}")
        if state.get("version", STATE_VERSION) > STATE_VERSION:
            raise SessionError(f"state version {state['version']} is newer than this marginlab understands")
        sides_state = state.get("sides")
        if not isinstance(sides_state, dict) or set(sides_state) != set(SIDES):
            raise SessionError("state.sides must hold the states of sides 'a' and 'b'")
        opts = {k: kwargs[k] for k in ("background", "grid_resolution", "device") if k in kwargs}
        sides = {k: PlaygroundSession.from_state(sides_state[k], replay=replay, **opts) for k in SIDES}
        try:
            settings = PlaygroundSettings(**state.get("settings", {}))
        except TypeError as exc:
            raise SessionError(f"state.settings: {exc}") from None
        return cls(settings, a=state.get("a"), b=state.get("b"), sides=sides, **opts)

    def code(self) -> str:
        """Python that rebuilds this comparison in any notebook cell."""
        untouched = all(not s.events and s.trainer.global_step == 0 for s in self.sides.values())
        if untouched:
            default = PlaygroundSettings()
            args = [f"a={self.diffs['a']!r}", f"b={self.diffs['b']!r}"]
            args += [f"{k}={getattr(self.settings, k)!r}" for k in PlaygroundSettings.__dataclass_fields__
                     if getattr(self.settings, k) != getattr(default, k)]
            return f"from marginlab.widgets import compare\n\napp = compare({', '.join(args)})\napp"
        state = pprint.pformat(self.state(), width=100, sort_dicts=False)
        return (f"from marginlab.widgets import Compare\n\nstate = {state}\n"
                f"app = Compare.from_state(state)\napp")
