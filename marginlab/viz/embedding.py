"""Scatter plots of 2-D embeddings: data in, ``go.Figure`` out.

Trace layout (the explorer relies on it): the data traces come first (one per category, or a single trace
for a continuous colour), each carrying the sample indices it shows in ``customdata``; then a
``"highlight"`` trace (open rings on highlighted samples) and a ``"selected"`` trace (the clicked sample).
WebGL (``Scattergl``) is used above ``gl_threshold`` points.
"""

from __future__ import annotations

import numpy as np

__all__ = ["embedding_figure", "highlight_xy", "CATEGORY_COLORS"]

# plotly's qualitative "Plotly" palette (one definition, shared with the playground)
from .common import CLASS_COLORS as CATEGORY_COLORS  # noqa: E402


def _scatter_cls(n, gl_threshold):
    import plotly.graph_objects as go

    return go.Scattergl if n >= gl_threshold else go.Scatter


def highlight_xy(Z, rows):
    """x and y arrays (float32) of rows ``rows`` of ``Z``; empty arrays for no rows."""
    rows = np.asarray([] if rows is None else rows, dtype=np.int64)
    return Z[rows, 0].astype(np.float32), Z[rows, 1].astype(np.float32)


def _categorical_traces(Scatter, Z, color, category_names, hover, marker_size) -> list:
    traces = []
    for j, c in enumerate(np.unique(color)):
        rows = np.flatnonzero(color == c)
        coded = category_names is not None and np.issubdtype(color.dtype, np.integer)
        traces.append(
            Scatter(
                x=Z[rows, 0],
                y=Z[rows, 1],
                mode="markers",
                name=str(category_names[int(c)]) if coded else str(c),
                customdata=rows.astype(np.int32),
                text=None if hover is None else hover[rows],
                hoverinfo="text" if hover is not None else "x+y",
                marker=dict(size=marker_size, color=CATEGORY_COLORS[j % len(CATEGORY_COLORS)], opacity=0.8),
            )
        )
    return traces


def _continuous_traces(Scatter, Z, color, hover, marker_size, colorbar_title) -> list:
    vals = color.astype(np.float32)
    finite = np.isfinite(vals)
    rows, traces = np.flatnonzero(finite), []
    if (~finite).any():
        nan_rows = np.flatnonzero(~finite)
        traces.append(
            Scatter(
                x=Z[nan_rows, 0],
                y=Z[nan_rows, 1],
                mode="markers",
                name="no value",
                showlegend=False,
                customdata=nan_rows.astype(np.int32),
                text=None if hover is None else hover[nan_rows],
                hoverinfo="text" if hover is not None else "x+y",
                marker=dict(size=marker_size, color="lightgrey"),
            )
        )
    lo, hi = (float(vals[rows].min()), float(vals[rows].max())) if len(rows) else (0.0, 1.0)
    traces.append(
        Scatter(
            x=Z[rows, 0],
            y=Z[rows, 1],
            mode="markers",
            name=colorbar_title or "value",
            customdata=rows.astype(np.int32),
            showlegend=False,
            text=None if hover is None else hover[rows],
            hoverinfo="text" if hover is not None else "x+y",
            marker=dict(
                size=marker_size,
                color=vals[rows],
                colorscale="Viridis",
                cmin=lo,
                cmax=hi,
                opacity=0.85,
                colorbar=dict(title=dict(text=colorbar_title, side="right"), thickness=12),
            ),
        )
    )
    return traces


def embedding_figure(
    Z,
    color,
    *,
    kind: str = "categorical",
    category_names=None,
    hover=None,
    title: str = "",
    colorbar_title: str = "",
    highlight=None,
    selected=None,
    width: int = 480,
    height: int = 440,
    marker_size: float = 4.0,
    gl_threshold: int = 1000,
    uirevision: str = "embedding",
):
    """Scatter of embedding ``Z`` (n, 2) coloured by ``color`` (n,).

    ``kind="categorical"``: ``color`` holds category codes (ints) or names; one trace per category, named from
    ``category_names`` when codes are given. ``kind="continuous"``: ``color`` is a float (e.g. the margin),
    shown with a colour bar (NaN values in grey). ``hover``: per-point text. ``highlight``: sample indices to
    ring; ``selected``: one sample index to mark.
    """
    import plotly.graph_objects as go

    Z = np.asarray(Z, dtype=np.float32)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"Z must have shape (n, 2), got {Z.shape}")
    n = len(Z)
    color = np.asarray(color)
    if color.shape != (n,):
        raise ValueError(f"color must have shape ({n},), got {color.shape}")
    if kind not in ("categorical", "continuous"):
        raise ValueError(f"kind must be 'categorical' or 'continuous', got {kind!r}")
    hover = None if hover is None else np.asarray(hover, dtype=object)
    Scatter = _scatter_cls(n, gl_threshold)
    if kind == "categorical":
        traces = _categorical_traces(Scatter, Z, color, category_names, hover, marker_size)
    else:
        traces = _continuous_traces(Scatter, Z, color, hover, marker_size, colorbar_title)
    hx, hy = highlight_xy(Z, highlight)
    ring = dict(size=marker_size + 5, color="rgba(0,0,0,0)", line=dict(color="black", width=1.2))
    traces.append(
        Scatter(x=hx, y=hy, mode="markers", name="highlight", hoverinfo="skip", showlegend=False, marker=ring)
    )
    sx, sy = highlight_xy(Z, [] if selected is None else [selected])
    # a plain Scatter for the one clicked point: WebGL contexts are scarce (only ~4-8 per page)
    traces.append(
        go.Scatter(
            x=sx,
            y=sy,
            mode="markers",
            name="selected",
            hoverinfo="skip",
            showlegend=False,
            marker=dict(size=16, symbol="x-thin-open", color="red", line=dict(width=3)),
        )
    )
    fig = go.Figure(traces)
    pad = 0.05 * (np.ptp(Z, axis=0) + 1e-6) if n else np.ones(2)
    lo = Z.min(0) - pad if n else -np.ones(2)
    hi = Z.max(0) + pad if n else np.ones(2)
    # fixed ranges and a constant uirevision keep zoom/pan steady across highlight updates
    fig.update_layout(
        title=dict(text=title, font=dict(size=13)),
        width=width,
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        uirevision=uirevision,
        clickmode="event",
        dragmode="pan",
        legend=dict(itemsizing="constant", font=dict(size=10)),
        xaxis=dict(range=[float(lo[0]), float(hi[0])], showticklabels=False, zeroline=False),
        yaxis=dict(range=[float(lo[1]), float(hi[1])], showticklabels=False, zeroline=False),
    )
    return fig
