"""The explorer view's widgets and layout, and the text pieces it draws (a mixin of
:class:`marginlab.widgets.MarginExplorer`, kept apart so each module stays readable)."""

from __future__ import annotations

import functools
import html

import numpy as np

from ..sessions.explorer import COLOR_BY
from ..sessions.explorer_settings import CORRUPTIONS, explorer_methods
from ._common import Messages
from ._plotly import FigureWidget

__all__ = ["ExplorerLayout", "details_html", "CONTROLS", "ROWS", "EMBED_WIDTH"]

CONTROLS = {
    "data_source": ("data", "Dropdown", 150),
    "n_train": ("n_train (0 = all)", "IntText", 190),
    "hidden": ("hidden", "Text", 170),
    "epochs": ("epochs", "IntText", 130),
    "lr": ("lr", "FloatText", 130),
    "batch_size": ("batch", "IntText", 130),
    "corruption": ("corruption", "Dropdown", 200),
    "fraction": ("fraction", "FloatSlider", 260),
    "n_samples": ("N samples", "IntText", 170),
    "method": ("margin method", "Dropdown", 250),
    "model_path": ("model file", "Text", 330),
}
EMBED_WIDTH = 460  # two views side by side from ~940 px (Voila at 1024), stacked below that
ROWS = (
    ("data_source", "n_train", "hidden", "epochs", "lr", "batch_size"),
    ("corruption", "fraction", "n_samples", "method"),
)


