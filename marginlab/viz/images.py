"""Image panels (sample, boundary point, perturbation, neighbours) and per-class margin bars."""

from __future__ import annotations

import numpy as np

__all__ = ["image_panels_figure", "margin_bars_figure", "as_image", "panel_arrays", "bar_values"]


def as_image(x, shape=None) -> np.ndarray:
    """A 2-D float32 array from one sample: (28, 28), (1, 28, 28) or flat (784,) with ``shape`` or square."""
    x = np.asarray(x, dtype=np.float32)
    if shape is not None:
        return x.reshape(shape)
    x = np.squeeze(x)
    if x.ndim == 1:
        side = int(round(np.sqrt(x.size)))
        if side * side != x.size:
            raise ValueError(f"cannot show a flat sample of size {x.size} as a square image; pass shape=")
        x = x.reshape(side, side)
    if x.ndim != 2:
        raise ValueError(f"an image must be 2-D after squeezing, got shape {x.shape}")
    return x


def panel_arrays(panels, zrange=(0.0, 1.0), shape=None):
    """``(title, z, zmin, zmax)`` per ``(title, image, kind)`` panel (see :func:`image_panels_figure`); the
    explorer uses it to update an existing figure in place, which is much faster than building a new one.
    ``shape`` ``(h, w)`` reshapes flat samples (default: square, 28x28 for empty panels)."""
    out = []
    for title, img, kind in panels:
        if kind not in ("image", "diff"):
            raise ValueError(f"panel kind must be 'image' or 'diff', got {kind!r}")
        z = np.zeros(shape or (28, 28), np.float32) if img is None else as_image(img, shape)
        if kind == "image":
            out.append((title, z, zrange[0], zrange[1]))
        else:
            m = float(np.abs(z).max()) or 1.0
            out.append((title, z, -m, m))
    return out


def bar_values(distances, pred=None, boundary_class=None):
    """``(y, colors)`` of :func:`margin_bars_figure`: NaN for the predicted class, red for the nearest."""
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    K = len(d)
    colors = ["#636EFA"] * K
    if boundary_class is not None and 0 <= int(boundary_class) < K:
        colors[int(boundary_class)] = "#EF553B"
    y = np.where(np.isfinite(d), d, np.nan)
    if pred is not None and 0 <= int(pred) < K:
        y[int(pred)] = np.nan
    return y, colors


def image_panels_figure(panels, *, zrange=(0.0, 1.0), shape=None, width: int = 760, height: int = 220):
    """A row of grey-scale heatmaps.

    ``panels``: list of ``(title, image, kind)``; ``kind`` is ``"image"`` (fixed range ``zrange``) or
    ``"diff"`` (diverging colours, symmetric about 0, scaled to that panel's largest absolute value).
    ``image`` may be ``None`` for an empty panel. Images are flipped so row 0 is at the top.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(panels)
    if not panels:
        raise ValueError("panels must hold at least one (title, image, kind) entry")
    fig = make_subplots(
        rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.02
    )
    arrays = panel_arrays(panels, zrange, shape)
    for j, ((_, z, lo, hi), (_, _, kind)) in enumerate(zip(arrays, panels), start=1):
        cmap = "gray_r" if kind == "image" else "RdBu"
        hm = go.Heatmap(z=z, zmin=lo, zmax=hi, colorscale=cmap, showscale=False, hoverinfo="z")
        fig.add_trace(hm, row=1, col=j)
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(
            showticklabels=False, autorange="reversed", scaleanchor=f"x{j if j > 1 else ''}", row=1, col=j
        )
    fig.update_annotations(font_size=11)
    fig.update_layout(width=width, height=height, margin=dict(l=5, r=5, t=30, b=5))
    return fig


def margin_bars_figure(
    distances,
    *,
    pred=None,
    boundary_class=None,
    class_names=None,
    title: str = "",
    width: int = 380,
    height: int = 240,
):
    """Bar chart of the distance from one sample to every other class's boundary (``distances`` (K,)).

    The predicted class (distance 0 or NaN) gets no bar; the nearest (``boundary_class``) is drawn in red.
    """
    import plotly.graph_objects as go

    y, colors = bar_values(distances, pred, boundary_class)
    names = [str(c) for c in (class_names if class_names is not None else range(len(y)))]
    fig = go.Figure(
        go.Bar(x=names, y=y, marker_color=colors, hovertemplate="class %{x}: %{y:.4g}<extra></extra>")
    )
    fig.update_layout(
        title=dict(text=title, font=dict(size=12)),
        width=width,
        height=height,
        margin=dict(l=40, r=10, t=35, b=30),
        xaxis=dict(title="other class", type="category"),
        yaxis=dict(title="distance"),
        showlegend=False,
    )
    return fig
