"""The playground view's workshop pieces (#18 items 2-4, #14 item 4): feature checkboxes, the "regenerate
data" button, the edit tools (select / move / brush / delete modes, shift-click delete, clear), the
hidden-unit strip (hover a unit to paint the main surface), the representation figure, and the selected
sample's text (margin, status, estimates) with its certificate.

A mixin of :class:`marginlab.widgets.Playground`: every action goes through the view's ``_act`` (the
session's guard), so a bad input is a message in place, never a traceback.
"""

from __future__ import annotations

import html

import numpy as np

from ..models.features import FEATURES
from ._common import quiet_setter, show
from ._plotly import FigureWidget

__all__ = ["WorkshopView", "certificate_html", "selection_html", "replace_figure"]

EDIT_MODES = (("select", "select"), ("move", "move"), ("brush", "brush"), ("delete", "delete"))


class WorkshopView:
    """Widgets and handlers of the workshop features (see the module docstring)."""

    def _build_workshop(self, W):
        lay = W.Layout(width="auto", margin="0 6px 0 0")
        self.feature_boxes = {f: W.Checkbox(value=False, description=f, indent=False, layout=W.Layout(
            width="62px")) for f in FEATURES}
        for box in self.feature_boxes.values():
            box.observe(lambda _ch: self._on_features(), names="value")
        self.features_row = W.HBox([W.HTML("features", layout=W.Layout(width="96px")),
                                    W.HBox(list(self.feature_boxes.values()),
                                           layout=W.Layout(flex_flow="row wrap", width="186px"))])
        self.features_row.add_class("marginlab-features")
        self.regen_button = W.Button(description="regenerate data", icon="random", layout=W.Layout(
            width="auto"), tooltip="new data from the next data seed; the model's seed stays")
        self.regen_button.on_click(lambda _: self.regenerate_data())
        self.edit_mode = W.ToggleButtons(options=EDIT_MODES, value="select", description="click",
                                         style={"button_width": "56px", "description_width": "40px"},
                                         tooltips=["click a sample to select it, empty space to add a point",
                                                   "click a sample, then where it goes",
                                                   "click to paint points of the chosen class",
                                                   "click deletes the nearest training point (as shift-click "
                                                   "does where the page leaves shift-clicks to the app)"])
        self.edit_mode.add_class("marginlab-edit-mode")
        self.edit_mode.observe(lambda _ch: self._on_edit_mode(), names="value")
        self.clear_button = W.Button(description="clear", icon="eraser", layout=lay,
                                     tooltip="delete every training point (then paint new ones)")
        self.clear_button.on_click(lambda _: self.clear_points())
        self.edit_tools = W.HBox([self.edit_mode, self.clear_button],
                                 layout=W.Layout(flex_flow="row wrap", align_items="center"))
        self.strip_layer = W.Dropdown(description="units of", style={"description_width": "60px"},
                                      layout=W.Layout(width="170px"))
        self.strip_layer.observe(lambda _ch: self._act("units", self._draw_strip), names="value")
        self.strip = FigureWidget()
        self.strip.add_class("marginlab-strip")
        self.rep_figure = FigureWidget()
        self.rep_figure.add_class("marginlab-representation")
        self.rep_note = W.HTML(layout=W.Layout(width="440px"))
        self.rep_note.add_class("marginlab-representation-note")
        self.rep_box = W.VBox([self.rep_figure, self.rep_note])  # a FigureWidget's own layout is plotly's
        self.layers_box = W.VBox([self.strip_layer, self.strip, self.rep_box])

    # -- settings that are not plain value widgets ---------------------------------------------------------
    def _on_features(self):
        if self._quiet:
            return
        chosen = [f for f, box in self.feature_boxes.items() if box.value]
        self._act("", self._apply, {"features": ", ".join(chosen)})

    def _set_workshop_controls(self):
        s = self.session.settings
        try:
            chosen = set(s.feature_names())
        except ValueError:
            chosen = set()
        depth = len(s.hidden_widths())
        with quiet_setter(self):
            for f, box in self.feature_boxes.items():
                box.value = f in chosen
            self.controls["representation"].options = [("input", 0)] + [(f"layer {k}", k)
                                                                        for k in range(1, depth + 1)]
            self.controls["representation"].value = s.representation
            layers = [(f"layer {k}", k) for k in range(1, depth + 1)]
            keep = self.strip_layer.value if self.strip_layer.value in range(1, depth + 1) else 1
            self.strip_layer.options = layers
            if layers:
                self.strip_layer.value = keep
        show(self.layers_box, depth > 0 and "layers" not in self.session.hide)

    def regenerate_data(self):
        """New data from the next data seed (the model's seed stays)."""
        self._act("regenerate data", self._regenerate)

    def _regenerate(self):
        self.play.playing = False
        self.session.regenerate_data()
        self._redraw_all()

    def _draw_view(self):
        """What the view settings change: discrete regions, test points shown, the representation."""
        from ..viz import playground as vp

        ses = self.session
        with self.surface.batch_update():
            self.surface.data[self._trace["regions"]].update(vp.regions_props(
                ses.grid, ses.grid_logits(), ses.n_classes, discrete=ses.settings.discretize))
            self.surface.data[self._trace["test"]].visible = bool(ses.settings.show_test)
        self._set_workshop_controls()
        self._draw_representation()

    def _draw_layers(self):
        self._draw_strip()
        self._draw_representation()

    # -- editing -------------------------------------------------------------------------------------------
    def _on_edit_mode(self):
        self.session.move_row = None
        notes = {"move": "Move: click a training sample, then the place it goes.",
                 "brush": "Brush: each click paints points of the chosen class; shift-click deletes.",
                 "delete": "Delete: a click deletes the nearest training point.",
                 "select": ""}
        if notes[self.edit_mode.value]:
            self.messages.note(notes[self.edit_mode.value])

    def _edit_click(self, x: float, y: float, shift: bool, row: int | None) -> bool:
        """Route a click by the edit mode; returns whether it was an edit (else the click selects/adds)."""
        mode = self.edit_mode.value
        if "edit" in self.session.lock:
            return False
        if shift or mode == "delete":  # JupyterLab takes shift-clicks for cell selection: the mode is the way
            self._act("delete", self._delete_nearest, x, y)
        elif mode == "brush":
            self._act("brush", self._brush, x, y)
        elif mode == "move" and row is not None:
            self.session.move_row = row
            self.messages.note(f"Moving train #{row}: click where it goes.")
        elif mode == "move" and self.session.move_row is not None:
            self._act("move", self._move, self.session.move_row, x, y)
        else:
            return False
        return True

    def _after_edit(self, text: str):
        self._draw_points()
        self._draw_margin_panel(curves=False)
        self._draw_selection()
        self._draw_share()
        e = self.session.last_edit
        self.messages.note(f"{text}; {len(self.session.train)} training samples; re-solved {e['solved']} "
                           f"margin(s), the others carried over.")

    def _delete_nearest(self, x, y):
        row = self.session.delete_nearest(x, y)
        if row is None:
            self.messages.note("No training point near the shift-click: nothing deleted.")
            return
        self._after_edit(f"Deleted train #{row}")

    def _brush(self, x, y):
        self.session.brush(x, y, self.add_class.value)
        self._after_edit(f"Painted class-{self.add_class.value} points at ({x:.2f}, {y:.2f})")

    def _move(self, row, x, y):
        self.session.move_point(row, x, y)
        self._after_edit(f"Moved train #{row} to ({x:.2f}, {y:.2f})")

    def clear_points(self):
        """Delete every training point (paint new ones with the brush)."""
        self._act("clear", self._clear)

    def _clear(self):
        self.play.playing = False
        self.session.clear_points()
        self.edit_mode.value = "brush"
        self._after_edit("Cleared the training points: paint points of two classes with the brush")

    # -- hidden layers ---------------------------------------------------------------------------------------
    def _draw_strip(self):
        from ..viz import playground as vp

        layer = self.strip_layer.value
        if not layer:
            return
        fig = vp.unit_strip(self.session.unit_strip(layer), self.session.strip_grid(), layer=layer)
        fresh = len(self.strip.data) != len(fig.data)
        replace_figure(self.strip, fig)
        if fresh:  # new trace objects: hovering them must reach Python
            for tr in self.strip.data:
                tr.on_hover(self._on_unit_hover)
                tr.on_unhover(self._on_unit_unhover)

    def hover_unit(self, layer: int, unit: int | None):
        """Paint the main surface with ``unit`` of hidden ``layer`` (None: back to the class regions)."""
        self._act("unit", self._paint_unit, layer, unit)

    def _paint_unit(self, layer, unit):
        from ..viz import playground as vp

        values = None if unit is None else self.session.unit_surface(layer, unit)
        self.surface.data[self._trace["unit"]].update(vp.unit_props(self.session.grid, values))

    def _on_unit_hover(self, trace, points, state=None):
        if points.point_inds:
            self._frontend_seen = True
            self.hover_unit(self.strip_layer.value, int(trace.name.split()[-1]))

    def _on_unit_unhover(self, trace, points, state=None):
        if points.point_inds:
            self.hover_unit(self.strip_layer.value, None)

    def _draw_representation(self):
        from ..viz import playground as vp

        rv = self.session.representation_view()
        show(self.rep_box, rv is not None)
        if rv is None:
            self.rep_note.value = ""
            return
        train = self.session.train
        fig = vp.decision_surface(rv["grid"], rv["logits"], n_classes=self.session.n_classes,
                                  train_X=rv["train"], train_y=train.y, test_X=rv["test"],
                                  test_y=self.session.test.y, all_segments=rv["segments"], width=440,
                                  height=400, title=f"representation: layer {rv['layer']}",
                                  uirevision=f"rep-{rv['layer']}")
        replace_figure(self.rep_figure, fig)
        m = rv["margins"].margin[np.isfinite(rv["margins"].margin)]
        stats = f"train margins there: min {m.min():.3f}, mean {m.mean():.3f}" if m.size else "no margins"
        mark = "exact" if rv["exact"] else "fixed 2-D projection"
        self.rep_note.value = (f"<span style='font-size:11px'><b>{mark}</b>: {html.escape(rv['note'])}. "
                               f"{stats} (measured in layer {rv['layer']}).</span>")


