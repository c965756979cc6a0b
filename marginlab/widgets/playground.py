"""``Playground``: the live 2-D margin playground, a thin view of
:class:`~marginlab.sessions.PlaygroundSession`.

The session trains, solves and remembers; this view turns its results into ipywidgets and plotly
FigureWidget updates (through the pure builders of :mod:`marginlab.viz.playground`) and forwards clicks and
control changes back as calls. Training is driven by an ``ipywidgets.Play`` tick (:meth:`Playground.tick`):
each tick runs ``steps per tick`` minibatch steps and sends one ``batch_update`` per changed figure, so the
kernel stays free for clicks between ticks. Errors are shown inside the app, never raised into the page.
"""

from __future__ import annotations

import base64
import functools
import html
import os

import numpy as np

from ..sessions._playground_data import corruption_kind
from ..sessions.playground import CONTROL_NAMES, PlaygroundSession
from ..sessions.playground_settings import (
    CUSTOM,
    LOSS_CHOICES,
    OPTIMIZER_CHOICES,
    VIEW_SETTINGS,
    PlaygroundSettings,
    SettingsError,
)
from ._common import LinkedApp, Messages, apply_classroom, open_app, quiet_setter, share_html, show
from ._playground_workshop import WorkshopView, certificate_html, replace_figure, selection_html
from ._plotly import FigureWidget

__all__ = ["Playground", "PlaygroundSettings", "SettingsError", "LOSS_CHOICES", "OPTIMIZER_CHOICES"]

SECTIONS = {
    "Data": ("dataset", "n_samples", "noise", "test_percent", "n_classes", "label_corruption",
             "input_corruption", "show_test"),
    "Model": ("hidden", "activation", "dropout"),
    "Training": ("loss", "optimizer", "lr", "l1", "l2", "batch_size", "seed", "steps_per_tick",
                 "margin_every"),
    "View": ("discretize", "representation"),
}
LABELS = {"dataset": "dataset", "n_samples": "samples", "noise": "noise", "test_percent": "test %",
          "n_classes": "classes", "label_corruption": "label noise %", "input_corruption": "input noise %",
          "hidden": "hidden widths", "activation": "activation", "loss": "loss", "optimizer": "optimizer",
          "lr": "learning rate", "batch_size": "batch size", "seed": "seed", "steps_per_tick": "steps / tick",
          "margin_every": "margins every", "l1": "L1 rate", "l2": "L2 rate", "dropout": "dropout",
          "show_test": "show test data", "discretize": "discretize output",
          "representation": "representation"}
CHECKBOXES = ("show_test", "discretize")
NO_WIDGET = ("features", "data_seed")  # checkboxes of their own / a button
SLIDERS = {"noise": (0.0, 0.5, 0.01), "test_percent": (0, 90, 5), "n_classes": (2, 6, 1),
           "steps_per_tick": (1, 100, 1), "margin_every": (1, 20, 1), "dropout": (0.0, 0.9, 0.05)}
TEXTS = {"n_samples": "IntText", "label_corruption": "FloatText", "input_corruption": "FloatText",
         "lr": "FloatText", "batch_size": "IntText", "seed": "IntText", "l1": "FloatText", "l2": "FloatText"}
CONTROLS_WIDTH = 290
DESCRIPTION_WIDTH = "100px"


def _registry_choices(spec, registry) -> list[tuple[str, str]]:
    """Dropdown options: the named choices that exist, then any other registry entries (aliases left out)."""
    out = [(label, key) for label, key in spec if key in registry]
    seen = {registry[key] for _, key in out}
    for key, factory in registry.items():
        if key not in {k for _, k in spec} and factory not in seen:
            seen.add(factory)
            out.append((key.replace("_", " "), key))
    return out