class ExplorerLayout:
    """Builds the explorer's controls, figures and layout (``self.session`` must exist)."""

    # -- construction ---------------------------------------------------------------------------------------
    def _build_controls(self, W):
        s = self.session.settings
        st = {"description_width": "initial"}
        options = {
            "data_source": ["auto", "full"] + (["custom"] if self.session.custom_data is not None else []),
            "corruption": list(CORRUPTIONS),
            "method": explorer_methods(),
        }
        self.controls = {}
        for name, (label, kind, width) in CONTROLS.items():
            kw = {"description": label, "style": st, "layout": W.Layout(width=f"{width}px")}
            if kind == "Dropdown":
                kw["options"] = options[name]
            elif kind == "FloatSlider":
                kw.update(min=0.0, max=1.0, step=0.05, continuous_update=False)
            else:
                kw["continuous_update"] = False
            if name == "model_path":
                kw["placeholder"] = "path/to/model.pt (empty: train)"
            w = getattr(W, kind)(value=self._widget_value(name, s), **kw)
            w.observe(functools.partial(self._on_control, name), names="value")
            self.controls[name] = w
        self.w_run = W.Button(
            description="Train / load + margins", button_style="primary", layout=W.Layout(width="auto")
        )
        self.w_run.on_click(lambda _b: self.run())
        self.w_progress = W.IntProgress(value=0, min=0, max=100, layout=W.Layout(width="220px"))
        self.w_status = W.HTML(value="")
        self.w_message = W.HTML(value="")
        self.messages = Messages(self.w_message)

    @staticmethod
    def _widget_value(name, s):
        v = getattr(s, name)
        if name == "hidden":
            return ",".join(map(str, v))
        if name == "n_train":
            return 0 if v is None else v
        if name == "model_path":
            return v or ""
        return v

    def _build_views(self, W):
        from ..embed import EMBED_METHODS

        s = self.session.settings
        self.w_embed, self.figs, self.w_ratio = [], [], []
        for side in range(2):
            lab = {"description_width": "initial"}  # the description's own width: never an ellipsis
            m = W.Dropdown(
                options=EMBED_METHODS,
                value=s.embeddings[side],
                description="embed",
                layout=W.Layout(width="130px"),
                style=lab,
            )
            layer = W.Dropdown(
                options=[s.layers[side]],
                value=s.layers[side],
                description="layer",
                layout=W.Layout(width="140px"),
                style=lab,
            )
            color = W.Dropdown(
                options=COLOR_BY,
                value=s.colors[side],
                description="colour",
                layout=W.Layout(width="190px"),
                style=lab,
            )
            for name, w in (("embeddings", m), ("layers", layer), ("colors", color)):
                w.observe(functools.partial(self._on_view, name, side), names="value")
            self.w_embed.append({"method": m, "layer": layer, "color": color})
            self.figs.append(self._empty_figure("embedding: press the button above", width=EMBED_WIDTH))
            self.w_ratio.append(W.HTML(value=""))

    def _build_details(self, W):
        from ..viz.images import image_panels_figure, margin_bars_figure

        self.fig_images = FigureWidget(image_panels_figure(self._image_panels(None), width=720))
        self.fig_bars = FigureWidget(
            margin_bars_figure(np.full(10, np.nan), title="distance to each class")
        )
        self.w_details = W.HTML(
            value="<i>click a point in an embedding</i>", layout=W.Layout(width="auto", max_width="480px")
        )

    def _build_histogram(self, W):
        self.fig_hist = self._empty_figure("margins by group", width=720, height=280)
        self.w_group = W.Dropdown(
            options=["all groups"],
            value="all groups",
            description="group",
            layout=W.Layout(width="290px"),
            style={"description_width": "initial"},
        )
        self.w_range = W.FloatRangeSlider(
            value=(0.0, 1.0),
            min=0.0,
            max=1.0,
            step=0.001,
            description="range",
            readout_format=".3f",
            continuous_update=False,
            layout=W.Layout(width="400px"),
            style={"description_width": "initial"},
        )
        self.w_correct_only = W.Checkbox(
            value=self.session.settings.correct_only,
            indent=False,
            description="correctly classified only (seed 000)",
            layout=W.Layout(width="auto"),
        )
        self.w_apply = W.Button(description="highlight range", layout=W.Layout(width="auto"))
        self.w_clear = W.Button(description="clear", layout=W.Layout(width="auto"))
        self.w_export = W.Button(
            description="export CSV",
            icon="download",
            layout=W.Layout(width="auto"),
            tooltip="the highlighted samples (all if none) as a CSV table",
        )
        self.w_download = W.HTML(value="")
        self.w_share = W.HTML(value="")
        self.w_apply.on_click(lambda _b: self.select_range(*self.w_range.value, group=self.w_group.value))
        self.w_clear.on_click(lambda _b: self.clear_highlight())
        self.w_export.on_click(lambda _b: self.export_csv())
        self.w_range.observe(self._on_range, names="value")
        self.w_correct_only.observe(functools.partial(self._on_control, "correct_only"), names="value")

    def _layout(self, W):
        wrap = functools.partial(W.Layout, flex_flow="row wrap", align_items="center")
        c = self.controls
        views = [
            W.VBox(
                [W.HBox(list(self.w_embed[s].values()), layout=wrap()), self.figs[s], self.w_ratio[s]],
                layout=W.Layout(margin="0 10px 0 0"),
            )
            for s in range(2)
        ]
        rows = [W.HBox([c[n] for n in row], layout=wrap()) for row in ROWS]
        tools = self._tools_rows(W, wrap)
        self.images_box = W.HBox([self.fig_images])
        root = W.VBox(
            [
                W.HTML("<b>Margin explorer</b>"),
                *rows,
                W.HBox([c["model_path"], self.w_run, self.w_progress, self.w_status], layout=wrap()),
                self.w_message,
                tools["params"],
                W.HBox(views, layout=wrap(align_items="flex-start")),
                tools["search"],
                tools["hint"],
                self.images_box,
                W.HBox([self.fig_bars, self.w_details], layout=wrap(align_items="flex-start")),
                tools["neighbours"],
                W.HBox([self.w_group, self.w_correct_only], layout=wrap()),
                tools["certify"],
                W.HBox(
                    [self.w_range, self.w_apply, self.w_clear, self.w_export, self.w_download], layout=wrap()
                ),
                self.fig_hist,
                self.w_share,
            ],
            layout=W.Layout(max_width="100%"),
        )
        root.add_class("marginlab-app")
        return root


    @staticmethod
    def _empty_figure(title, width=480, height=440):
        import plotly.graph_objects as go

        layout = dict(
            title=dict(text=title, font=dict(size=13)),
            width=width,
            height=height,
            margin=dict(l=10, r=10, t=40, b=10),
        )
        return FigureWidget(go.Figure(layout=layout))

    def _image_panels(self, det):
        if det is None:
            return [
                (t, None, k)
                for t, k in (
                    ("sample", "image"),
                    ("boundary point", "image"),
                    ("perturbation", "diff"),
                    ("nearest other label (before)", "image"),
                    ("nearest other label (after)", "image"),
                )
            ]
        ds = self.session.train_data
        nb, na = det["nearest"]["before"], det["nearest"]["after"]
        return [
            (f"sample #{det['index']} (label {det['label']})", det["sample"], "image"),
            (f"boundary point {det['pred']}|{det['boundary_class']}", det["point"], "image"),
            (f"perturbation ‖·‖={det['perturbation_norm']:.3f}", det["perturbation"], "diff"),
            (
                f"before: #{nb['index']} ({nb['label']}) d={nb['distance']:.2f}",
                None if nb["index"] < 0 else ds.X_original[nb["index"]],
                "image",
            ),
            (
                f"after: #{na['index']} ({na['label']}) d={na['distance']:.2f}",
                None if na["index"] < 0 else ds.X[na["index"]],
                "image",
            ),
        ]


