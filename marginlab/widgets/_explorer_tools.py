"""The explorer view's selection toolkit and certification controls (a mixin of
:class:`marginlab.widgets.MarginExplorer`): a search box, lasso on the embeddings, named saved selections,
the selected sample's nearest neighbours (images and margins), the embedding parameters, and the certify
buttons with the histogram coloured by certification. Every action goes through the session's guard
(``self._act``): bad input is a message in place."""

from __future__ import annotations

import functools
import html

import numpy as np

from ..sessions.explorer_settings import HISTOGRAM_COLORS, PARAM_RANGES

__all__ = ["ExplorerToolsView", "neighbours_html"]

NEIGHBOUR_PANELS = 8  # images drawn for the neighbours (the table lists all k)
SEARCH_HELP = "label:3,5  group:corrupt  index:100-199 (or just 100-199)  row:0-9"


class ExplorerToolsView:
    """Widgets and handlers of the toolkit (``self.session``, ``self._act`` and the figures must exist)."""

    def _build_tools(self, W):
        s, st = self.session.settings, {"description_width": "initial"}
        lay = functools.partial(W.Layout, width="auto")
        self.w_search = W.Text(description="search", placeholder="label:3 group:corrupt 100-199",
                               continuous_update=False, style=st, layout=W.Layout(width="330px"),
                               tooltip=SEARCH_HELP)
        self.w_search.add_class("marginlab-search")
        self.w_search.observe(lambda ch: self._quiet or self.search(ch["new"]), names="value")
        self.w_sel_name = W.Text(description="save as", placeholder="name", style=st,
                                 layout=W.Layout(width="200px"))
        self.w_save = W.Button(description="save selection", layout=lay())
        self.w_saved = W.Dropdown(options=[], description="saved", style=st, layout=W.Layout(width="200px"))
        self.w_show_saved = W.Button(description="show", layout=lay())
        self.w_delete_saved = W.Button(description="delete", layout=lay())
        self.w_save.on_click(lambda _b: self.save_selection(self.w_sel_name.value))
        self.w_show_saved.on_click(lambda _b: self.load_selection(self.w_saved.value))
        self.w_delete_saved.on_click(lambda _b: self.delete_selection(self.w_saved.value))
        self.w_isolate = W.Checkbox(value=self.session.isolate, description="isolate highlighted",
                                    indent=False, layout=lay())
        self.w_isolate.observe(lambda ch: self._quiet or self._act("isolate", self._apply_isolate, ch["new"]),
                               names="value")
        self.w_tools_hint = W.HTML("<small>lasso: choose the lasso (or box) in an embedding's toolbar and "
                                   "circle points; double-click clears</small>")
        self._build_params(W, s, st)
        self._build_neighbours(W, st)
        self._build_certify(W, s, st)

    def _build_params(self, W, s, st):
        self.w_params = {}
        for name, kind, label in (("perplexity", "FloatText", "t-SNE perplexity"),
                                  ("n_neighbors", "IntText", "UMAP n_neighbors"),
                                  ("min_dist", "FloatText", "UMAP min_dist")):
            lo, hi = PARAM_RANGES[name]
            w = getattr(W, kind)(value=getattr(s, name), description=label, style=st,
                                 continuous_update=False, layout=W.Layout(width="200px"),
                                 tooltip=f"{lo:g} to {hi:g}")
            w.observe(functools.partial(self._on_param, name), names="value")
            self.w_params[name] = w

    def _build_neighbours(self, W, st):
        from ..viz.images import image_panels_figure
        from ._plotly import FigureWidget

        k = int((self.session.neighbour_settings or {}).get("k", 5))  # a link's choice, else 5
        self.w_nb_k = W.BoundedIntText(value=min(max(k, 1), 50), min=1, max=50, description="neighbours k",
                                       style=st,
                                       layout=W.Layout(width="170px"))
        self.w_nb_space = W.Dropdown(options=list(self.session.layer_names), description="in", style=st,
                                     layout=W.Layout(width="150px"))
        for w in (self.w_nb_k, self.w_nb_space):
            w.observe(lambda _ch: self._quiet or self._refresh_neighbours(), names="value")
        self.w_nb_table = W.HTML("<i>neighbours of the selected sample appear here</i>")
        self.fig_nb = FigureWidget(image_panels_figure([("", None, "image")] * 5, width=720, height=170))

    def _build_certify(self, W, s, st):
        self.w_certify = W.Button(description="certify", icon="check", layout=W.Layout(width="auto"),
                                  tooltip="prove the selected sample's margin: [lower, upper] (MIP for ReLU "
                                          "networks, linear bounds otherwise)")
        self.w_certify.add_class("marginlab-certify")
        self.w_certify_all = W.Button(description="certify highlighted", layout=W.Layout(width="auto"),
                                      tooltip="certify every highlighted sample (MIP: at most 50)")
        self.w_time_limit = W.BoundedFloatText(value=10.0, min=0.1, max=600.0, description="s per sample",
                                               style=st, layout=W.Layout(width="160px"),
                                               tooltip="the MIP's time limit per sample (0.1 to 600 s)")
        self.w_certify.on_click(lambda _b: self.certify())
        self.w_certify_all.on_click(lambda _b: self.certify(self.session.highlighted))
        self.w_hist_color = W.Dropdown(options=list(HISTOGRAM_COLORS), value=s.histogram_color,
                                       description="histogram colour", style=st,
                                       layout=W.Layout(width="230px"))
        self.w_hist_color.observe(lambda ch: self._quiet or self._act(
            "histogram colour", self._apply_hist_color, ch["new"]), names="value")

    def _tools_rows(self, W, wrap):
        return {
            "params": W.HBox(list(self.w_params.values()), layout=wrap()),
            "search": W.HBox([self.w_search, self.w_isolate, self.w_sel_name, self.w_save, self.w_saved,
                              self.w_show_saved, self.w_delete_saved], layout=wrap()),
            "hint": self.w_tools_hint,
            "neighbours": W.VBox([W.HBox([self.w_certify, self.w_time_limit, self.w_nb_k, self.w_nb_space],
                                         layout=wrap()), self.fig_nb, self.w_nb_table]),
            "certify": W.HBox([self.w_hist_color, self.w_certify_all], layout=wrap()),
        }

    def _reset_tool_views(self):
        """After a run: the layers of the new model, no neighbours yet, the saved selections."""
        from ._common import quiet_setter

        space = (self.session.neighbour_settings or {}).get("space", self.w_nb_space.value)
        with quiet_setter(self):
            self.w_nb_space.options = list(self.session.layer_names)
            if space in self.w_nb_space.options:
                self.w_nb_space.value = space
            self.w_search.value = ""
        self.w_nb_table.value = "<i>neighbours of the selected sample appear here</i>"
        self._sync_saved(self.w_saved.value)

    # -- actions ----------------------------------------------------------------------------------------
    def search(self, text: str) -> np.ndarray:
        """Highlight the samples a query names (``label:3 group:corrupt 100-199``) in both views."""
        out = self._act("search", self._highlighted_by, self.session.search, text)
        return np.zeros(0, np.int64) if out is None else out

    def select_rows(self, rows) -> np.ndarray:
        """Highlight explored ``rows`` (what a lasso on an embedding does)."""
        out = self._act("lasso", self._highlighted_by, self.session.select_rows, rows)
        return np.zeros(0, np.int64) if out is None else out

    def load_selection(self, name: str) -> np.ndarray:
        out = self._act("saved selection", self._highlighted_by, self.session.load_selection, name)
        return np.zeros(0, np.int64) if out is None else out

    def _highlighted_by(self, fn, arg):
        rows = fn(arg)
        self._update_marks()
        self.fig_hist.layout.shapes = []
        what = self.session.query or "selection"
        self.w_status.value = html.escape(f"{len(rows)} samples highlighted ({what})")
        self._draw_share()
        return rows

    def save_selection(self, name: str):
        return self._act("save selection", self._save_selection, name)

    def _save_selection(self, name):
        idx = self.session.save_selection(name)
        self._sync_saved(name.strip())
        self.w_status.value = html.escape(f"saved {len(idx)} samples as {name.strip()!r}")
        self._draw_share()
        return idx

    def delete_selection(self, name: str):
        return self._act("delete selection", self._delete_selection, name)

    def _delete_selection(self, name):
        self.session.delete_selection(name)
        self._sync_saved(None)
        self._draw_share()

    def _sync_saved(self, value):
        from ._common import quiet_setter

        names = self.session.selections.names
        with quiet_setter(self):
            self.w_saved.options = names
            self.w_saved.value = value if value in names else (names[0] if names else None)

    def on_embedding_selection(self, side, trace, points, selector):
        """Lasso / box selection on embedding ``side``: plotly calls this once per trace, in order, each
        with its own points; the rows are gathered until the last trace and then highlighted."""
        pending = self._lasso_pending.setdefault(side, [])
        if points.point_inds and trace.customdata is not None:
            pending.extend(np.asarray(trace.customdata)[points.point_inds].tolist())
        if points.trace_index == len(self.figs[side].data) - 1:
            rows, self._lasso_pending[side] = pending, []
            self._frontend_seen = True
            self.select_rows(sorted(set(int(r) for r in rows)))

    def _apply_isolate(self, on):
        self.session.set_isolate(on)
        for side in range(2):
            self._redraw_embedding(side)
        self._draw_share()

    def _on_param(self, name, change):
        if not self._quiet:
            self._act(f"embedding parameter {name}", self._apply_param, name, change["new"])

    def _apply_param(self, name, value):
        self._invalid = name
        self.session.update(**{name: value})
        self._invalid = None
        if self.session.result is not None:
            for side in range(2):
                self._redraw_embedding(side)
        self._draw_share()

    def _apply_hist_color(self, value):
        self.session.update(histogram_color=value)
        if self.session.result is not None:
            self._redraw_histogram()
        self._draw_share()

    # -- neighbours and certification -------------------------------------------------------------------
    def neighbours(self, k: int | None = None, space: str | None = None) -> dict | None:
        """The selected sample's ``k`` nearest explored samples in ``space`` (shown under the details)."""
        from ._common import quiet_setter

        with quiet_setter(self):
            if k is not None:
                self.w_nb_k.value = max(self.w_nb_k.min, min(self.w_nb_k.max, int(k)))
            if space is not None and space in self.w_nb_space.options:
                self.w_nb_space.value = space
        return self._act("neighbours", self._neighbours, k or self.w_nb_k.value,
                         space or self.w_nb_space.value)

    def _refresh_neighbours(self):
        if self.session.selected is not None:
            self.neighbours()

    def _neighbours(self, k, space):
        nb = self.session.neighbours(None, k=k, space=space)
        self.w_nb_table.value = neighbours_html(nb)
        if self.session.image_shape is not None:
            self._draw_neighbour_images(nb)
        return nb

    def _draw_neighbour_images(self, nb):
        from ..viz.images import image_panels_figure

        X = self.session.train_data.X
        panels = [(f"#{i} ({lab})<br>m={m:.2f} d={d:.2f}", X[i], "image") for i, lab, m, d in
                  list(zip(nb["index"], nb["label"], nb["margin"], nb["distance"]))[:NEIGHBOUR_PANELS]]
        fig = image_panels_figure(panels, shape=self.session.image_shape, width=720, height=170)
        fw = self.fig_nb
        with fw.batch_update():
            fw.data = []
            fw.add_traces(list(fig.data))
            fw.layout = fig.layout

    def certify(self, rows=None):
        """Bracket the margin of the selected sample (or of ``rows``): [lower, upper], shown in its
        details; the histogram can colour samples by certified / not certified."""
        return self._act("certify", self._certify, rows)

    def _certify(self, rows):
        rows = None if rows is None else np.asarray(rows)
        b = self.session.certify(rows, time_limit=self.w_time_limit.value)
        if self.session.details is not None:
            self._draw_details(self.session.details)
        self._redraw_histogram()
        n_ok = int(b["certified"].sum())
        self.w_status.value = html.escape(
            f"certified {n_ok} of {len(b['rows'])} ({b['how'][0]})" if len(b["rows"]) > 1 else
            f"margin in [{b['lower'][0]:.4f}, {b['upper'][0]:.4f}]"
            + (" (certified)" if n_ok else "") + f" ({b['how'][0]})")
        return b


def neighbours_html(nb: dict) -> str:
    """The neighbours as a small table: training index, label, distance in the chosen space, margin."""
    head = (f"<b>{len(nb['rows'])} nearest to row {nb['of']}</b> in {html.escape(nb['space'])} space "
            "(explored samples)")
    cells = "".join(
        f"<tr><td>#{i}</td><td>{lab}</td><td>{d:.3f}</td><td>{m:.3f}</td></tr>"
        for i, lab, d, m in zip(nb["index"], nb["label"], nb["distance"], nb["margin"]))
    return (f"<div style='font-size:12px'>{head}<table style='font-size:12px'><tr><th>sample</th>"
            f"<th>label</th><th>distance</th><th>margin</th></tr>{cells}</table></div>")
