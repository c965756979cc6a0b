"""Figure builders for 2-D margin studies: data in, ``plotly.graph_objects.Figure`` out.

Each figure has a fixed trace layout so a live view (the Playground widget) can update it in place:
the ``*_props`` functions return the property dicts of single traces, and the ``*`` builders assemble the
whole figure from the same functions, so a figure is built in one place only.

``decision_surface`` traces, in order (:data:`SURFACE_TRACES`): class-region heatmap (also the target of
clicks on empty space), a hidden unit's heatmap (shown while one is hovered in the strip), decision
boundary, train (clean), train (corrupted), test, rings around samples whose margin is not verified
converged ("not converged"), every training sample's segment, linearized and DeepFool estimates, the
selected sample's segment and boundary point, the selected-sample ring.
"""

from __future__ import annotations

import numpy as np

from .common import (
    REGION_LEVELS,
    Grid,
    boundary_segments,
    class_color,
    region_colorscale,
    region_levels,
    segments_xy,
)

__all__ = [
    "SURFACE_TRACES",
    "decision_surface",
    "regions_props",
    "unit_props",
    "unit_strip",
    "boundary_props",
    "points_props",
    "segment_props",
    "marker_props",
    "unverified_props",
    "training_curves",
    "curves_props",
    "margin_curves",
    "margin_curves_props",
    "CORRUPTION_SYMBOLS",
]

SURFACE_TRACES = (
    "regions",
    "unit",
    "boundary",
    "train",
    "train_corrupted",
    "test",
    "unverified",
    "all_segments",
    "linearized",
    "deepfool",
    "segment",
    "boundary_point",
    "selected",
)

# kind code -> marker symbol: 0 clean, 1 label-corrupted, 2 input-corrupted, 3 both
CORRUPTION_SYMBOLS = ("circle", "x", "diamond", "star")

_EMPTY = np.zeros(0, np.float32)


def _class_colorscale(n_classes: int) -> list:
    scale = []
    for k in range(n_classes):
        scale += [[k / n_classes, class_color(k)], [(k + 1) / n_classes, class_color(k)]]
    return scale


def regions_props(grid: Grid, logits, n_classes: int, *, discrete: bool = False) -> dict:
    """Heatmap ``z`` (int8 class/confidence levels; the class alone when ``discrete``) for grid ``logits``
    (ny*nx, K)."""
    return {"z": region_levels(logits, grid.shape, discrete=discrete)}


def unit_props(grid: Grid, values=None) -> dict:
    """The hovered hidden unit's values (ny, nx) over the main surface (hidden when ``values`` is None), on a
    symmetric colour range so 0 (a ReLU's kink) is white."""
    if values is None:
        return {"visible": False}
    v = np.asarray(values, dtype=np.float32)
    top = float(np.abs(v).max()) or 1.0
    return {"z": v, "x": grid.xs, "y": grid.ys, "zmin": -top, "zmax": top, "visible": True}


