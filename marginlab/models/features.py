"""Fixed input features of a 2-D point as TensorFlow Playground offers them: x, y, x^2, y^2, xy, sin x, sin y.

A :class:`FeatureMap` is a differentiable module without parameters, placed at the start of a network's first
block (``MLP((2,), hidden, K, features=("x", "y", "xy"))``). The network's input therefore stays the 2-D
point: representation 0 is the point itself, margins at layer 0 are distances in the plane (through the map,
as the exact solvers differentiate through it), and representation 1 is still the first hidden layer. The
feature values themselves are not a representation of the network; :meth:`FeatureMap.forward` gives them
(e.g. for a strip of feature heatmaps).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FEATURES", "FeatureMap", "check_features"]

# canonical name -> f(x, y); the order is the order TensorFlow Playground lists them in
FEATURES = {
    "x": lambda x, y: x,
    "y": lambda x, y: y,
    "x^2": lambda x, y: x * x,
    "y^2": lambda x, y: y * y,
    "xy": lambda x, y: x * y,
    "sin x": lambda x, y: torch.sin(x),
    "sin y": lambda x, y: torch.sin(y),
}
# other spellings people type, mapped to the canonical names (after lower-casing, spaces removed); TF
# Playground's X1/X2 are left out on purpose: "x2" reads as x squared as easily as the second coordinate
_ALIASES = {
    "x**2": "x^2", "x²": "x^2", "y**2": "y^2", "y²": "y^2", "x*y": "xy", "yx": "xy",
    "sinx": "sin x", "sin(x)": "sin x", "siny": "sin y", "sin(y)": "sin y",
}


def _canonical(name) -> str | None:
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    if key in FEATURES:
        return key
    squeezed = key.replace(" ", "")
    return _ALIASES.get(squeezed, squeezed if squeezed in FEATURES else None)


def check_features(names, name: str = "features") -> tuple[str, ...]:
    """Canonical feature names from a sequence of names (or one comma-separated string); raises naming
    ``name`` and listing the allowed features for an unknown, repeated or empty choice."""
    if isinstance(names, FeatureMap):
        return names.names
    if isinstance(names, str):
        names = [p for p in names.split(",") if p.strip()]
    try:
        names = list(names)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of feature names from {list(FEATURES)}, "
                        f"got {names!r}") from None
    out = []
    for i, raw in enumerate(names):
        canon = _canonical(raw)
        if canon is None:
            raise ValueError(f"{name}[{i}] = {raw!r} is not a feature; allowed: {', '.join(FEATURES)}")
        if canon in out:
            raise ValueError(f"{name} lists {canon!r} twice; each feature may appear once")
        out.append(canon)
    if not out:
        raise ValueError(f"{name} must list at least one feature from {', '.join(FEATURES)}")
    return tuple(out)


class FeatureMap(nn.Module):
    """``phi(p) = (f_1(x, y), ..., f_m(x, y))`` for points ``p = (x, y)``: input (n, 2), output (n, m).

    ``names`` in the order of the output columns (see :data:`FEATURES`; ``"sin(x)"``, ``"x*y"``, ``"x**2"``
    are accepted spellings). No parameters: the map is fixed and differentiable, so a margin measured at the
    input is the distance in the plane to the boundary of ``network(phi(p))``.
    """

    def __init__(self, names=("x", "y")):
        super().__init__()
        self.names = check_features(names, "names")

    @property
    def n_features(self) -> int:
        return len(self.names)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        if p.ndim < 2 or p[0].numel() != 2:
            raise ValueError(f"FeatureMap takes points of shape (n, 2), got {tuple(p.shape)}")
        p = p.reshape(len(p), 2)
        x, y = p[:, 0], p[:, 1]
        # names, not function objects, are kept on the module: it pickles (Dask, joblib) like any module
        return torch.stack([FEATURES[n](x, y) for n in self.names], dim=1)

    def extra_repr(self) -> str:
        return f"names={list(self.names)}"
