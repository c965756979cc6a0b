"""Display helper shared by the apps.

plotly's FigureWidget renders a new view from two synced traits (``_widget_data``, ``_widget_layout``)
that it refreshes only when the FigureWidget itself is displayed. An app shows its figures inside boxes,
so without this, updates made before the first view (training ticks, margins solved in ``__init__``) would
be missing from the page (JupyterLab and Voilà alike).
"""

from __future__ import annotations

from copy import deepcopy

__all__ = ["sync_figures", "display_app"]


def sync_figures(root) -> int:
    """Copy the current Python-side state of every FigureWidget under ``root`` into its view traits."""
    seen, stack, n = set(), [root], 0
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        if hasattr(w, "_widget_data") and hasattr(w, "_layout_obj"):
            w._widget_layout = deepcopy(w._layout_obj._props)
            w._widget_data = deepcopy(w._data)
            n += 1
        stack.extend(getattr(w, "children", ()) or ())
    return n


def display_app(root):
    """Display ``root`` after syncing its figures (the apps' ``_ipython_display_``)."""
    from IPython.display import display

    sync_figures(root)
    display(root)