def unit_strip(maps, grid: Grid, *, layer: int, width: int = 440, cols: int = 8):
    """Small heatmaps of hidden units (``maps`` (units, ny, nx) over the plane ``grid``), ``cols`` per row,
    one trace per unit named ``unit k`` (hovering one paints the main surface with it)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    maps = np.asarray(maps, dtype=np.float32)
    n = max(len(maps), 1)
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=0.02)
    for k, m in enumerate(maps):
        top = float(np.abs(m).max()) or 1.0
        fig.add_trace(go.Heatmap(z=m, x=grid.xs, y=grid.ys, zmin=-top, zmax=top, colorscale="RdBu",
                                 reversescale=True, showscale=False, name=f"unit {k}",
                                 hovertemplate=f"layer {layer} unit {k}<extra></extra>"),
                      row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    cell = (width - 10) / cols
    fig.update_layout(width=width, height=int(rows * cell + 30), margin={"l": 5, "r": 5, "t": 25, "b": 5},
                      title={"text": f"layer {layer}: units (hover one to paint the surface)", "x": 0.02,
                             "font": {"size": 12}}, uirevision="strip", hovermode="closest")
    return fig


def boundary_props(grid: Grid, logits) -> dict:
    x, y = boundary_segments(grid, logits)
    return {"x": x, "y": y}


def points_props(X, y, n_classes: int, *, rows=None, kind=None, hover_prefix: str = "") -> dict:
    """A scatter trace's data for samples ``X`` (n, 2) with labels ``y``; ``rows`` go into ``customdata``
    (the sample's row in its dataset); ``kind`` (n,) picks the marker symbol (see CORRUPTION_SYMBOLS)."""
    X = np.asarray(X, dtype=np.float32).reshape(-1, 2)
    y = np.asarray(y).astype(np.int8)
    rows = np.arange(len(X), dtype=np.int32) if rows is None else np.asarray(rows, dtype=np.int32)
    marker = {"color": y, "cmin": -0.5, "cmax": n_classes - 0.5, "colorscale": _class_colorscale(n_classes)}
    if kind is not None:
        marker["symbol"] = [CORRUPTION_SYMBOLS[int(k)] for k in np.asarray(kind)]
    return {
        "x": X[:, 0],
        "y": X[:, 1],
        "customdata": rows,
        "marker": marker,
        "hovertemplate": f"{hover_prefix}#%{{customdata}} class %{{marker.color}}<br>"
        "(%{x:.3f}, %{y:.3f})<extra></extra>",
    }


def segment_props(start, end, dtype=np.float64) -> dict:
    """Line pieces from ``start`` (m, 2) to ``end`` (m, 2) (rows with NaN are left out). float64 keeps a
    drawn boundary point exact (it still verifies); pass float32 for many segments (smaller payload)."""
    x, y = segments_xy(start, end, dtype=dtype)
    return {"x": x, "y": y}


def marker_props(points) -> dict:
    """Marker positions ``points`` (m, 2) (NaN rows left out)."""
    P = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    P = P[np.isfinite(P).all(1)]
    return {"x": P[:, 0], "y": P[:, 1]}


def unverified_props(points, status) -> dict:
    """Rings around samples ``points`` (m, 2) whose margin status (``status`` words, e.g. ``"not
    converged"``) is not ``converged``; the words show on hover."""
    P = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    words = np.asarray(status, dtype=str).reshape(-1)
    return {"x": P[:, 0], "y": P[:, 1], "text": words.tolist()}


def _xy(props=None) -> dict:
    return props if props is not None else {"x": _EMPTY, "y": _EMPTY}


def _one_segment(start, end) -> dict:
    if start is None or end is None:
        return _xy()
    return segment_props(np.reshape(start, (1, 2)), np.reshape(end, (1, 2)))


def _sample_traces(go, K, train_X, train_y, train_kind, test_X, test_y) -> list:
    """The three sample traces: clean training samples, corrupted ones (symbol by kind), test samples."""

    def pts(X, y, rows, kind, name, marker):
        if X is None or len(X) == 0:
            props = {"x": _EMPTY, "y": _EMPTY, "customdata": np.zeros(0, np.int32)}
        else:
            props = points_props(X, y, K, rows=rows, kind=kind, hover_prefix=f"{name} ")
        props["marker"] = {**marker, **props.get("marker", {})}
        return go.Scatter(mode="markers", name=name, **props)

    train_X = np.zeros((0, 2), np.float32) if train_X is None else np.asarray(train_X).reshape(-1, 2)
    kind = np.zeros(len(train_X), np.int8) if train_kind is None else np.asarray(train_kind)
    ty = np.zeros(0, np.int64) if train_y is None else np.asarray(train_y)
    clean, rows = kind == 0, np.arange(len(train_X))
    return [
        pts(train_X[clean], ty[clean] if len(ty) else ty, rows[clean], None, "train",
            {"size": 7, "line": {"color": "white", "width": 1}}),
        pts(train_X[~clean], ty[~clean] if len(ty) else ty, rows[~clean], kind[~clean], "train (corrupted)",
            {"size": 9, "line": {"color": "black", "width": 1.5}}),
        pts(test_X, test_y, None, None, "test",
            {"size": 7, "opacity": 0.55, "line": {"color": "black", "width": 1}}),
    ]


def _overlay_traces(go, selected, boundary_point, estimates, all_segments) -> list:
    """Rings of unverified samples, all segments, the estimates, the selected segment, point and ring."""
    quiet = {"hoverinfo": "skip", "showlegend": False}
    traces = [
        go.Scatter(mode="markers", name="not converged", x=_EMPTY, y=_EMPTY, text=[], showlegend=False,
                   hovertemplate="margin status: %{text}<extra></extra>",
                   marker={"symbol": "circle-open", "size": 13, "color": "#FF7F0E", "line": {"width": 2}}),
        go.Scatter(mode="lines", name="all segments", line={"color": "rgba(40,40,40,0.45)", "width": 1},
                   **quiet, **_xy(None if all_segments is None
                                  else segment_props(*all_segments, dtype=np.float32))),
    ]
    estimates = estimates or {}
    for name, dash, symbol in (("linearized", "dash", "triangle-up"), ("deepfool", "dot", "square")):
        traces.append(go.Scatter(mode="lines+markers", name=name, line={"color": "#555", "width": 1.5,
                                                                        "dash": dash},
                                 marker={"symbol": symbol, "size": [0, 9, 0], "color": "#555"}, **quiet,
                                 **_one_segment(selected, estimates.get(name))))
    has_sel = selected is not None and boundary_point is not None
    traces += [
        go.Scatter(mode="lines", name="segment", line={"color": "black", "width": 2.5}, **quiet,
                   **_one_segment(selected, boundary_point if has_sel else None)),
        go.Scatter(mode="markers", name="boundary point", **quiet,
                   marker={"symbol": "x-thin", "size": 14, "line": {"width": 3, "color": "black"}},
                   **_xy(marker_props(np.reshape(boundary_point, (1, 2))) if has_sel else None)),
        go.Scatter(mode="markers", name="selected", **quiet,
                   marker={"symbol": "circle-open", "size": 16, "line": {"width": 2.5}, "color": "black"},
                   **_xy(marker_props(np.reshape(selected, (1, 2))) if selected is not None else None)),
    ]
    return traces


def decision_surface(grid: Grid, logits, *, n_classes: int, train_X=None, train_y=None, train_kind=None,
                     test_X=None, test_y=None, selected=None, boundary_point=None, estimates=None,
                     all_segments=None, title: str = "", width: int = 500, height: int = 480,
                     uirevision: str = "surface", discrete: bool = False):
    """Class regions and decision boundary of a 2-D classifier, with samples and margin segments.

    ``logits`` (ny*nx, K) are the model's outputs at ``grid.points``. ``train_kind`` (n,) marks corrupted
    training samples (0 clean, 1 label, 2 input, 3 both). ``selected`` (2,) is a sample and
    ``boundary_point`` (2,) its nearest boundary point; ``estimates`` maps ``"linearized"``/``"deepfool"`` to
    estimated boundary points (2,); ``all_segments`` is a pair ``(samples (m, 2), boundary points (m, 2))``.
    The traces are :data:`SURFACE_TRACES`, in that order. ``discrete`` draws the regions without the
    confidence shading.
    """
    import plotly.graph_objects as go

    K = int(n_classes)
    regions = go.Heatmap(x=grid.xs, y=grid.ys, name="regions", showscale=False, hoverinfo="none",
                         colorscale=region_colorscale(K), zmin=-0.5, zmax=K * REGION_LEVELS - 0.5,
                         **regions_props(grid, logits, K, discrete=discrete))
    boundary = go.Scatter(mode="lines", name="boundary", hoverinfo="skip", showlegend=False,
                          line={"color": "#222", "width": 2}, **boundary_props(grid, logits))
    unit = go.Heatmap(x=grid.xs, y=grid.ys, name="unit", showscale=False, hoverinfo="none", visible=False,
                      colorscale="RdBu", reversescale=True, opacity=0.85, z=np.zeros((1, 1), np.float32))
    traces = [regions, unit, boundary, *_sample_traces(go, K, train_X, train_y, train_kind, test_X, test_y),
              *_overlay_traces(go, selected, boundary_point, estimates, all_segments)]
    fig = go.Figure(traces)
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 14}}, width=width, height=height,
        margin={"l": 40, "r": 10, "t": 40 if title else 10, "b": 30}, uirevision=uirevision,
        hovermode="closest", clickmode="event", dragmode=False, plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.08, "x": 0, "font": {"size": 11}},
        xaxis={"range": grid.x_range, "constrain": "domain", "showgrid": False, "zeroline": False},
        yaxis={"range": grid.y_range, "scaleanchor": "x", "scaleratio": 1, "constrain": "domain",
               "showgrid": False, "zeroline": False},
    )
    return fig