class Playground(WorkshopView, LinkedApp):
    """The live 2-D margin playground. ``Playground(**settings)`` (see :class:`PlaygroundSettings`);
    ``data=(X, y)`` (arrays or a CSV path) for your own 2-D points; ``hide`` / ``lock`` name controls to hide
    or disable (classroom mode, e.g. ``hide=("optimizer",), lock=("dataset",)``). Display it as the last
    expression of a cell. :meth:`from_state` / :meth:`open` rebuild an app from its state or a link.

    Public steps (what the controls and plotly clicks call): :meth:`tick`, :meth:`set`, :meth:`reset`,
    :meth:`select`, :meth:`add_point`, :meth:`on_background_click`, :meth:`refresh_margins`; the session is
    ``app.session`` and ``app.error`` its last message (None when the last action succeeded)."""

    _session_cls = PlaygroundSession

    def __init__(self, settings: PlaygroundSettings | None = None, *, data=None, hide=(), lock=(),
                 device="auto", grid_resolution: int = 60, interval_ms: int = 150, live_max_iter: int = 20,
                 background: bool = True, session: PlaygroundSession | None = None, **overrides):
        import ipywidgets as W

        self.session = session if session is not None else PlaygroundSession(
            settings, data=data, hide=hide, lock=lock, device=device, grid_resolution=grid_resolution,
            live_max_iter=live_max_iter, background=background, **overrides)
        self._quiet = False
        self._frontend_seen = False
        self._invalid: str | None = None  # a control holding a value the session refused
        self._drawn_run = None
        self.controls = self._build_controls(W)
        self._build_actions(W, interval_ms)
        self._build_workshop(W)
        self._build_figures()
        self.widget = self._layout(W)
        self.actions.update(edit=self.edit_tools, regenerate=self.regen_button, layers=self.layers_box,
                            features=self.features_row)
        assert set(self.actions) <= set(CONTROL_NAMES)
        apply_classroom({**self.controls, **self.actions}, self.session.hide, self.session.lock)
        self._redraw_all()

    # -- rebuilding from a state or a link ------------------------------------------------------------------
    @classmethod
    def open(cls, **defaults) -> Playground:
        """The app a link asked for (Voila passes the page's query string to the kernel as ``QUERY_STRING``),
        else a new one with ``defaults``. A damaged link opens the defaults with the reason shown."""
        return open_app(cls, defaults)

    def state(self) -> dict:
        """The session's state (JSON types): settings, own data, added points, live changes, steps, selection,
        hidden and locked controls."""
        return self.session.state()

    def share_url(self, base: str) -> str:
        """``base`` (the app's address, e.g. a Voila URL of notebook 01) with this state as its query."""
        return f"{base.split('?')[0]}?{self.session.share_query()}"

    def code(self) -> str:
        """Python that rebuilds this app in any notebook cell."""
        return self.session.code()

    # -- the session's results, for convenience -----------------------------------------------------------
    @property
    def error(self) -> str | None:
        return self.session.error

    @property
    def settings(self) -> PlaygroundSettings:
        return self.session.settings

    # -- construction ---------------------------------------------------------------------------------------
    def _build_controls(self, W) -> dict:
        from .. import train
        from ..data import TOY_DATASETS
        from ..models.base import ACTIVATIONS

        style = {"description_width": DESCRIPTION_WIDTH}
        # the column's width less the widgets' own margins (a 100% wide text box overflows by its margin)
        lay = functools.partial(W.Layout, width=f"{CONTROLS_WIDTH - 6}px")
        custom = [("your data", CUSTOM)] if self.session.custom is not None else []
        options = {"dataset": [(d, d) for d in TOY_DATASETS] + custom,
                   "activation": list(ACTIVATIONS),
                   "loss": _registry_choices(LOSS_CHOICES, train.LOSSES),
                   "optimizer": _registry_choices(OPTIMIZER_CHOICES, train.OPTIMIZERS),
                   "representation": [("input", 0)]}
        c = {}
        for name in PlaygroundSettings.__dataclass_fields__:
            if name in NO_WIDGET:
                continue
            common = {"description": LABELS[name], "style": style, "layout": lay()}
            if name in CHECKBOXES:
                c[name] = W.Checkbox(description=LABELS[name], indent=False, layout=lay())
            elif name in options:
                c[name] = W.Dropdown(options=options[name], **common)
            elif name in SLIDERS:
                lo, hi, step = SLIDERS[name]
                cls = W.FloatSlider if isinstance(step, float) else W.IntSlider
                c[name] = cls(min=lo, max=hi, step=step, continuous_update=False, **common)
            elif name in TEXTS:
                c[name] = getattr(W, TEXTS[name])(continuous_update=False, **common)
            else:
                c[name] = W.Text(placeholder="e.g. 16, 16", continuous_update=False, **common)
        for name, w in c.items():
            w.observe(functools.partial(self._on_control, name), names="value")
        return c

    def _build_actions(self, W, interval_ms):
        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=int(interval_ms), show_repeat=False,
                           description="play")
        self.play.observe(self._on_play, names="value")
        self.play.observe(self._on_playing, names="playing")
        button = functools.partial(W.Button, layout=W.Layout(width="auto"))
        self.step_button = button(description="step", icon="step-forward")
        self.step_button.on_click(lambda _: self.tick())
        self.reset_button = button(description="reset", icon="refresh")
        self.reset_button.on_click(lambda _: self.reset())
        self.export_button = button(description="replay (HTML)", icon="download",
                                    tooltip="save this run as a standalone HTML replay (a handout)")
        self.export_button.on_click(lambda _: self.export_replay())
        self.status = W.HTML()
        self.message = W.HTML(layout=W.Layout(min_height="24px"))
        self.messages = Messages(self.message)
        self.info = W.HTML(layout=W.Layout(width="100%", min_height="44px"))
        self.info.add_class("marginlab-info")  # the selected sample's margin text (tests find it by this)
        self.share = W.HTML()
        self.download = W.HTML()
        self.add_class = W.ToggleButtons(options=[("0", 0), ("1", 1)], description="click adds",
                                         style={"button_width": "34px", "description_width": "70px"})
        self.show_estimates = {name: W.Checkbox(value=False, description=label, indent=False,
                                                layout=W.Layout(width="auto"))
                               for name, label in (("linearized", "linearized"), ("deepfool", "DeepFool"))}
        self.show_all = W.Checkbox(value=False, description="all training segments", indent=False,
                                   layout=W.Layout(width="auto"))
        for w in self.show_estimates.values():
            w.observe(lambda _ch: self._on_estimates(), names="value")
        self.show_all.observe(lambda _ch: self._draw_all_segments(), names="value")
        self.overlays = W.HBox([W.HTML("overlay:&nbsp;"), *self.show_estimates.values(), self.show_all],
                               layout=W.Layout(flex_flow="row wrap"))
        self.actions = {"play": self.play, "step": self.step_button, "reset": self.reset_button,
                        "add_points": self.add_class, "overlays": self.overlays, "share": self.share,
                        "export": self.export_button}

    def _build_figures(self):
        from ..viz import histograms as vh
        from ..viz import playground as vp

        self.surface = FigureWidget(self._surface_figure())  # the session's run: drawn once, at start
        self._drawn_run = self.session.run_id
        self._trace = {name: i for i, name in enumerate(vp.SURFACE_TRACES)}
        for name in ("train", "train_corrupted", "test"):
            self.surface.data[self._trace[name]].on_click(self.on_point_click)
        for name in ("regions", "unit"):
            self.surface.data[self._trace[name]].on_click(self._on_regions_click)
        self.curves = FigureWidget(vp.training_curves({}))
        self.histogram = FigureWidget(vh.margin_histogram({"train clean": [], "train corrupted": [],
                                                              "test": []}))
        self.margin_plot = FigureWidget(vp.margin_curves([], {"train min": [], "train mean": [],
                                                                 "test mean": []}))
        for f in (self.surface, self.curves, self.histogram, self.margin_plot):
            f.add_class("marginlab-playground-figure")

    def _layout(self, W):
        extra = {"Data": [self.regen_button], "Model": [self.features_row]}

        def section(title, names):
            rows = [W.HTML(f"<b>{title}</b>"), *(self.controls[n] for n in names), *extra.get(title, [])]
            return W.VBox(rows, layout=W.Layout(margin="0 0 6px 0"))

        left = W.VBox([section(t, names) for t, names in SECTIONS.items()] + [self.share, self.download],
                      layout=W.Layout(width=f"{CONTROLS_WIDTH}px", flex=f"0 0 {CONTROLS_WIDTH}px",
                                      margin="0 12px 0 0"))
        left.add_class("marginlab-controls")
        legend = W.HTML("<span style='font-size:11px'>○ clean · ✕ label-corrupted · ◇ input-corrupted · "
                        "faded: test · <span style='color:#FF7F0E'>○</span> margin not verified nearest · "
                        "click a sample for its nearest boundary point, click empty space to add a point, "
                        "shift-click (or the delete mode) deletes the nearest training point</span>")
        middle = W.VBox([self.surface, legend, self.add_class, self.edit_tools, self.overlays, self.info],
                        layout=W.Layout(width="510px", flex="0 0 510px", margin="0 12px 0 0"))
        right = W.VBox([self.curves, self.histogram, self.margin_plot, self.layers_box],
                       layout=W.Layout(flex="0 0 auto"))
        top = W.HBox([self.play, self.step_button, self.reset_button, self.export_button, self.status],
                     layout=W.Layout(align_items="center", flex_flow="row wrap"))
        # row wrap: on a narrow page the plots move below the controls instead of squeezing them
        body = W.HBox([left, middle, right], layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        root = W.VBox([top, self.message, body], layout=W.Layout(max_width="100%"))
        root.add_class("marginlab-app")
        return root

    def _sync_views(self):
        # Updates sent before any view exists are lost (Voila renders only after all cells ran), so until an
        # event from a live view arrives, keep the state a new view renders from in step as well.
        if not self._frontend_seen:
            from ._display import sync_figures

            sync_figures(self.widget)

    # -- actions (every user action runs through the session's one guard) -----------------------------------
    def _act(self, action: str, fn, *args, **kwargs):
        out = None
        with self.session.guard(action):
            out = fn(*args, **kwargs)
        error = self.session.error
        if error and self.play.playing:
            self.play.playing = False  # pausing is an action of its own: keep this one's message
            self.session.error = error
        self.messages.show(error)
        self._sync_views()
        return out

    def _on_control(self, name, change):
        if self._quiet:
            return
        self._act("", self._apply, {name: change["new"]})  # the message names the setting itself

    def set(self, **changes):
        """Change several settings at once (one restart; live ones apply to the running training)."""
        self._act("", self._apply, changes)

    def _apply(self, changes: dict):
        self._invalid = next(iter(changes))  # until the session accepts the value
        self.session.update(**changes)
        self._invalid = None
        if self.session.run_id != self._drawn_run:
            self._redraw_all()
        elif set(changes) & VIEW_SETTINGS:
            self._draw_view()
        self._show_controls()
        self._draw_share()

    def reset(self):
        """Rebuild data, model and trainer from the settings."""
        self._act("reset", self._reset)

    def _reset(self):
        self.play.playing = False
        self.session.reset()
        self._invalid = None
        self._redraw_all()

    def _on_play(self, change):
        self._frontend_seen = True
        if self.play.playing:
            self.tick()

    def _on_playing(self, change):
        if self._act("pause", self.session.set_playing, bool(change["new"])):
            self._draw_margin_panel()
            self._draw_selection()
            self._act("layers", self._draw_layers)
        if not change["new"]:
            self._draw_share()

    def tick(self):
        """One Play tick (what the timer and the step button call); does nothing while a control holds a
        value the session refused or the run diverged."""
        if self._invalid or self.session.diverged:
            return None
        return self._act("training", self._tick)

    def _tick(self):
        from ..viz import playground as vp

        r = self.session.tick()
        regions = vp.regions_props(self.session.grid, r.logits, self.session.n_classes,
                                   discrete=self.session.settings.discretize)
        boundary = vp.boundary_props(self.session.grid, r.logits)
        surf = self.surface.data
        # once training settles, regions and boundary stop moving (by more than a pixel): send nothing then
        z_same = np.array_equal(regions["z"], surf[self._trace["regions"]].z)
        old = surf[self._trace["boundary"]]
        tol = 2e-3 * (self.session.grid.x_range[1] - self.session.grid.x_range[0])
        b_same = len(old.x) == len(boundary["x"]) and bool(
            np.nanmax(np.abs(np.asarray(old.x, float) - boundary["x"]), initial=0) < tol
            and np.nanmax(np.abs(np.asarray(old.y, float) - boundary["y"]), initial=0) < tol)
        if not (z_same and b_same):
            with self.surface.batch_update():
                if not z_same:
                    surf[self._trace["regions"]].update(regions)
                surf[self._trace["boundary"]].update(boundary)
        self._draw_curves()
        self._draw_status()
        if r.margins:
            self._draw_margin_panel()
            self._draw_selection()
            self._draw_layers()
            self._draw_share()
        return r

    def refresh_margins(self, exact: bool = True):
        """Solve every margin now and redraw the margin panel and the selection."""
        self._act("margins", self._refresh_margins, exact)

    def _refresh_margins(self, exact):
        self.session.refresh_margins(exact=exact)
        self._draw_margin_panel()
        self._draw_selection()

    # -- clicks ---------------------------------------------------------------------------------------------
    def on_point_click(self, trace, points, state=None):
        """Plotly click callback of the sample traces: select the clicked sample."""
        if not points.point_inds:
            return  # plotly calls every trace's callback; only the clicked one gets indices
        self._frontend_seen = True
        split = "test" if trace.name == "test" else "train"
        row = int(np.asarray(trace.customdata)[points.point_inds[0]])
        x, y = float(points.xs[0]), float(points.ys[0])
        shift = bool(getattr(state, "shift", False))
        if self._edit_click(x, y, shift, row if split == "train" else None):
            return  # shift-click, brush or move: an edit, not a selection
        self.select(split, row)

    def _on_regions_click(self, trace, points, state=None):
        if not points.point_inds:
            return
        self._frontend_seen = True
        if points.xs and points.ys:
            x, y = float(points.xs[0]), float(points.ys[0])
        else:
            i, j = points.point_inds[0]
            x, y = float(self.session.grid.xs[j]), float(self.session.grid.ys[i])
        if self._edit_click(x, y, bool(getattr(state, "shift", False)), None):
            return
        self.on_background_click(x, y)

    def on_background_click(self, x: float, y: float):
        """A click on empty space: add a point of the chosen class there (unless adding is locked)."""
        if "add_points" in self.session.lock:
            return
        self.add_point(x, y, self.add_class.value)

    def add_point(self, x: float, y: float, cls: int | None = None):
        """Add a clean training sample of class ``cls`` (default: the chosen one) at (x, y)."""
        self._act("add point", self._add_point, x, y, self.add_class.value if cls is None else cls)

    def _add_point(self, x, y, cls):
        self.session.add_point(x, y, cls)
        self._draw_points()
        self._draw_margin_panel(curves=False)
        self._draw_share()
        self.messages.note(f"Added a class-{int(cls)} point at ({x:.2f}, {y:.2f}); {len(self.session.train)} "
                           "training samples.")

    def select(self, split: str, row: int):
        """Select sample ``row`` of ``split``: draw its nearest boundary point and the segment to it."""
        self._act("selection", self._select, split, row)
        return self.session.selection

    def _select(self, split, row):
        self.session.select(split, row)
        self._draw_selection()
        self._draw_share()

    def _on_estimates(self):
        names = tuple(n for n, box in self.show_estimates.items() if box.value)
        self._act("estimates", lambda: (self.session.set_estimates(names), self._draw_selection()))

    def export_replay(self, path="playground-replay.html"):
        """Save the recorded run as a standalone HTML replay at ``path`` and offer it as a download."""
        return self._act("export", self._export, path)

    def _export(self, path):
        out = self.session.export_replay(path)
        light = self.session.export_replay(str(path) + ".cdn.part", include_plotlyjs="cdn")
        data = base64.b64encode(light.read_bytes()).decode()
        light.unlink()
        self.download.value = (f"<a download='{html.escape(os.path.basename(str(path)))}' "
                               f"href='data:text/html;base64,{data}'>⬇ download the replay</a>")
        n = len(self.session.recorder.frames)
        self.messages.note(f"Wrote {out} ({n} frames); open it in any browser.")
        return out

    # -- drawing --------------------------------------------------------------------------------------------
    def _set_controls(self):
        s = self.session.settings
        with quiet_setter(self):
            for name, w in self.controls.items():
                if name == "representation":
                    continue  # its options follow the hidden layers (_set_workshop_controls)
                value = getattr(s, name)
                if name in SLIDERS and value > w.max:
                    w.max = value
                w.value = value
        self._set_workshop_controls()

    def _show_controls(self):
        s = self.session.settings
        for name, w in self.controls.items():
            show(w, s.applies(name) and name not in self.session.hide)

    def _redraw_all(self):
        ses = self.session
        self._set_controls()
        self._show_controls()
        with quiet_setter(self):
            self.add_class.options = [(n, k) for k, n in enumerate(ses.class_names)]
        if self._drawn_run != ses.run_id:  # a new run: new data, grid and classes
            replace_figure(self.surface, self._surface_figure())
            self._drawn_run = ses.run_id
        self._draw_curves()
        self._draw_status()
        self._draw_margin_panel()
        self._draw_selection()
        self._draw_view()
        self._draw_strip()
        self._draw_share()

    def _surface_figure(self):
        from ..viz import playground as vp

        ses = self.session
        train, test = ses.train, ses.test
        return vp.decision_surface(ses.grid, ses.grid_logits(), n_classes=ses.n_classes, train_X=train.X,
                                   train_y=train.y, train_kind=corruption_kind(train), test_X=test.X,
                                   test_y=test.y, discrete=ses.settings.discretize)

    def _draw_points(self):
        from ..viz import playground as vp

        train, K = self.session.train, self.session.n_classes
        kind = corruption_kind(train)
        clean, rows = kind == 0, np.arange(len(train))
        with self.surface.batch_update():
            self.surface.data[self._trace["train"]].update(
                vp.points_props(train.X[clean], train.y[clean], K, rows=rows[clean], hover_prefix="train "))
            self.surface.data[self._trace["train_corrupted"]].update(
                vp.points_props(train.X[~clean], train.y[~clean], K, rows=rows[~clean], kind=kind[~clean],
                                hover_prefix="train (corrupted) "))

    def _draw_curves(self):
        from ..viz import playground as vp

        with self.curves.batch_update():
            for tr, props in zip(self.curves.data, vp.curves_props(self.session.trainer.history)):
                tr.update(props)

    def _draw_status(self):
        t = self.session.trainer
        h = t.history
        acc = f" · train acc {h.acc[-1]:.3f}" if h.acc else ""
        vacc = f" · test acc {h.val_acc[-1]:.3f}" if h.val_acc else ""
        loss = f" · loss {h.loss[-1]:.4f}" if h.loss else ""
        self.status.value = (f"&nbsp;<b>epoch {t.epoch}</b> · step {t.global_step}{loss}{acc}{vacc}"
                             f" · <span style='color:#777'>{t.device.type}</span>")

    def _draw_margin_panel(self, curves: bool = True):
        from ..viz import histograms as vh
        from ..viz import playground as vp

        ses = self.session
        with self.histogram.batch_update():
            for tr, props in zip(self.histogram.data, vh.histogram_props(ses.histogram_groups())):
                tr.update(props)
        unver = ses.unverified()
        pts = np.concatenate([ses.train.X[unver["train"][0]], ses.test.X[unver["test"][0]]])
        words = np.concatenate([unver["train"][1], unver["test"][1]])
        self.surface.data[self._trace["unverified"]].update(vp.unverified_props(pts, words))
        self._draw_all_segments()
        if curves:
            log = ses.margin_log
            with self.margin_plot.batch_update():
                props = vp.margin_curves_props(log["epoch"], {k: v for k, v in log.items() if k != "epoch"})
                for tr, p in zip(self.margin_plot.data, props):
                    tr.update(p)

    def _draw_all_segments(self):
        from ..viz import playground as vp

        ses = self.session
        tr = self.surface.data[self._trace["all_segments"]]
        if self.show_all.value and ses.margins is not None:
            n = len(ses.train)
            tr.update(vp.segment_props(ses.train.X, ses.margins.point[:n], dtype=np.float32))
        else:
            tr.update({"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32)})

    def _draw_selection(self):
        from ..viz import playground as vp

        sel = self.session.selection
        empty = {"x": np.zeros(0), "y": np.zeros(0)}
        data = self.surface.data
        with self.surface.batch_update():
            if sel is None:
                for name in ("selected", "segment", "boundary_point", "linearized", "deepfool"):
                    data[self._trace[name]].update(empty)
                self.info.value = "<i>Click a sample to see its nearest boundary point.</i>"
                return
            x, p = sel["x"][None], sel["point"][None]
            data[self._trace["selected"]].update(vp.marker_props(x))
            data[self._trace["segment"]].update(vp.segment_props(x, p))
            data[self._trace["boundary_point"]].update(vp.marker_props(p))
            for name in ("linearized", "deepfool"):
                est = sel["estimates"].get(name)
                data[self._trace[name]].update(vp.segment_props(x, est["point"][None]) if est else empty)
        self.info.value = selection_html(sel, self.session.class_names) + "<br>" + certificate_html(
            sel.get("certificate"))

    def _draw_share(self):
        self.share.value = share_html(self.session.share_query(), self.session.code())

