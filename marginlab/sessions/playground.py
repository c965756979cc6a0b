"""``PlaygroundSession``: the 2-D margin playground without widgets.

It holds the truth of the app (settings, data, model, trainer, margins, selection) and returns results; the
view (:class:`marginlab.widgets.Playground`) draws them. Train a small MLP on a toy 2-D dataset or your own
points (:meth:`tick`), solve every sample's exact margin (the batched solver; beside the ticks while playing,
:mod:`._refresh`), select a sample for its nearest boundary point (:meth:`select`), add points
(:meth:`add_point`). The state (settings, own data, added points, live changes, training steps) round-trips
through JSON and a URL (:meth:`state`, :meth:`from_state`, :meth:`share_query`), replaying the run exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._playground_data import append_point, combine_corruption, corruption_kind, own_dataset
from ._playground_edit import EditingMixin
from ._playground_layers import LayersMixin, certificate
from ._refresh import MarginRefresh
from ._replay import Recorder
from ._threads import one_thread as _one_thread
from .base import Session, SessionError
from .playground_settings import (
    CUSTOM,
    LIVE_SETTINGS,
    MAX_SAMPLES,
    VIEW_SETTINGS,
    PlaygroundSettings,
    SettingsError,
)

__all__ = ["PlaygroundSession", "PlaygroundSettings", "SettingsError", "Tick", "CONTROL_NAMES"]

ESTIMATES = ("linearized", "deepfool")
DIVERGED = "Training diverged (the loss is not finite): lower the learning rate and press Reset."
# what a classroom link may hide or lock: every setting and the app's own controls
CONTROL_NAMES = tuple(PlaygroundSettings.__dataclass_fields__) + (
    "play", "step", "reset", "add_points", "overlays", "share", "export", "edit", "regenerate", "layers")


def check_controls(names, what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(dict.fromkeys(str(n) for n in names))
    bad = [n for n in names if n not in CONTROL_NAMES]
    if bad:
        raise SessionError(f"{what} names unknown control(s) {', '.join(bad)}; known: "
                           f"{', '.join(CONTROL_NAMES)}")
    return names


@dataclass
class Tick:
    """What one Play tick changed: the grid ``logits`` (regions and boundary), whether the margins were
    published (``margins``) and the selection re-solved (``selection``), and the tick's duration."""

    logits: np.ndarray | None
    margins: bool = False
    selection: bool = False
    seconds: float = 0.0