def _f32(v):
    return np.asarray(v, dtype=np.float32)


def curves_props(history) -> list[dict]:
    """``x, y`` of the four training curves (train loss, test loss, train acc, test acc) from a history
    (an object or dict with ``epoch, loss, acc, val_loss, val_acc`` lists)."""
    get = (lambda k: history.get(k, [])) if isinstance(history, dict) else (lambda k: getattr(history, k, []))
    ep = _f32(get("epoch"))
    out = []
    for key in ("loss", "val_loss", "acc", "val_acc"):
        v = _f32(get(key))
        out.append({"x": ep[: len(v)], "y": v})
    return out


def training_curves(
    history, *, title: str = "", width: int = 440, height: int = 230, uirevision: str = "curves"
):
    """Loss (left) and accuracy (right) per epoch, train solid and test dashed."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.15)
    names = ("train", "test", "train acc", "test acc")
    for i, props in enumerate(curves_props(history)):
        fig.add_trace(
            go.Scatter(
                mode="lines",
                name=names[i],
                showlegend=i < 2,
                line={
                    "color": "#4C78A8" if i % 2 == 0 else "#F58518",
                    "dash": "solid" if i % 2 == 0 else "dash",
                },
                **props,
            ),
            row=1,
            col=1 + i // 2,
        )
    fig.update_layout(
        title={"text": title, "x": 0.02},
        width=width,
        height=height,
        uirevision=uirevision,
        margin={"l": 40, "r": 10, "t": 30, "b": 35},
        plot_bgcolor="white",
    )
    fig.update_xaxes(title_text="epoch", gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return fig


def margin_curves_props(epochs, curves: dict) -> list[dict]:
    ep = _f32(epochs)
    return [{"x": ep, "y": _f32(v), "name": k} for k, v in curves.items()]


def margin_curves(
    epochs,
    curves: dict,
    *,
    title: str = "Margin over training",
    width: int = 440,
    height: int = 230,
    uirevision: str = "margin-curves",
):
    """Margin statistics over training, e.g. ``{"train min": [...], "train mean": [...]}`` against
    ``epochs`` (a float epoch per measurement)."""
    import plotly.graph_objects as go

    colors = ("#E45756", "#4C78A8", "#9D9D9D", "#72B7B2")
    dashes = ("solid", "solid", "dash", "dot")
    fig = go.Figure(
        [
            go.Scatter(mode="lines", line={"color": colors[i % 4], "dash": dashes[i % 4]}, **p)
            for i, p in enumerate(margin_curves_props(epochs, curves))
        ]
    )
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 13}},
        width=width,
        height=height,
        uirevision=uirevision,
        margin={"l": 45, "r": 10, "t": 35, "b": 35},
        xaxis_title="epoch",
        yaxis_title="margin",
        plot_bgcolor="white",
        legend={"font": {"size": 10}, "orientation": "h", "y": -0.3},
        xaxis={"gridcolor": "#eee"},
        yaxis={"gridcolor": "#eee", "zerolinecolor": "#bbb"},
    )
    return fig