def replace_figure(widget, fig) -> None:
    """Give FigureWidget ``widget`` the traces and layout of ``fig`` in one message (same trace count: in
    place; else the traces are replaced)."""
    if len(widget.data) != len(fig.data):
        with widget.batch_update():
            widget.data = ()
            widget.add_traces(list(fig.data))
            widget.layout = fig.layout
        return
    with widget.batch_update():
        for tr, new in zip(widget.data, fig.data):
            props = new.to_plotly_json()
            props.pop("type", None)
            tr.update(props, overwrite=True)
        layout = fig.layout.to_plotly_json()
        layout.pop("template", None)  # unchanged, and large
        widget.layout.update(layout)


def certificate_html(cert: dict | None) -> str:
    """The selected sample's certificate: "proved global", the [lower, upper] bracket, or why there is
    none."""
    if not cert:
        return ""
    if cert["kind"] == "proved":
        return (f"<span class='marginlab-certificate' style='color:#2a7a2a'>✓ <b>proved global</b> margin "
                f"{cert['upper']:.4f} (MIP, {1000 * cert['seconds']:.0f} ms)</span>")
    if cert["kind"] == "bracket":
        how = "MIP stopped at its time limit" if cert["method"] == "mip" else "certify=True"
        return (f"<span class='marginlab-certificate'>certified bracket [<b>{cert['lower']:.4f}</b>, "
                f"<b>{cert['upper']:.4f}</b>] ({how}; the true margin lies in it)</span>")
    return f"<span class='marginlab-certificate' style='color:#777'>{html.escape(cert['note'])}</span>"


