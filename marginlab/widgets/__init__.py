"""Interactive apps (ipywidgets + plotly FigureWidget) over the numeric core and :mod:`marginlab.viz`.

Imported lazily: ``from marginlab.widgets import Playground`` loads ipywidgets, plotly and torch only then.
"""

from __future__ import annotations

import importlib

# public name -> submodule
_NAMES = {"Playground": "playground", "PlaygroundSettings": "playground", "MarginExplorer": "explorer",
          "ExplorerSettings": "explorer", "Compare": "comparison", "compare": "comparison"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'marginlab.widgets' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
