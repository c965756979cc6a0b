"""``compare(a={...}, b={...})``: two playgrounds on the same data and seed, one Play button, overlaid margin
histograms and min / mean margin curves. A thin view of :class:`~marginlab.sessions.CompareSession`.

The two decision surfaces sit side by side when the page is wide enough and stack otherwise (the row
wraps; at 1280x800 with JupyterLab's file browser open they fit side by side). Clicking a sample on either
side selects the same sample on both (the data are the same) and shows each side's margin. The share panel
copies a link or the Python that rebuilds the comparison at the same step.
"""

from __future__ import annotations

import functools
import html

import numpy as np

from ..sessions._playground_data import corruption_kind
from ..sessions.compare import SIDES, CompareSession
from ._common import LinkedApp, Messages, open_app, share_html
from ._playground_workshop import certificate_html
from ._plotly import FigureWidget

__all__ = ["Compare", "compare"]

SIDE_COLORS = {"a": "#4C78A8", "b": "#F58518"}
FIG_W, FIG_H = 405, 380


def compare(a: dict | None = None, b: dict | None = None, **common) -> Compare:
    """Two playgrounds side by side: ``a`` and ``b`` are the settings where they differ (e.g.
    ``compare(a={"loss": "cross_entropy"}, b={"loss": "hinge"})``, ``b={"label_corruption": 20}``,
    ``a={"hidden": "4"}, b={"hidden": "64"}``); ``common`` are the settings both share (data, seed, ...)."""
    return Compare(a=a, b=b, **common)