def selection_html(sel: dict, names) -> str:
    """The selected sample's margin, class pair, solver status and estimates, as one short paragraph."""
    name = (lambda k: names[k] if 0 <= k < len(names) else str(k))
    wrong = sel["pred"] != sel["label"]
    flag = ", <span style='color:#a40000'>misclassified</span>" if wrong else ""
    head = (f"<b>{sel['split']} #{sel['row']}</b> (class {html.escape(name(sel['label']))}, predicted "
            f"{html.escape(name(sel['pred']))}{flag})")
    status = html.escape(sel["status"])
    if sel["status"] == "converged":
        check = f"<span style='color:#2a7a2a'>✓ {status}</span>"
    else:
        check = f"<span style='color:#c05800'>⚠ {status}</span>"
    if sel["agree"] > 1:
        check += f", {sel['agree']} starts agree"
    if np.isfinite(sel["margin"]):
        body = (f"margin <b>{sel['margin']:.4f}</b> to the boundary with class "
                f"{html.escape(name(sel['boundary_class']))}; residual |f<sub>i</sub>−f<sub>j</sub>| = "
                f"{sel['residual']:.1e}; status: {check}")
    else:
        body = f"no verified boundary point found (status: {check})"
    extra = []
    for est_name, est in sel.get("estimates", {}).items():
        if np.isfinite(sel["margin"]) and sel["margin"] > 0:
            v = est["margin"]
            extra.append(f"{est_name} {v:.4f} ({100 * (v - sel['margin']) / sel['margin']:+.1f}%)")
    if not sel.get("exact", True):
        extra.append("live view: bounded solve, pause for the exact nearest point")
    return head + ": " + body + ("<br>" + " · ".join(extra) if extra else "")
