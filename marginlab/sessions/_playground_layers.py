"""The playground session's hidden-layer views and the selected sample's certificate.

- :meth:`LayersMixin.unit_strip`: per-unit heatmaps of a hidden layer over the plane (a coarse grid: they
  are drawn small), :meth:`LayersMixin.unit_surface` one unit at the main grid (hovering a unit paints the
  main surface with it);
- :meth:`LayersMixin.representation_view`: the data, the decision surface and the margin segments in the
  space of hidden layer k (:class:`marginlab.analysis.representation.LayerView`), with margins measured
  there (``compute_margins(layer=k)``, seed 000 Eq. 1-3 applied to the tail network); the view's ``note``
  says whether the layer is drawn as it is (2-D, exact) or through a fixed 2-D projection (a slice);
- :func:`certificate`: the selected sample's proved global margin (ReLU: MIP, :mod:`marginlab.margins.mip`)
  or its bracket [lower, upper] (other activations: ``certify=True``).
"""

from __future__ import annotations

import time

import numpy as np

from ._threads import one_thread
from .base import SessionError

__all__ = ["LayersMixin", "certificate", "STRIP_RESOLUTION", "MAX_STRIP_UNITS"]

STRIP_RESOLUTION = 24  # cells per side of a unit's heatmap: ~2.3 KB per unit as JSON
MAX_STRIP_UNITS = 16
CERT_TIME_LIMIT = 5.0  # seconds per sample for the MIP; the 2-D nets here take milliseconds to a second
RELU = ("relu", "leaky_relu")


def certificate(model, xr, label: int, settings) -> dict:
    """``{"kind", "lower", "upper", "seconds", "method", "note"}`` for one sample ``xr`` (1, 2): ``kind`` is
    ``"proved"`` (ReLU: SCIP proved the MIP's optimum, lower >= upper (1 - 1e-4)), ``"bracket"`` (a sound
    lower bound and the best verified distance) or ``"none"`` (``note`` says why)."""
    from ..margins import compute_margins

    if not settings.plain_input:
        return {"kind": "none", "note": "no certificate with input features (x², sin x, ...): the linear "
                "bounds and the MIP cover Linear layers and activations only"}
    relu = settings.activation in RELU
    t0 = time.perf_counter()
    try:
        if relu:
            r = compute_margins(model, xr, method="mip", y=[label], time_limit=CERT_TIME_LIMIT)
        else:
            r = compute_margins(model, xr, method="batched", y=[label], certify=True)
    except (ValueError, ImportError) as exc:
        return {"kind": "none", "note": str(exc)}
    lower, upper = float(r.lower[0]), float(abs(r.margin[0]))
    return {"kind": "proved" if relu and bool(r.certified[0]) else "bracket", "lower": lower, "upper": upper,
            "seconds": time.perf_counter() - t0, "method": "mip" if relu else "certify",
            "note": str(r.status[0])}


class LayersMixin:
    """Hidden-layer views of :class:`~marginlab.sessions.PlaygroundSession` (see the module docstring)."""

    layer_view = None

    def _check_layer(self, layer) -> int:
        depth = len(self.settings.hidden_widths())
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= depth:
            span = f"between 1 and {depth}" if depth else "none: this model has no hidden layer"
            raise SessionError(f"layer must be a hidden layer, {span} (got {layer!r})")
        return int(layer)

    def strip_grid(self):
        """The coarse grid of the unit heatmaps (same extent as the main surface)."""
        from ..viz.common import Grid

        g = self.grid
        return Grid(np.linspace(*g.x_range, STRIP_RESOLUTION), np.linspace(*g.y_range, STRIP_RESOLUTION))

    @one_thread
    def unit_strip(self, layer) -> np.ndarray:
        """Heatmaps (units, 24, 24) of the first :data:`MAX_STRIP_UNITS` units of hidden ``layer`` over the
        plane, at the current weights (eval mode)."""
        from ..analysis.representation import unit_heatmaps

        layer = self._check_layer(layer)
        width = self.settings.hidden_widths()[layer - 1]
        units = np.arange(min(width, MAX_STRIP_UNITS))
        return unit_heatmaps(self.model, layer, self.strip_grid(), units=units)

    @one_thread
    def unit_surface(self, layer, unit) -> np.ndarray:
        """Unit ``unit`` of hidden ``layer`` at the main grid (ny, nx): what hovering it paints."""
        from ..analysis.representation import unit_heatmaps

        layer = self._check_layer(layer)
        width = self.settings.hidden_widths()[layer - 1]
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < width:
            raise SessionError(f"unit must be between 0 and {width - 1} (got {unit!r})")
        return unit_heatmaps(self.model, layer, self.grid, units=[int(unit)])[0]

    @one_thread
    def representation_view(self) -> dict | None:
        """The training data in the space of the chosen representation (``settings.representation``; None
        for 0, the input plane the main surface shows): 2-D coordinates ``train`` / ``test``, a ``grid`` and
        its ``logits`` (the tail network there), margin ``segments`` (start, end) of the training samples
        measured at that layer (``margins``, a MarginResult), ``exact`` and a ``note`` for the screen."""
        from ..analysis.representation import LayerView
        from ..margins import compute_margins
        from ..viz.common import make_grid

        k = self.settings.representation
        if not k or len(self.train) == 0:
            return None
        view = self.layer_view
        if view is None or view.layer_ != k:
            view = self.layer_view = LayerView(self.model, k).fit(self.train.X)
        margins = compute_margins(self.model, self.train.X, layer=k, method="batched", y=self.train.y,
                                  signed=True)
        start, end = view.segments(self.train.X, margins)
        test = view.transform(self.test.X) if len(self.test) else np.zeros((0, 2))
        grid = make_grid(np.concatenate([start, test]), resolution=40)
        return {"layer": k, "train": start, "test": test, "grid": grid, "logits": view.surface_logits(
            grid.points), "segments": (start, end), "margins": margins, "exact": bool(view.exact_),
                "kind": view.kind_, "note": view.note_}
