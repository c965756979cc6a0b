"""Margin histograms by sample group, named as in seed 000 §4.4 Table 1 (``sample-type:model-type``)."""

from __future__ import annotations

import numpy as np

__all__ = ["MODEL_TYPES", "sample_groups", "margin_histogram_figure", "GROUP_COLORS"]

# corruption kind (marginlab.corruption) -> model type in seed 000's names
MODEL_TYPES = {None: "clean", "none": "clean", "label": "label-corrupted", "gaussian": "input-corrupted"}
GROUP_COLORS = {"clean": "#2CA02C", "corrupt": "#D62728"}  # seed 000 Figs 4-5: green clean, red corrupt


def sample_groups(corrupted, corruption=None) -> np.ndarray:
    """Seed 000 group name per sample: ``clean:clean`` for a clean model, else ``clean:<model>`` /
    ``corrupt:<model>`` with ``<model>`` ``label-corrupted`` or ``input-corrupted``."""
    if corruption not in MODEL_TYPES:
        raise ValueError(f"corruption must be one of {list(MODEL_TYPES)}, got {corruption!r}")
    corrupted = np.asarray(corrupted, dtype=bool)
    model = MODEL_TYPES[corruption]
    out = np.full(corrupted.shape, f"clean:{model}", dtype=object)
    if model != "clean":
        out[corrupted] = f"corrupt:{model}"
    elif corrupted.any():
        raise ValueError("samples are marked corrupted but the model is clean (corruption=None)")
    return out


def margin_histogram_figure(
    margins,
    groups,
    *,
    nbins: int = 40,
    value_range=None,
    title: str = "",
    xaxis_title: str = "margin",
    width: int = 760,
    height: int = 280,
):
    """Overlaid histograms of ``margins`` per group name in ``groups``, sharing one set of bins.

    Non-finite margins are left out. ``value_range=(lo, hi)`` shades that band (the current selection).
    Box-selecting on the figure reports an x range, which the explorer turns into a highlight.
    """
    import plotly.graph_objects as go

    m = np.asarray(margins, dtype=np.float64)
    g = np.asarray(groups, dtype=object)
    if m.shape != g.shape or m.ndim != 1:
        raise ValueError(f"margins and groups must be 1-D of the same length, got {m.shape} and {g.shape}")
    ok = np.isfinite(m)
    lo, hi = (float(m[ok].min()), float(m[ok].max())) if ok.any() else (0.0, 1.0)
    size = (hi - lo) / max(int(nbins), 1) or 1.0
    fig = go.Figure()
    for name in sorted(set(g[ok].tolist())):
        sel = ok & (g == name)
        kind = name.split(":")[0]
        fig.add_trace(
            go.Histogram(
                x=m[sel].astype(np.float32),
                name=f"{name} ({int(sel.sum())})",
                opacity=0.6,
                xbins=dict(start=lo, end=hi + size, size=size),
                marker_color=GROUP_COLORS.get(kind),
                hovertemplate="%{x}: %{y}<extra>" + name + "</extra>",
            )
        )
    if value_range is not None:
        fig.add_vrect(x0=value_range[0], x1=value_range[1], fillcolor="gold", opacity=0.25, line_width=0)
    fig.update_layout(
        barmode="overlay",
        title=dict(text=title, font=dict(size=12)),
        width=width,
        height=height,
        margin=dict(l=40, r=10, t=35, b=35),
        xaxis_title=xaxis_title,
        yaxis_title="samples",
        dragmode="select",
        selectdirection="h",
        legend=dict(font=dict(size=10)),
    )
    return fig