class PlaygroundSession(EditingMixin, LayersMixin, Session):
    """The playground's state and pipeline. ``PlaygroundSession(**settings)``; ``data=(X, y)`` (arrays or a
    CSV path) trains on your own 2-D points; ``hide`` / ``lock`` name controls a view hides or disables
    (classroom mode, kept in the state). ``live_max_iter`` bounds the solver while playing; pausing
    (:meth:`set_playing`) re-solves exactly. ``background=True`` solves the margin refreshes of a playing
    app on a worker thread (ticks stay short); otherwise each refresh completes inside its tick."""

    app = "playground"
    Settings = PlaygroundSettings

    def __init__(self, settings=None, *, data=None, hide=(), lock=(), device="cpu", grid_resolution: int = 60,
                 live_max_iter: int = 20, background: bool = True, max_frames: int = 120, on_progress=None,
                 **changes):
        self.custom = None if data is None else own_dataset(data)
        if self.custom is not None and (settings is None or settings.dataset != CUSTOM):
            changes.setdefault("dataset", CUSTOM)
        self.hide, self.lock = check_controls(hide, "hide"), check_controls(lock, "lock")
        self.device, self.grid_resolution = device, int(grid_resolution)
        self.live_max_iter = int(live_max_iter)
        self.background = bool(background)
        self._pool = None
        self.recorder = Recorder(max_frames)
        self.run_id = 0
        self.trainer = None
        self.playing = False
        self.estimates: tuple[str, ...] = ()
        self.selection: dict | None = None
        super().__init__(settings, on_progress=on_progress, **changes)
        self.reset()

    # -- settings ------------------------------------------------------------------------------------------
    def _checked(self, settings):
        settings = super()._checked(settings)
        if settings.dataset == CUSTOM and getattr(self, "custom", None) is None:
            raise SettingsError("Dataset 'custom' needs your data: Playground(data=(X, y)).")
        return settings

    @property
    def n_classes(self) -> int:
        return self.custom.n_classes if self.settings.dataset == CUSTOM else self.settings.classes

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.settings.dataset == CUSTOM:
            return tuple(self.custom.class_names)
        return tuple(str(k) for k in range(self.n_classes))

    def update(self, **changes):
        """Change settings: live ones (learning rate, batch size, steps per tick, margin refresh) apply to the
        running training; any other restarts it. On an error nothing changes and the run goes on."""
        old = self.settings
        new = super().update(**changes)
        changed = {k for k in changes if getattr(new, k) != getattr(old, k)}
        if self.trainer is not None and changed <= LIVE_SETTINGS | VIEW_SETTINGS:
            self._apply_live(new)
            live = changed & LIVE_SETTINGS
            if live:
                self.events.append([self.trainer.global_step, "set", {k: getattr(new, k) for k in live}])
            if "representation" in changed:
                self.layer_view = None
            return new
        try:
            self.reset()
        except Exception:
            self._settings = old
            raise
        return new

    def _apply_live(self, s):
        for g in self.trainer.optimizer.param_groups:
            g["lr"] = float(s.lr)
        self.trainer.batch_size = int(s.batch_size)
        self.trainer.l1, self.trainer.l2 = float(s.l1), float(s.l2)
        self.model.set_dropout(float(s.dropout))

    def regenerate_data(self):
        """New data from the next data seed (the model's seed stays): TensorFlow Playground's "regenerate"
        button. Restarts the run."""
        if self.settings.dataset == CUSTOM:
            raise SettingsError("Regenerate data draws a new toy dataset; your own data stay as they are "
                                "(only the train/test split would change: change the seed for that).")
        return self.update(data_seed=self.settings.effective_data_seed + 1)

    # -- building a run ------------------------------------------------------------------------------------
    def _data(self, s):
        from ..data import load_toy
        from ..data.preprocess import train_test_split

        if s.dataset == CUSTOM:
            train, test = train_test_split(self.custom, test_size=s.test_percent / 100,
                                           seed=s.effective_data_seed)
        else:
            train, test = load_toy(s.dataset, s.n_samples, noise=s.noise, test_size=s.test_percent / 100,
                                   n_classes=s.classes if s.dataset in ("blobs", "spirals") else None,
                                   seed=s.effective_data_seed)
        return combine_corruption(train, s.label_corruption, s.input_corruption, s.effective_data_seed), test

    @_one_thread
    def reset(self):
        """Rebuild data, model and trainer from the settings and solve every margin; a failure keeps the
        previous run."""
        import torch

        from .. import train as mtrain
        from ..models import MLP
        from ..viz.common import make_grid

        s = self.settings
        train, test = self._data(s)
        K = self.n_classes
        model = MLP(2, s.hidden_widths(), K, activation=s.activation, seed=s.seed, dropout=float(s.dropout),
                    features=None if s.plain_input else s.feature_names())
        trainer = mtrain.Trainer(model, train, val=test if len(test) else None, loss=s.loss,
                                 optimizer=s.optimizer, lr=float(s.lr), batch_size=int(s.batch_size),
                                 seed=s.seed, device=self.device, l1=float(s.l1), l2=float(s.l2))
        # commit only once everything is built, so a failure above keeps the previous run usable
        self.train, self.test, self.trainer, self.model = train, test, trainer, trainer.model
        self.grid = make_grid(np.concatenate([train.X, test.X]), resolution=self.grid_resolution)
        self._grid_t = torch.as_tensor(self.grid.points, device=trainer.device)
        self.run_id += 1
        self.version = self.data_version = 0  # weights / data changes within this run
        self.start = {k: getattr(s, k) for k in LIVE_SETTINGS}
        self.events: list[list] = []
        self.margins, self.margins_exact, self.margins_version = None, False, -1
        self.margin_log = {"epoch": [], "train min": [], "train mean": [], "test mean": []}
        self.refresh, self.diverged, self.tick_count = None, False, 0
        self.selection = None
        self.layer_view, self.move_row = None, None
        self.recorder.clear()
        self.refresh_margins(exact=True)
        self._record(self.grid_logits())

    # -- training ------------------------------------------------------------------------------------------
    @_one_thread
    def grid_logits(self) -> np.ndarray:
        """The model's logits at every grid point (ny*nx, K)."""
        import torch

        with torch.no_grad():
            return self.model(self._grid_t).double().cpu().numpy()

    @_one_thread
    def step(self, n_steps: int | None = None) -> None:
        """``n_steps`` (default: steps per tick) minibatch steps; a diverged run stops with a message."""
        if self.diverged:
            raise SettingsError(DIVERGED)
        if len(np.unique(self.train.y)) < 2:
            raise SettingsError("Training needs points of at least two classes: paint some with the brush "
                                "(or press Reset for the dataset's points).")
        self._train_steps(int(n_steps or self.settings.steps_per_tick))
        self.version += 1
        h = self.trainer.history
        if h.loss and not np.isfinite(h.loss[-1]):
            self.diverged = True
            raise SettingsError(DIVERGED)

    def _train_steps(self, n: int) -> None:
        """``n`` trainer steps. With dropout, each step's masks come from torch's global generator, seeded
        per step from (seed, step) inside a forked RNG state: a replayed run (which steps in other chunk
        sizes) draws the same masks, so a link rebuilds the same weights."""
        import torch

        if not self.settings.dropout:
            self.trainer.step(n)
            return
        with torch.random.fork_rng(devices=[]):
            for _ in range(n):
                torch.manual_seed(self.settings.seed * 1_000_003 + self.trainer.global_step)
                self.trainer.step(1)

    @_one_thread
    def tick(self) -> Tick:
        """One Play tick: train ``steps_per_tick`` steps, then, every ``margin_every`` ticks, start a margin
        refresh. While playing (and ``background``), the refresh is solved on a worker thread and published
        at the first tick after it is done, so no tick stalls; otherwise it completes in the same tick."""
        t0 = time.perf_counter()
        self.step()
        logits = self.grid_logits()
        self.tick_count += 1
        if self.refresh is None and self.tick_count % self.settings.margin_every == 0:
            self._start_refresh(exact=not self.playing)
        published = self._advance_refresh()  # publishing re-solves the selection from the new margins
        self._record(logits)
        return Tick(logits=logits, margins=published, selection=published and self.selection is not None,
                    seconds=time.perf_counter() - t0)

    def set_playing(self, playing: bool) -> bool:
        """Tell the session whether Play runs. Pausing solves the exact margins at the current weights
        (returns True when it did), so a paused app shows exact nearest boundary points."""
        self.playing = bool(playing)
        if self.playing or self.trainer is None or self.diverged:
            return False
        if self.margins_exact and self.margins_version == self.version:
            return False
        self.refresh_margins(exact=True)
        return True

    # -- margins -------------------------------------------------------------------------------------------
    def _all_xy(self):
        return np.concatenate([self.train.X, self.test.X]), np.concatenate([self.train.y, self.test.y])

    def _options(self, exact: bool) -> dict:
        return {} if exact else {"max_iter": self.live_max_iter}

    def _start_refresh(self, exact: bool):
        X, y = self._all_xy()
        job = MarginRefresh(self.model, X, y, version=self.version, data_version=self.data_version,
                            epoch=self.epoch, exact=exact, options=self._options(exact))
        if self.playing and self.background:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="marginlab-margins")
            job.start(self._pool)
        self.refresh = job

    def _advance_refresh(self) -> bool:
        """Publish the refresh under way if it is done (solving it now if it runs inline)."""
        job = self.refresh
        if job is None or not job.done:
            return False
        self.refresh = None
        res = job.result()
        if job.data_version != self.data_version:  # points were added meanwhile: rows no longer line up
            return False
        self._publish(res, job.version, job.epoch, job.exact)
        return True

    def wait_refresh(self, timeout: float | None = 60) -> bool:
        """Wait for a margin refresh under way and publish it (headless use and tests)."""
        if self.refresh is None:
            return False
        self.refresh.result(timeout)
        return self._advance_refresh()

    @property
    def epoch(self) -> float:
        return self.trainer.global_step / max(self.trainer.steps_per_epoch, 1)

    @_one_thread
    def refresh_margins(self, exact: bool = True):
        """Solve every train and test sample's margin now (batched solver, signed: misclassified samples
        negative); ``exact=False`` bounds the solver's iterations by ``live_max_iter``."""
        X, y = self._all_xy()
        job = MarginRefresh(self.model, X, y, version=self.version, data_version=self.data_version,
                            epoch=self.epoch, exact=exact, options=self._options(exact))
        self.refresh = None  # a refresh under way is superseded
        res = job.solve()
        self._publish(res, job.version, job.epoch, exact)
        return res

    def _publish(self, res, version: int, epoch: float, exact: bool):
        self.margins, self.margins_version, self.margins_exact = res, version, exact
        n = len(self.train)
        m = res.margin

        def stat(f, v):
            v = v[np.isfinite(v)]
            return float(f(v)) if v.size else float("nan")

        self.margin_log["epoch"].append(float(epoch))
        self.margin_log["train min"].append(stat(np.min, m[:n]))
        self.margin_log["train mean"].append(stat(np.mean, m[:n]))
        self.margin_log["test mean"].append(stat(np.mean, m[n:]))
        if self.selection is not None:
            self._solve_selection()

    def histogram_groups(self) -> dict:
        """The margins shown in the histogram, by group (signed: misclassified samples are negative)."""
        n = len(self.train)
        m = np.full(n + len(self.test), np.nan) if self.margins is None else self.margins.margin
        corrupted = self.train.corrupted
        return {"train clean": m[:n][~corrupted], "train corrupted": m[:n][corrupted], "test": m[n:]}

    def unverified(self) -> dict:
        """Rows of the samples with a margin whose status is not ``converged`` (a boundary point was found,
        but is not known to be the nearest: drawn marked), per split, with the status words:
        ``{"train": (rows, words), "test": (rows, words)}``. Samples without any boundary point (an untrained
        model predicting one class everywhere) have no margin; the histogram counts them as unsolved."""
        out = {}
        n = len(self.train)
        status = np.asarray([] if self.margins is None else self.margins.status, dtype=object)
        finite = np.zeros(0, bool) if self.margins is None else np.isfinite(self.margins.margin)
        for split, lo, hi in (("train", 0, n), ("test", n, len(status))):
            st = status[lo:hi]
            rows = np.flatnonzero((st != "converged") & finite[lo:hi])
            out[split] = (rows, st[rows].astype(str))
        return out

    # -- points --------------------------------------------------------------------------------------------
    @_one_thread
    def add_point(self, x: float, y: float, cls: int) -> int:
        """Add a clean training sample of class ``cls`` at (x, y); training continues with it. Only its own
        margin is solved (the other margins stay valid at unchanged weights). Returns its row."""
        from ..margins import MarginResult, compute_margins

        cls = int(cls)
        if not 0 <= cls < self.n_classes:
            raise SettingsError(f"Class must be between 0 and {self.n_classes - 1} (got {cls}).")
        if not (np.isfinite(x) and np.isfinite(y)):
            raise SettingsError("The clicked position is not a finite point.")
        if len(self.train) >= 2 * MAX_SAMPLES:
            raise SettingsError(f"At most {2 * MAX_SAMPLES} training samples; press Reset to start over.")
        self.train = append_point(self.train, float(x), float(y), cls)
        self.trainer.set_train_data(self.train)
        self.data_version += 1
        self.events.append([self.trainer.global_step, "point", [float(x), float(y), cls]])
        n_old = len(self.train) - 1
        if self.margins is not None:
            new = compute_margins(self.model, self.train.X[-1:], method="batched", y=self.train.y[-1:],
                                  signed=True, **self._options(self.margins_exact))
            m = self.margins
            self.margins = MarginResult.concat([m.subset(np.arange(n_old)), new,
                                                m.subset(np.arange(n_old, len(m)))])
        return n_old

    # -- selection -----------------------------------------------------------------------------------------
    def select(self, split: str, row: int) -> dict:
        """Select sample ``row`` of ``split`` ("train" or "test"): its nearest boundary point (solved, or
        taken from the margins when they are current), margin, status and the chosen estimates."""
        ds = {"train": getattr(self, "train", None), "test": getattr(self, "test", None)}.get(split)
        if ds is None:
            raise SettingsError(f"split must be 'train' or 'test' (got {split!r}).")
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= row < len(ds):
            raise SettingsError(f"No {split} sample #{row} (there are {len(ds)}).")
        self.selection = {"split": split, "row": int(row)}
        return self._solve_selection()

    def set_estimates(self, names) -> dict | None:
        """Which estimates (``linearized``, ``deepfool``) to solve beside the selected sample's exact
        point."""
        names = tuple(names)
        bad = [n for n in names if n not in ESTIMATES]
        if bad:
            raise SessionError(f"estimates must be among {', '.join(ESTIMATES)}, got {', '.join(bad)}")
        self.estimates = names
        return None if self.selection is None else self._solve_selection()

    @_one_thread
    def _solve_selection(self) -> dict:
        from ..margins import compute_margins

        sel = self.selection
        ds = self.train if sel["split"] == "train" else self.test
        xr, label = ds.X[sel["row"]][None], int(ds.y[sel["row"]])
        if self.margins is not None and self.margins_version == self.version:
            k = sel["row"] + (0 if sel["split"] == "train" else len(self.train))
            res, exact = self.margins.subset([k]), self.margins_exact  # solved already: a click costs nothing
        else:  # while playing a bounded solve keeps the kernel responsive; pausing re-solves exactly
            exact = not self.playing
            res = compute_margins(self.model, xr, method="batched", y=[label], **self._options(exact))
        estimates = {}
        for name in self.estimates:
            est = compute_margins(self.model, xr, method=name, y=[label])
            estimates[name] = {"point": est.point[0], "margin": float(abs(est.margin[0]))}
        sel.update(x=ds.X[sel["row"]].astype(np.float64), label=label, pred=int(res.pred[0]),
                   margin=float(abs(res.margin[0])), point=res.point[0],
                   boundary_class=int(res.boundary_class[0]), residual=float(res.residual[0]),
                   converged=bool(res.converged[0]), status=str(res.status[0]),
                   verified=bool(res.verified[0]), agree=int(res.agree[0]), exact=exact, estimates=estimates,
                   certificate=certificate(self.model, xr, label, self.settings) if exact else None)
        return sel

    # -- state ---------------------------------------------------------------------------------------------
    def _state_extra(self) -> dict:
        start = {k: v for k, v in self.start.items() if getattr(self.settings, k) != v}
        out = {"step": int(self.trainer.global_step), "start": start, "events": self.events,
               "hide": list(self.hide), "lock": list(self.lock)}
        if self.custom is not None:
            out["data"] = {"X": self.custom.X.astype(float).tolist(), "y": self.custom.y.tolist(),
                           "classes": list(self.custom.class_names)}
        if self.selection is not None:
            out["selection"] = {"split": self.selection["split"], "row": self.selection["row"]}
        return out

    @classmethod
    def from_state(cls, state: dict, *, replay: bool = True, **kwargs) -> PlaygroundSession:
        """Rebuild a session from :meth:`state`. ``replay=True`` retrains to the same step, adding points
        and applying live changes where they happened (deterministic: the same weights); ``False`` gives the
        setup at step 0 with the added points in place."""
        if not isinstance(state, dict):
            raise SessionError(f"state must be a dict, got {type(state).__name__}")
        data = state.get("data")
        if data is not None and "data" not in kwargs:
            classes = np.asarray(data.get("classes", []), dtype=object)
            y = np.asarray(data["y"], dtype=np.int64)
            kwargs["data"] = (np.asarray(data["X"], dtype=np.float64), classes[y] if len(classes) else y)
        kwargs.setdefault("hide", tuple(state.get("hide", ())))
        kwargs.setdefault("lock", tuple(state.get("lock", ())))
        settings = dict(state.get("settings", {}))
        if replay:
            settings.update(state.get("start", {}))
        session = super().from_state({**state, "settings": settings}, **kwargs)
        session._replay(state, replay)
        return session

    def _replay(self, state: dict, replay: bool) -> None:
        events = state.get("events", [])
        for step, kind, payload in events:
            if replay and step > self.trainer.global_step:
                self.step(step - self.trainer.global_step)
            if kind == "point":
                self.add_point(*payload)
            elif kind in self.EDIT_EVENTS:
                self.EDIT_EVENTS[kind](self, *payload)
            elif kind == "set" and replay:
                self.update(**payload)
        final = {k: v for k, v in state.get("settings", {}).items() if k in LIVE_SETTINGS}
        if final:
            self.update(**final)
        target = int(state.get("step", 0)) if replay else 0
        if target > self.trainer.global_step:
            self.step(target - self.trainer.global_step)
        if self.version:
            self.refresh_margins(exact=True)
        sel = state.get("selection")
        if sel:
            self.select(sel["split"], int(sel["row"]))

    def code(self) -> str:
        """Python that rebuilds this app in any notebook cell (plain arguments when the setup is only
        settings, else the state as a literal)."""
        import pprint  # a Python literal (JSON's null/true/false are not Python)

        default = PlaygroundSettings()
        if self.custom is None and not self.events and self.trainer.global_step == 0:
            args = [f"{k}={getattr(self.settings, k)!r}" for k in PlaygroundSettings.__dataclass_fields__
                    if getattr(self.settings, k) != getattr(default, k)]
            args += [f"{k}={tuple(v)!r}" for k, v in (("hide", self.hide), ("lock", self.lock)) if v]
            return f"from marginlab.widgets import Playground\n\napp = Playground({', '.join(args)})\napp"
        state = pprint.pformat(self.state(), width=100, sort_dicts=False)
        return (f"from marginlab.widgets import Playground\n\nstate = {state}\n"
                f"app = Playground.from_state(state)\napp")

    # -- replay --------------------------------------------------------------------------------------------
    def _record(self, logits) -> None:
        h = self.trainer.history
        last = (lambda v: float(v[-1]) if len(v) else float("nan"))
        frame = {"step": int(self.trainer.global_step), "epoch": round(self.epoch, 3), "logits": logits,
                 "hist": {k: np.asarray(v, np.float32) for k, v in self.histogram_groups().items()},
                 "loss": last(h.loss), "acc": last(h.acc), "test_acc": last(h.val_acc)}

        def data():
            return {"train_X": self.train.X.copy(), "train_y": self.train.y.copy(),
                    "train_kind": corruption_kind(self.train), "test_X": self.test.X, "test_y": self.test.y}

        self.recorder.capture(frame, self.data_version, data)

    def export_replay(self, path, *, include_plotlyjs=True, title: str | None = None):
        """Write the recorded run as a standalone HTML file (plotly frames and a slider: class regions,
        boundary, samples, margin histogram), viewable in any browser without a kernel. Atomic write."""
        from .._files import atomic_write
        from ..viz.replay import replay_figure

        if len(self.recorder.frames) < 1:
            raise SessionError("nothing recorded yet: press Play or Step first")
        fig = replay_figure(self.recorder.frames, self.recorder.datasets, self.grid, n_classes=self.n_classes,
                            class_names=self.class_names, title=title or self._title())
        html = fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True, auto_play=False)
        return atomic_write(path, lambda f: f.write(html), binary=False)

    def _title(self) -> str:
        s = self.settings
        data = "your data" if s.dataset == CUSTOM else s.dataset
        return f"{data} · hidden {s.hidden or 'none'} · {s.activation} · {s.loss} · {s.optimizer} lr {s.lr:g}"
