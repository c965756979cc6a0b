"""marginlab: study classification margins of neural networks.

Data flows one way: data -> corruption -> models -> train -> margins -> analysis -> viz -> widgets.
Submodules are imported lazily so ``import marginlab`` stays light (no torch/plotly/umap at import).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "data", "corruption", "models", "train", "margins", "gp", "embed", "viz", "widgets",
    "experiments", "attacks", "groups", "sessions", "device", "cli", "analysis",
}

__all__ = sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'marginlab' has no attribute {name!r}")
