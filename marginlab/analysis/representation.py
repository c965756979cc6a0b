"""Hidden-layer representations of a 2-D classifier, for the playground's "representation" view and its strip
of per-unit heatmaps. Headless: arrays in, arrays out.

:class:`LayerView` places the data in the space of representation k (0 = the input point; k >= 1 the k-th
hidden layer, see :class:`~marginlab.models.MarginNet`) as 2-D coordinates:

- width 2: the layer itself (``kind_ = "identity"``); the decision surface is the tail network's
  (``model.tail(k)``) decision function on the whole layer plane, so a margin measured there
  (``compute_margins(model, X, layer=k)``) is exactly the drawn distance to the drawn boundary;
- width 1: the unit's value on the x axis, 0 on the y axis (``"pad"``); the boundary is vertical lines, exact;
- width d > 2: a fixed linear projection onto the first two principal axes (``"pca"``: scikit-learn's PCA
  fitted once, by :meth:`LayerView.fit`, on a reference set; later calls reuse it, so the picture moves
  continuously with training instead of jumping with every refit). The boundary of a d-dimensional layer
  has no exact 2-D picture: the surface shown is the tail's decision function on the plane through the
  reference mean spanned by the two axes (a slice). Points generally lie off that plane, so their distance
  to the drawn boundary is not their margin; the margin segment (sample to its nearest boundary point,
  measured in the full layer space) is drawn through the same projection (:meth:`LayerView.segments`),
  shortened by it.

Every evaluation runs the model in eval mode (dropout off: the deployed function margins are measured on).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_int
from ..models.base import eval_mode

__all__ = ["LayerView", "unit_heatmaps", "layer_values"]

_NOTES = {
    "identity": "layer {k} is 2-D: the data, the boundary and the margins are drawn in the layer itself",
    "pad": "layer {k} has one unit: its value on the x axis; the boundary is exact",
    "pca": ("layer {k} has {d} units, shown through a fixed projection onto its first two principal axes "
            "({var:.0%} of the reference variance); the boundary drawn is a slice through the reference "
            "mean, so distances to it are not margins: the margin segments are projected"),
}


def _batches(model, X, fn, batch_size):
    p = next(model.parameters())
    X = torch.as_tensor(np.asarray(X), dtype=p.dtype, device=p.device)
    with eval_mode(model), torch.no_grad():
        out = [fn(xb).reshape(len(xb), -1) for xb in torch.split(X, batch_size)]
    return torch.cat(out).double().cpu().numpy() if out else np.zeros((0, 0))


def layer_values(model, X, layer, *, batch_size: int = 4096) -> np.ndarray:
    """Values (n, units) of ``layer`` at inputs ``X`` (n, *input_shape), in eval mode, float64.

    ``layer``: an index or name of a representation (see ``model.resolve_layer``), ``"features"`` (the
    outputs of the model's input :class:`~marginlab.models.FeatureMap`) or ``"output"`` (the logits)."""
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    X = _check_inputs(model, X)
    if layer == "features":
        fmap = getattr(model, "feature_map", None)
        if fmap is None:
            raise ValueError("layer='features' needs a model built with input features "
                             "(MLP(..., features=...))")
        return _batches(model, X, fmap, batch_size)
    if layer == "output":
        return _batches(model, X, model, batch_size)
    k = model.resolve_layer(layer)
    return _batches(model, X, lambda x: model.activations(x, k), batch_size)


def _check_inputs(model, X) -> np.ndarray:
    X = np.asarray(X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X, dtype=np.float64)
    shape = tuple(model.input_shape)
    if X.ndim < 1 or tuple(X.shape[1:]) != shape:
        raise ValueError(f"X must have shape (n, {', '.join(map(str, shape))}) for this model, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    return X


def unit_heatmaps(model, layer, grid, *, units=None, batch_size: int = 4096) -> np.ndarray:
    """Per-unit heatmaps (units, ny, nx) float32 of ``layer`` over the input plane: unit u's value at every
    point of ``grid`` (an object with ``points`` (ny*nx, 2) in row-major order and ``shape`` (ny, nx), such as
    :class:`marginlab.viz.common.Grid`). ``layer`` as in :func:`layer_values` (0 gives the x and y heatmaps,
    ``"features"`` the input features, ``"output"`` the logits); ``units`` picks some units (default all)."""
    points = getattr(grid, "points", None)
    shape = getattr(grid, "shape", None)
    if points is None or shape is None:
        raise TypeError("grid must have .points (m, 2) and .shape (ny, nx) (e.g. marginlab.viz.common.Grid), "
                        f"got {type(grid).__name__}")
    points = np.asarray(points)
    ny, nx = (int(s) for s in shape)
    if points.shape != (ny * nx, 2):
        raise ValueError(f"grid.points must have shape ({ny * nx}, 2) for grid.shape {shape}, "
                         f"got {points.shape}")
    V = layer_values(model, points, layer, batch_size=batch_size)
    if units is not None:
        units = np.asarray(units)
        if units.ndim != 1 or not np.issubdtype(units.dtype, np.integer) or (
                units.size and (units.min() < 0 or units.max() >= V.shape[1])):
            raise ValueError(f"units must be a list of unit indices in [0, {V.shape[1] - 1}], got {units!r}")
        V = V[:, units]
    return np.ascontiguousarray(V.T.reshape(-1, ny, nx), dtype=np.float32)


class LayerView:
    """2-D coordinates of data in representation ``layer`` of ``model`` and the decision surface there (see
    the module docstring for what is exact). Call :meth:`fit` once on a reference set (the training inputs),
    then :meth:`transform` / :meth:`project` / :meth:`surface_logits` as often as needed: the projection
    stays fixed until :meth:`fit` is called again.

    Fitted attributes: ``layer_`` (index), ``width_`` (units), ``kind_`` ("identity", "pad" or "pca"),
    ``mean_`` (width,) and ``components_`` (2, width) of the affine map ``u = (z - mean_) @ components_.T``
    (zero mean and the identity for "identity"), ``exact_`` (the drawn boundary is the layer's boundary),
    ``explained_variance_ratio_`` (pca) and ``note_`` (one sentence for the view to show).
    """

    def __init__(self, model, layer=0, *, batch_size: int = 4096):
        if not hasattr(model, "resolve_layer"):
            raise TypeError(f"model must be a marginlab MarginNet (layers addressable), "
                            f"got {type(model).__name__}")
        self.model = model
        self.layer = layer
        self.batch_size = check_int(batch_size, "batch_size", min_value=1)
        model.resolve_layer(layer)  # a bad layer is reported now, not at fit

    # -- fitting and state -------------------------------------------------------------------------------
    def fit(self, X_ref) -> LayerView:
        """Fix the coordinates from the reference inputs ``X_ref`` (n, *input_shape): the layer's width
        decides the kind; a layer wider than 2 gets a PCA fitted on its values at ``X_ref`` (n >= 2)."""
        from sklearn.decomposition import PCA

        k = self.model.resolve_layer(self.layer)
        Z = layer_values(self.model, X_ref, k, batch_size=self.batch_size)
        d = Z.shape[1]
        self.layer_, self.width_, self.explained_variance_ratio_ = k, d, None
        if d <= 2:
            self.kind_ = "identity" if d == 2 else "pad"
            self.mean_ = np.zeros(d)
            self.components_ = np.eye(2, d)
        else:
            if len(Z) < 2:
                raise ValueError(f"X_ref must hold at least 2 samples to fit a projection of layer {k}, "
                                 f"got {len(Z)}")
            pca = PCA(n_components=2, svd_solver="full").fit(Z)
            self.kind_ = "pca"
            self.mean_, self.components_ = pca.mean_.astype(np.float64), pca.components_.astype(np.float64)
            self.explained_variance_ratio_ = [float(v) for v in pca.explained_variance_ratio_]
        self.exact_ = self.kind_ != "pca"
        var = sum(self.explained_variance_ratio_ or [1.0])
        self.note_ = _NOTES[self.kind_].format(k=k, d=d, var=var)
        return self

    def to_state(self) -> dict:
        """The fitted projection as plain JSON data (restore with :meth:`from_state` and the same model)."""
        self._check_fitted()
        return {"layer": self.layer_, "width": self.width_, "kind": self.kind_, "mean": self.mean_.tolist(),
                "components": self.components_.tolist(),
                "explained_variance_ratio": self.explained_variance_ratio_}

    @classmethod
    def from_state(cls, model, state: dict) -> LayerView:
        """A view of ``model`` with the projection of :meth:`to_state` (no refit)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from LayerView.to_state(), got {type(state).__name__}")
        view = cls(model, state.get("layer", 0))
        width = int(np.prod(model.representation_shape(view.layer)))
        comps = np.asarray(state.get("components"), dtype=np.float64)
        if state.get("width") != width or comps.shape != (2, width) or state.get("kind") not in _NOTES:
            raise ValueError(f"state does not describe layer {view.layer} of this model ({width} units)")
        view.layer_, view.width_, view.kind_ = model.resolve_layer(view.layer), width, state["kind"]
        view.mean_, view.components_ = np.asarray(state["mean"], dtype=np.float64), comps
        view.explained_variance_ratio_ = state.get("explained_variance_ratio")
        view.exact_ = view.kind_ != "pca"
        var = sum(view.explained_variance_ratio_ or [1.0])
        view.note_ = _NOTES[view.kind_].format(k=view.layer_, d=width, var=var)
        return view

    def _check_fitted(self):
        if not hasattr(self, "kind_"):
            raise RuntimeError("LayerView is not fitted yet: call fit(X_ref) first")

    # -- maps ---------------------------------------------------------------------------------------------
    def project(self, Z) -> np.ndarray:
        """2-D coordinates (n, 2) of points ``Z`` (n, width) of the layer space (e.g. activations, or
        ``MarginResult.point`` of margins measured at this layer)."""
        self._check_fitted()
        Z = np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
        if Z.shape[1] != self.width_:
            raise ValueError(f"Z must have {self.width_} columns (the units of layer {self.layer_}), "
                             f"got {Z.shape[1]}")
        return (Z - self.mean_) @ self.components_.T

    def transform(self, X) -> np.ndarray:
        """2-D coordinates (n, 2) of inputs ``X`` (n, *input_shape) in this layer, at the current weights."""
        self._check_fitted()
        return self.project(layer_values(self.model, X, self.layer_, batch_size=self.batch_size))

    def lift(self, U) -> np.ndarray:
        """Layer-space points (m, width) of 2-D coordinates ``U`` (m, 2): the inverse of :meth:`project` on
        its plane (for "pad" only the first coordinate matters)."""
        self._check_fitted()
        U = np.asarray(U, dtype=np.float64)
        if U.ndim != 2 or U.shape[1] != 2:
            raise ValueError(f"U must have shape (m, 2), got {U.shape}")
        return self.mean_ + U @ self.components_

    def surface_logits(self, U) -> np.ndarray:
        """Logits (m, K) of the tail network at the layer points :meth:`lift` (``U``): the decision surface in
        this view (exact for "identity"/"pad", a slice for "pca"; see ``exact_``). At layer 0 this is the
        model on the input plane."""
        Z = self.lift(U)
        tail = self.model.tail(self.layer_)
        shape = tuple(self.model.representation_shape(self.layer_))
        p = next(self.model.parameters())
        out = []
        with eval_mode(self.model), torch.no_grad():
            for i in range(0, len(Z), self.batch_size):
                z = torch.as_tensor(Z[i:i + self.batch_size], dtype=p.dtype, device=p.device)
                out.append(tail(z.reshape((-1,) + shape)).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.n_classes))

    def segments(self, X, result) -> tuple[np.ndarray, np.ndarray]:
        """``(start, end)`` (n, 2): each sample and its nearest boundary point from ``result`` (margins of
        ``X`` measured at this layer), both through this view's map (NaN rows where no point was found)."""
        self._check_fitted()
        if getattr(result, "layer", None) != self.layer_:
            raise ValueError(f"result holds margins at layer {getattr(result, 'layer', None)}, this view "
                             f"shows layer {self.layer_}: compute them with "
                             f"compute_margins(..., layer={self.layer_})")
        start = self.transform(X)
        if len(result) != len(start):
            raise ValueError(f"result has {len(result)} samples, X has {len(start)}")
        return start, self.project(np.asarray(result.point).reshape(len(start), -1))