class Compare(LinkedApp):
    """The A/B comparison app (see the module docstring); ``app.session`` is its :class:`CompareSession`."""

    _session_cls = CompareSession

    def __init__(self, settings=None, *, a=None, b=None, interval_ms: int = 200, background: bool = True,
                 grid_resolution: int = 50, device="cpu", session: CompareSession | None = None, **common):
        import ipywidgets as W

        self.session = session if session is not None else CompareSession(
            settings, a=a, b=b, background=background, grid_resolution=grid_resolution, device=device,
            **common)
        self._frontend_seen = False
        self._build(W, interval_ms)
        self.widget = self._layout(W)
        self._redraw_all()

    # -- state -----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, **defaults) -> Compare:
        """The comparison a link asked for (Voila's ``QUERY_STRING``), else a new one with ``defaults``."""
        return open_app(cls, defaults)

    def state(self) -> dict:
        return self.session.state()

    def code(self) -> str:
        return self.session.code()

    @property
    def error(self) -> str | None:
        return self.session.error

    # -- construction ----------------------------------------------------------------------------------------
    def _build(self, W, interval_ms):
        from ..viz import histograms as vh
        from ..viz import playground as vp

        self.play = W.Play(value=0, min=0, max=10**9, step=1, interval=int(interval_ms), show_repeat=False)
        self.play.observe(self._on_play, names="value")
        self.play.observe(self._on_playing, names="playing")
        button = functools.partial(W.Button, layout=W.Layout(width="auto"))
        self.step_button = button(description="step", icon="step-forward")
        self.step_button.on_click(lambda _: self.tick())
        self.reset_button = button(description="reset", icon="refresh")
        self.reset_button.on_click(lambda _: self.reset())
        self.status = W.HTML()
        self.status.add_class("marginlab-compare-status")
        self.messages = Messages(W.HTML(layout=W.Layout(min_height="20px")))
        self.share = W.HTML()
        self.titles = {k: W.HTML() for k in SIDES}
        self.infos = {k: W.HTML(layout=W.Layout(width=f"{FIG_W}px", min_height="40px")) for k in SIDES}
        self.surfaces = {}
        for k in SIDES:
            fig = FigureWidget(self._surface_figure(k))
            fig.add_class(f"marginlab-compare-{k}")
            for tr in fig.data:
                if tr.name in ("train", "train (corrupted)", "test"):
                    tr.on_click(self._on_point_click)
            self.surfaces[k] = fig
        self._trace = {name: i for i, name in enumerate(vp.SURFACE_TRACES)}
        groups = self.session.histogram_groups()
        colors = {f"{k.upper()} train": SIDE_COLORS[k] for k in SIDES}
        self.histogram = FigureWidget(vh.margin_histogram(groups, colors=colors, width=FIG_W, height=260,
                                                          title="Training margins, A and B overlaid"))
        epochs, curves = self.session.margin_curves()
        self.curves = FigureWidget(vp.margin_curves([], {k: [] for k in curves}, width=FIG_W, height=260,
                                                    title="Min and mean training margin"))
        for tr in self.curves.data:
            side, stat = tr.name.split()
            tr.line = {"color": SIDE_COLORS[side.lower()], "dash": "dot" if stat == "min" else "solid"}
        for f in (self.histogram, self.curves):
            f.add_class("marginlab-compare-figure")

    def _layout(self, W):
        top = W.HBox([self.play, self.step_button, self.reset_button, self.status],
                     layout=W.Layout(align_items="center", flex_flow="row wrap"))
        cols = [W.VBox([self.titles[k], self.surfaces[k], self.infos[k]],
                       layout=W.Layout(margin="0 8px 0 0", flex="0 0 auto")) for k in SIDES]
        row = functools.partial(W.HBox, layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        root = W.VBox([top, self.messages.widget, row(cols), row([self.histogram, self.curves]), self.share],
                      layout=W.Layout(max_width="100%"))
        root.add_class("marginlab-app")
        root.add_class("marginlab-compare")
        return root

    # -- actions -------------------------------------------------------------------------------------------
    def _act(self, action: str, fn, *args):
        out = None
        with self.session.guard(action):
            out = fn(*args)
        error = self.session.error
        if error and self.play.playing:
            self.play.playing = False
            self.session.error = error
        self.messages.show(error)
        if not self._frontend_seen:
            from ._display import sync_figures

            sync_figures(self.widget)
        return out

    def _on_play(self, change):
        self._frontend_seen = True
        if self.play.playing:
            self.tick()

    def _on_playing(self, change):
        if self._act("pause", self.session.set_playing, bool(change["new"])):
            self._draw_margins()
            self._draw_selection()
        if not change["new"]:
            self._draw_share()

    def tick(self):
        """One tick of both sides (what Play and the step button call)."""
        if self.session.diverged:
            return None
        return self._act("training", self._tick)

    def _tick(self):
        from ..viz import playground as vp

        ticks = self.session.tick()
        for k in SIDES:
            ses = self.session.sides[k]
            with self.surfaces[k].batch_update():
                data = self.surfaces[k].data
                data[self._trace["regions"]].update(vp.regions_props(ses.grid, ticks[k].logits, ses.n_classes,
                                                                     discrete=ses.settings.discretize))
                data[self._trace["boundary"]].update(vp.boundary_props(ses.grid, ticks[k].logits))
        self._draw_status()
        if any(t.margins for t in ticks.values()):
            self._draw_margins()
            self._draw_selection()
            self._draw_share()
        return ticks

    def reset(self):
        self._act("reset", self._reset)

    def _reset(self):
        self.play.playing = False
        self.session.reset()
        self._redraw_all()

    def select(self, split: str, row: int):
        """Select sample ``row`` of ``split`` on both sides."""
        self._act("selection", self._select, split, row)

    def _select(self, split, row):
        self.session.select(split, row)
        self._draw_selection()
        self._draw_share()

    def _on_point_click(self, trace, points, state=None):
        if not points.point_inds:
            return
        self._frontend_seen = True
        split = "test" if trace.name == "test" else "train"
        self.select(split, int(np.asarray(trace.customdata)[points.point_inds[0]]))

    # -- drawing -------------------------------------------------------------------------------------------
    def _surface_figure(self, k):
        from ..viz import playground as vp

        ses = self.session.sides[k]
        return vp.decision_surface(ses.grid, ses.grid_logits(), n_classes=ses.n_classes, train_X=ses.train.X,
                                   train_y=ses.train.y, train_kind=corruption_kind(ses.train),
                                   test_X=ses.test.X, test_y=ses.test.y, width=FIG_W, height=FIG_H,
                                   discrete=ses.settings.discretize, uirevision=f"compare-{k}")

    def _redraw_all(self):
        from ._playground_workshop import replace_figure

        for k in SIDES:
            replace_figure(self.surfaces[k], self._surface_figure(k))
            color = SIDE_COLORS[k]
            self.titles[k].value = (f"<b style='color:{color}'>{html.escape(self.session.labels[k])}</b>")
        self._draw_status()
        self._draw_margins()
        self._draw_selection()
        self._draw_share()

    def _draw_status(self):
        parts = []
        for k in SIDES:
            t = self.session.sides[k].trainer
            h = t.history
            acc = f" · train acc {h.acc[-1]:.3f}" if h.acc else ""
            vacc = f" · test acc {h.val_acc[-1]:.3f}" if h.val_acc else ""
            parts.append(f"<b style='color:{SIDE_COLORS[k]}'>{k.upper()}</b> epoch {t.epoch}{acc}{vacc}")
        step = self.session.sides["a"].trainer.global_step
        self.status.value = f"&nbsp;step {step} · " + " · ".join(parts)

    def _draw_margins(self):
        from ..viz import histograms as vh

        with self.histogram.batch_update():
            for tr, props in zip(self.histogram.data, vh.histogram_props(self.session.histogram_groups())):
                tr.update(props)
        epochs, curves = self.session.margin_curves()
        with self.curves.batch_update():
            for tr in self.curves.data:
                tr.update(x=np.asarray(epochs[tr.name], np.float32),
                          y=np.asarray(curves[tr.name], np.float32))

    def _draw_selection(self):
        from ..viz import playground as vp

        sel = self.session.selection
        for k in SIDES:
            data, empty = self.surfaces[k].data, {"x": np.zeros(0), "y": np.zeros(0)}
            s = self.session.sides[k].selection if sel is not None else None
            with self.surfaces[k].batch_update():
                if s is None:
                    for name in ("selected", "segment", "boundary_point"):
                        data[self._trace[name]].update(empty)
                    self.infos[k].value = "<i>Click a sample (on either side) to compare its margins.</i>"
                    continue
                x, p = s["x"][None], s["point"][None]
                data[self._trace["selected"]].update(vp.marker_props(x))
                data[self._trace["segment"]].update(vp.segment_props(x, p))
                data[self._trace["boundary_point"]].update(vp.marker_props(p))
            self.infos[k].value = (f"<span class='marginlab-compare-info'>{s['split']} #{s['row']}: margin "
                                   f"<b>{s['margin']:.4f}</b> ({html.escape(s['status'])})</span><br>"
                                   + certificate_html(s.get("certificate")))

    def _draw_share(self):
        self.share.value = share_html(self.session.share_query(), self.session.code())
