"""``MarginExplorer``: the margin explorer, a thin view of :class:`~marginlab.sessions.ExplorerSession`.

The session trains or loads the model, solves the margins, embeds and remembers; this view turns what it
returns into plotly FigureWidgets (through :mod:`marginlab.viz`) and ipywidgets, and forwards control changes,
clicks, range selections and exports back as calls. Errors are shown inside the app, never raised.
"""

from __future__ import annotations

import base64
import functools
import html

import numpy as np

from ..sessions._explorer_store import explorer_cache_dir
from ..sessions.explorer import COLOR_BY, ExplorerSession, ExplorerSettings
from . import _plotly  # noqa: F401 - first: nbformat loads lazily (start-up)
from ._common import AppView, open_app, quiet_setter, share_html, show
from ._explorer_layout import EMBED_WIDTH, ExplorerLayout, details_html
from ._explorer_tools import ExplorerToolsView

__all__ = ["MarginExplorer", "ExplorerSettings", "explorer_cache_dir", "COLOR_BY"]

CERT_COLORS = {"certified": "#2a7a2a", "bracket only": "#F58518", "not checked": "#9D9D9D"}

# setting -> (label, widget kind, width in px); the two views' controls are built per side
class MarginExplorer(ExplorerToolsView, ExplorerLayout, AppView):
    """The margin explorer app. Display it in a notebook cell.

    Keyword arguments are :class:`ExplorerSettings` (``hidden``, ``epochs``, ``corruption``, ``fraction``,
    ``n_samples``, ``method``, ``embeddings``, ``layers`` ...); ``data`` is ``"auto"`` / ``"full"`` (MNIST)
    or your own ``(X, y)``; ``model`` any ``torch.nn.Module`` classifier to explore instead of training one;
    ``image_shape`` ``(h, w)``, ``"auto"`` or None (no image panels); ``run=True`` runs the pipeline now.
    ``cache_dir``, ``root``, ``chunk_size``, ``umap_process``, ``method_options``: see
    :class:`~marginlab.sessions.ExplorerSession`. The session is ``app.session``; ``app.error`` its last
    message."""

    def __init__(
        self,
        *,
        data="auto",
        model=None,
        image_shape="auto",
        root=None,
        cache_dir=None,
        chunk_size: int = 250,
        umap_process: bool = True,
        method_options: dict | None = None,
        run: bool = False,
        session: ExplorerSession | None = None,
        **settings,
    ):
        import ipywidgets as W

        if session is None:
            own = None if isinstance(data, str) else data
            if own is None:
                settings["data_source"] = data
            session = ExplorerSession(
                model=model,
                data=own,
                image_shape=image_shape,
                root=root,
                cache_dir=cache_dir,
                chunk_size=chunk_size,
                umap_process=umap_process,
                method_options=method_options,
                **settings,
            )
        self.session = session
        self.session.on_progress = self._on_progress
        self._quiet = False
        self._frontend_seen = False
        self._invalid: str | None = None
        self._lasso_pending: dict = {}
        self._build_controls(W)
        self._build_views(W)
        self._build_details(W)
        self._build_histogram(W)
        self._build_tools(W)
        self.widget = self._layout(W)
        self._show_controls()
        self._draw_share()
        if run:
            self.run()

    @classmethod
    def from_state(cls, state: dict, *, run: bool = True, **kwargs) -> MarginExplorer:
        """The app of :meth:`state` (pass your own ``model=`` / ``data=`` again if it used them)."""
        from ..sessions.explorer import ExplorerSession as S

        keys = (
            "model",
            "data",
            "image_shape",
            "root",
            "cache_dir",
            "chunk_size",
            "umap_process",
            "method_options",
        )
        session = S.from_state(state, run=False, **{k: kwargs.pop(k) for k in keys if k in kwargs})
        app = cls(session=session, **kwargs)
        if run:
            app.run()
            if state.get("highlight"):
                app.select_range(*state["highlight"])
            if state.get("selected") is not None:
                app.select(int(state["selected"]))
            app._act("restore", app._replay_tools, state)
        return app

    def _replay_tools(self, state):
        self.session._replay_tools(state)
        self._update_marks()
        if self.session.neighbour_rows is not None:
            self.neighbours(**self.session.neighbour_settings)

    @classmethod
    def open(cls, **defaults) -> MarginExplorer:
        """The app a link asked for (under Voila, see :meth:`Playground.open`), else ``cls(**defaults)``; a
        linked setup runs at once (from the cache when it was run before)."""
        keep = {k: defaults[k] for k in ("cache_dir", "root", "umap_process") if k in defaults}
        return open_app(cls, defaults, **keep)

    def state(self) -> dict:
        return self.session.state()

    def share_url(self, base: str) -> str:
        return f"{base.split('?')[0]}?{self.session.share_query()}"

    def code(self) -> str:
        """Python that rebuilds this app in any notebook cell."""
        import json

        extra = "" if self.session.custom_model is None else ", model=model, data=(X, y)"
        return (
            "from marginlab.widgets import MarginExplorer\n\nstate = "
            + json.dumps(self.state(), indent=1)
            + f"\napp = MarginExplorer.from_state(state{extra})\napp"
        )

    @property
    def error(self) -> str | None:
        return self.session.error

    @property
    def settings(self) -> ExplorerSettings:
        return self.session.settings


    # -- actions (all through the session's one guard) -------------------------------------------------------
    def _act(self, action: str, fn, *args, **kwargs):
        out = None
        with self.session.guard(action):
            out = fn(*args, **kwargs)
        self.messages.show(self.session.error)
        if self.session.error:
            self.w_status.value = ""
        self._sync_views()
        return out

    def _sync_views(self):
        # Updates sent before any view exists are lost (Voila renders only after all cells ran, e.g. after the
        # notebook's own select(0)): until a click from a live view arrives, keep the state views render from.
        if not self._frontend_seen:
            from ._display import sync_figures

            sync_figures(self.widget)

    def _on_progress(self, fraction, message):
        self.w_progress.value = int(round(100 * fraction))
        self.w_status.value = html.escape(message)

    def _on_control(self, name, change):
        if self._quiet:
            return
        value = change["new"]
        if name == "n_train":
            value = int(value) or None if isinstance(value, (int, np.integer)) else value
        elif name == "model_path":
            value = value.strip() or None
        self._act("", self._apply, {name: value})

    def _apply(self, changes):
        self._invalid = next(iter(changes))
        self.session.update(**changes)
        self._invalid = None
        self._show_controls()
        if "correct_only" in changes and self.session.result is not None:
            self._redraw_histogram()
        self._draw_share()

    def _on_view(self, name, side, change):
        if self._quiet:
            return
        values = list(getattr(self.session.settings, name))
        values[side] = change["new"]
        self._act(f"embedding ({'left' if side == 0 else 'right'})", self._apply_view, name, tuple(values))

    def _apply_view(self, name, values):
        self.session.update(**{name: values})
        if self.session.result is not None:
            for side in range(2):
                self._redraw_embedding(side)
        self._draw_share()

    def update_embedding(self, side: int, *, method=None, layer=None):
        """Change view ``side``'s embedding method and/or layer (recomputed, cached), then redraw it."""
        s = self.session.settings
        emb, lay = list(s.embeddings), list(s.layers)
        emb[side] = method or emb[side]
        lay[side] = layer or lay[side]
        self._act(
            f"embedding ({'left' if side == 0 else 'right'})", self._update_views, tuple(emb), tuple(lay)
        )

    def _update_views(self, emb, lay):
        self.session.update(embeddings=emb, layers=lay)
        self._sync_view_controls()
        for side in range(2):
            self._redraw_embedding(side)

    def run(self):
        """Train or load the model, compute (or load) the margins, embed, draw. The button."""
        if self._invalid:
            self.messages.error(f"fix {self._invalid} first (its value was refused)")
            return None
        self.w_progress.value = 0
        return self._act("run", self._run)

    def _run(self):
        timings = self.session.run()
        ses = self.session
        self._sync_view_controls()
        self._show_controls()
        for side in range(2):
            self._redraw_embedding(side)
        self._setup_histogram()
        self._draw_details(None)
        self._reset_tool_views()
        acc = float(np.mean(ses.result.pred == ses.train_data.y[ses.rows]))
        cached = ", ".join(k for k, v in ses.from_cache.items() if v)
        not_conv = int(np.sum(np.asarray(ses.result.status) != "converged"))
        self.w_status.value = html.escape(
            f"{len(ses.rows)} samples, train acc on them {acc:.3f}; {timings['total']:.1f} s"
            + (f" (from cache: {cached})" if cached else "")
            + (f"; {not_conv} not converged" if not_conv else "")
        )
        self._draw_share()
        return timings

    # -- drawing ---------------------------------------------------------------------------------------------
    def _show_controls(self):
        s, custom = self.session.settings, self.session.custom_model is not None
        for name, w in self.controls.items():
            w.disabled = not s.applies(name, custom_model=custom)
            if name in ("n_train", "data_source", "model_path"):
                show(w, s.applies(name, custom_model=custom))
        show(
            self.images_box,
            self.session.image_shape is not None
            or self.session.result is None
            and (self.session.custom_data is None),
        )
        for side in range(2):
            show(self.w_embed[side]["layer"], len(self.session.layer_names) > 1)

    def _sync_view_controls(self):
        s = self.session.settings
        with quiet_setter(self):
            for side in range(2):
                w = self.w_embed[side]
                w["layer"].options = list(self.session.layer_names)
                w["layer"].value, w["method"].value, w["color"].value = (
                    s.layers[side],
                    s.embeddings[side],
                    s.colors[side],
                )

    def _redraw_embedding(self, side):
        from ..viz.embedding import embedding_figure

        ses = self.session
        Z = ses.shown_embedding(side)
        if Z is None or ses.result is None:
            return
        s = ses.settings
        shown = int(np.isfinite(Z[:, 0]).sum())
        count = f"{shown} of {len(Z)} samples, isolated" if shown < len(Z) else f"{len(Z)} samples"
        color, kind, names = ses.color(s.colors[side])
        fig = embedding_figure(
            Z,
            color,
            kind=kind,
            category_names=names,
            hover=ses.hover(),
            title=f"{s.embeddings[side].upper()} of {s.layers[side]} ({count})",
            colorbar_title=s.colors[side] if kind == "continuous" else "",
            highlight=ses.highlighted,
            selected=ses.selected,
            uirevision=f"{side}-{s.embeddings[side]}-{s.layers[side]}",
            width=EMBED_WIDTH,
        )
        fw = self.figs[side]
        with fw.batch_update():
            fw.data = []
            fw.add_traces(list(fig.data))
            fw.layout = fig.layout
        for tr in fw.data[:-2]:
            tr.on_click(self.on_embedding_click)
        for tr in fw.data:  # every trace: the rows are gathered until the last one reports
            tr.on_selection(functools.partial(self.on_embedding_selection, side))
        vr = ses.variance[side]
        self.w_ratio[side].value = (
            f"<small>seed 003 variance decomposition (original classes): {html.escape(str(vr))}</small>"
        )

    def _update_marks(self):
        from ..viz.embedding import highlight_xy

        ses = self.session
        if ses.isolate:  # which samples are drawn changes with the highlight
            for side in range(2):
                self._redraw_embedding(side)
            return
        for side in range(2):
            Z = ses.embeddings[side]
            if Z is None:
                continue
            fw = self.figs[side]
            hx, hy = highlight_xy(Z, ses.highlighted)
            sx, sy = highlight_xy(Z, [] if ses.selected is None else [ses.selected])
            with fw.batch_update():
                fw.data[-2].x, fw.data[-2].y = hx, hy
                fw.data[-1].x, fw.data[-1].y = sx, sy

    # -- click -> details ------------------------------------------------------------------------------------
    def on_embedding_click(self, trace, points, state=None):
        """FigureWidget click callback: every trace gets called, only the clicked one has point indices."""
        if not points.point_inds:
            return
        self._frontend_seen = True
        self.select(int(np.asarray(trace.customdata)[points.point_inds[0]]))

    def select(self, r: int) -> dict | None:
        """Show explored sample ``r``: images, margin and status, class pair, per-class distances, nearest
        other-label training sample before and after corruption. Returns the details dict."""
        return self._act("details", self._select, r)

    def _select(self, r):
        det = self.session.select(r)
        self._update_marks()
        self._draw_details(det)
        self._neighbours(self.w_nb_k.value, self.w_nb_space.value)
        self._draw_share()
        return det

    @property
    def details(self):
        return self.session.details

    def _draw_details(self, det):
        from ..viz.images import bar_values, panel_arrays

        ses = self.session
        if ses.image_shape is not None:  # update in place: building new subplots costs ~0.3-0.8 s a click
            fw = self.fig_images
            with fw.batch_update():
                for tr, ann, (title, z, lo, hi) in zip(
                    fw.data,
                    fw.layout.annotations,
                    panel_arrays(self._image_panels(det), shape=ses.image_shape),
                ):
                    tr.z, tr.zmin, tr.zmax = z, lo, hi
                    ann.text = title
        K = ses.train_data.n_classes if ses.train_data is not None else 10
        dist = np.full(K, np.nan) if det is None else det["distances"]
        y, colors = bar_values(
            dist, None if det is None else det["pred"], None if det is None else det["boundary_class"]
        )
        with self.fig_bars.batch_update():
            self.fig_bars.data[0].x = [str(k) for k in range(len(y))]
            self.fig_bars.data[0].y = y
            self.fig_bars.data[0].marker.color = colors
            self.fig_bars.layout.title.text = (
                "distance to each class"
                if det is None
                else f"distance to each class boundary (from class {det['pred']})"
            )
        self.w_details.value = "<i>click a point in an embedding</i>" if det is None else details_html(det)

    # -- histogram, ranges, export ---------------------------------------------------------------------------
    def histogram_counts(self) -> dict:
        return self.session.histogram_counts()

    def _setup_histogram(self):
        ses = self.session
        m = ses.result.margin[np.isfinite(ses.result.margin)]
        lo, hi = (float(m.min()), float(m.max())) if len(m) else (0.0, 1.0)
        hi = max(hi, lo + 1e-6)
        r = self.w_range
        with quiet_setter(self):
            r.max = max(hi, r.max)  # order matters: min may never exceed max while the bounds move
            r.min, r.max, r.step, r.value = lo, hi, (hi - lo) / 500, (lo, hi)
            self.w_group.options = ["all groups"] + sorted(set(ses.groups.tolist()))
            self.w_group.value = "all groups"
        self._redraw_histogram()

    def _redraw_histogram(self, value_range=None):
        from ..viz.histograms import margin_histogram_figure

        ses = self.session
        margins, groups = ses.histogram()
        n = int(np.isfinite(margins).sum())
        by = "certification (" if ses.settings.histogram_color == "certified" else "group (seed 000 names; "
        title = (
            f"margins by {by}{n} samples"
            + (", correctly classified only" if ses.settings.correct_only else "")
            + f"; corruption: {ses.train_data.corruption or 'none'})"
        )
        fig = margin_histogram_figure(margins, groups, title=title, value_range=value_range, width=720,
                                      colors=CERT_COLORS)
        fw = self.fig_hist
        with fw.batch_update():
            fw.data = []
            fw.add_traces(list(fig.data))
            fw.layout = fig.layout
        for tr in fw.data:
            tr.on_selection(self.on_histogram_selection)

    def _on_range(self, change):
        if not self._quiet and self.session.result is not None:
            self.select_range(*change["new"], group=self.w_group.value)

    def on_histogram_selection(self, trace, points, selector):
        """Box-select on the histogram: its x range becomes the highlighted margin range."""
        xr = getattr(selector, "xrange", None)
        if xr:
            self.select_range(float(min(xr)), float(max(xr)), group=self.w_group.value)

    def select_range(self, lo: float, hi: float, group: str | None = None) -> np.ndarray:
        """Highlight explored samples with margin in [lo, hi] (and in ``group``) in both views."""
        out = self._act("range selection", self._select_range, lo, hi, group)
        return np.zeros(0, dtype=np.int64) if out is None else out

    def _select_range(self, lo, hi, group):
        rows = self.session.select_range(lo, hi, group)
        self._update_marks()
        self.fig_hist.layout.shapes = [
            dict(
                type="rect",
                xref="x",
                yref="paper",
                x0=lo,
                x1=hi,
                y0=0,
                y1=1,
                fillcolor="gold",
                opacity=0.25,
                line_width=0,
            )
        ]
        self.w_status.value = html.escape(
            f"{len(rows)} samples highlighted (margin in [{lo:.3f}, {hi:.3f}]"
            + (f", {group}" if group not in (None, "all groups") else "")
            + ")"
        )
        self._draw_share()
        return rows

    def clear_highlight(self):
        self.session.clear_highlight()
        self._update_marks()
        self.fig_hist.layout.shapes = []

    def export_csv(self, path=None):
        """The highlighted samples (all if none) as CSV: written to ``path`` if given, and offered as a
        download link in the app. Returns the CSV text."""
        return self._act("export", self._export, path)

    def _export(self, path):
        text = self.session.export_csv(path)
        data = base64.b64encode(text.encode()).decode()
        n = text.count("\n") - 1
        self.w_download.value = (
            f"<a download='margins-selection.csv' href='data:text/csv;base64,{data}'>"
            f"⬇ margins-selection.csv ({n} rows)</a>"
        )
        return text

    def _draw_share(self):
        self.w_share.value = share_html(self.session.share_query(), self.code())
