"""Pure figure builders: data in, ``plotly.graph_objects.Figure`` out (no widgets, no training inside).

Names are imported lazily (plotly loads only when a builder is used). Modules: ``common`` (palette, grids,
boundary extraction), ``playground`` (2-D decision surface, training and margin curves),
``embedding`` (2-D embedding scatter), ``images`` (MNIST image panels), ``histograms`` (margin
histograms by group).
"""

from __future__ import annotations

import importlib

# public name -> submodule; other engineers' modules are listed here as they add names
_NAMES = {
    # common
    "CLASS_COLORS": "common",
    "class_color": "common",
    "Grid": "common",
    "make_grid": "common",
    "boundary_segments": "common",
    "region_levels": "common",
    "region_colorscale": "common",
    "segments_xy": "common",
    # playground
    "decision_surface": "playground",
    "training_curves": "playground",
    "margin_curves": "playground",
    "SURFACE_TRACES": "playground",
    # embedding
    "embedding_figure": "embedding",
    "highlight_xy": "embedding",
    "CATEGORY_COLORS": "embedding",
    # images (MNIST explorer)
    "image_panels_figure": "images",
    "margin_bars_figure": "images",
    "as_image": "images",
    # histograms (MNIST explorer)
    "margin_histogram": "histograms",
    "histogram_props": "histograms",
    "margin_histogram_figure": "histograms",
    "sample_groups": "histograms",
    "GROUP_COLORS": "histograms",
    "MODEL_TYPES": "histograms",
}
_MODULES = ("common", "playground", "embedding", "images", "histograms")

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'marginlab.viz' has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | set(_MODULES))