def bracket_text(b) -> str:
    """The certified bracket [lower, upper] of a sample's margin, or how to get it."""
    if not b or not np.isfinite(b["lower"]):
        return "<i>not checked: press certify</i>"
    how = "MIP, proved global" if b["how"] == "mip" else "linear bounds"
    mark = ("<span style='color:#2a7a2a'>✓ certified</span>" if b["certified"]
            else "<span style='color:#c05800'>bracket only</span>")
    return f"[{b['lower']:.4f}, {b['upper']:.4f}] {mark} ({how})"


def details_html(det: dict) -> str:
    """The clicked sample's numbers as a small table (margin, status, class pair, maximum margins)."""
    nb, na = det["nearest"]["before"], det["nearest"]["after"]
    if det["label"] != det["original_label"]:
        lab = f"{det['original_label']} → {det['label']} (label-corrupted)"
    else:
        lab = f"{det['label']}" + (" (input-corrupted)" if det["corrupted"] else "")
    ratio = det["margin"] / na["distance"] if na["distance"] and np.isfinite(na["distance"]) else float("nan")
    ok = det["status"] == "converged"
    status = (
        f"<span style='color:{'#2a7a2a' if ok else '#c05800'}'>{'✓' if ok else '⚠'} "
        f"{html.escape(det['status'])}</span>"
        + (f", {det['agree']} starts agree" if det["agree"] > 1 else "")
    )
    rows = [
        ("sample", f"#{det['index']} (row {det['row']}), group <b>{html.escape(det['group'])}</b>"),
        ("label", lab),
        ("predicted", str(det["pred"])),
        ("margin", f"<b>{det['margin']:.4f}</b> to the {det['pred']}|{det['boundary_class']} boundary"),
        ("status", status),
        ("boundary check", f"|f_i − f_j| = {det['residual']:.2e}, verified: {det['verified']}"),
        (
            "max margin before",
            f"{nb['distance']:.4f} (nearest other label: #{nb['index']}, class {nb['label']})",
        ),
        (
            "max margin after",
            f"{na['distance']:.4f} (nearest other label: #{na['index']}, class {na['label']})",
        ),
        ("margin / max margin", f"{ratio:.3f}"),
        ("certified", bracket_text(det.get("bracket"))),
    ]
    return (
        "<table style='font-size:12px'>"
        + "".join(f"<tr><td style='padding-right:8px'>{k}</td><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
    )
