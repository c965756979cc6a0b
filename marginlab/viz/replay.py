"""A playground training run as one animated figure (plotly frames and a slider): class regions, decision
boundary, samples and the margin histogram at each recorded step. Data in (frames of plain arrays, as
:class:`marginlab.sessions.PlaygroundSession` records them), ``go.Figure`` out; ``fig.to_html()`` gives a
standalone page that replays without a kernel (a workshop handout)."""

from __future__ import annotations

import numpy as np

from .common import REGION_LEVELS, boundary_segments, region_colorscale, region_levels
from .histograms import histogram_props
from .playground import points_props

__all__ = ["replay_figure", "frame_traces"]

_HIST_COLORS = ("#4C78A8", "#E45756", "#9D9D9D")


def _hist_range(frames) -> tuple[float, float]:
    vals = [v[np.isfinite(v)] for f in frames for v in f["hist"].values()]
    vals = np.concatenate(vals + [np.zeros(0)])
    if not vals.size:
        return 0.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)


def frame_traces(frame: dict, data: dict, grid, n_classes: int, *, bins: int = 30,
                 value_range=None) -> list[dict]:
    """The data of the figure's seven traces for one frame: regions, boundary, train, test, and one bar
    trace per histogram group."""
    logits = np.asarray(frame["logits"], dtype=np.float64)
    bx, by = boundary_segments(grid, logits)
    train = points_props(data["train_X"], data["train_y"], n_classes, hover_prefix="train ")
    test = points_props(data["test_X"], data["test_y"], n_classes, hover_prefix="test ")
    out = [{"type": "heatmap", "z": region_levels(logits, grid.shape)}, {"type": "scatter", "x": bx, "y": by},
           {"type": "scatter", **train}, {"type": "scatter", **test}]
    for props in histogram_props(frame["hist"], bins=bins, value_range=value_range):
        out.append({"type": "bar", **props})
    return out


def _label(frame: dict) -> str:
    acc = "" if not np.isfinite(frame.get("acc", np.nan)) else f" · train acc {frame['acc']:.3f}"
    tacc = "" if not np.isfinite(frame.get("test_acc", np.nan)) else f" · test acc {frame['test_acc']:.3f}"
    return f"step {frame['step']} (epoch {frame['epoch']:.1f}){acc}{tacc}"


def replay_figure(frames, datasets: dict, grid, *, n_classes: int, class_names=None, title: str = "",
                  width: int = 900, height: int = 470, bins: int = 30):
    """One figure replaying ``frames`` (dicts with ``step, epoch, logits (ny*nx, K), hist {group: margins},
    data`` (a key of ``datasets``), optional ``acc, test_acc``); ``datasets[key]`` holds ``train_X, train_y,
    test_X, test_y``. Left: regions, boundary and samples; right: the signed-margin histogram (shared bins
    over the whole run). A slider and a play button step through the frames."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frames = list(frames)
    if not frames:
        raise ValueError("frames must not be empty")
    K = int(n_classes)
    vr = _hist_range(frames)
    per_frame = [frame_traces(f, datasets[f["data"]], grid, K, bins=bins, value_range=vr) for f in frames]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.56, 0.44], horizontal_spacing=0.1,
                        subplot_titles=("class regions, boundary and samples", "signed margins"))
    first = [{k: v for k, v in props.items() if k != "type"} for props in per_frame[0]]
    fig.add_trace(go.Heatmap(x=grid.xs, y=grid.ys, showscale=False, hoverinfo="skip", name="regions",
                             colorscale=region_colorscale(K), zmin=-0.5, zmax=K * REGION_LEVELS - 0.5,
                             **first[0]), 1, 1)
    fig.add_trace(go.Scatter(mode="lines", name="boundary", line={"color": "#222", "width": 2},
                             showlegend=False, hoverinfo="skip", **first[1]), 1, 1)
    for props, name, style in ((first[2], "train", {"size": 7, "line": {"color": "white", "width": 1}}),
                               (first[3], "test", {"size": 7, "opacity": 0.55,
                                                   "line": {"color": "black", "width": 1}})):
        props = dict(props)
        props["marker"] = {**style, **props["marker"]}
        fig.add_trace(go.Scatter(mode="markers", name=name, showlegend=False, **props), 1, 1)
    for i, props in enumerate(first[4:]):
        fig.add_trace(go.Bar(marker={"color": _HIST_COLORS[i % 3]}, opacity=0.6, **props), 1, 2)
    fig.frames = [go.Frame(data=tr, name=str(k), traces=list(range(len(tr))),
                           layout={"title": {"text": f"{title}<br><sub>{_label(f)}</sub>"}})
                  for k, (tr, f) in enumerate(zip(per_frame, frames))]
    _layout(fig, frames, grid, title, width, height, vr)
    return fig


def _layout(fig, frames, grid, title, width, height, value_range):
    steps = [{"method": "animate", "label": str(f["step"]),
              "args": [[str(k)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                  "transition": {"duration": 0}}]} for k, f in enumerate(frames)]
    play = {"type": "buttons", "direction": "left", "x": 0, "y": -0.12, "xanchor": "left", "yanchor": "top",
            "showactive": False, "pad": {"t": 0, "r": 10},
            "buttons": [{"label": "▶ play", "method": "animate",
                         "args": [None, {"frame": {"duration": 250, "redraw": True}, "fromcurrent": True,
                                         "transition": {"duration": 0}}]},
                        {"label": "❚❚ pause", "method": "animate",
                         "args": [[None], {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}]}]}
    slider = {"active": 0, "steps": steps, "x": 0.2, "len": 0.8, "y": -0.08, "yanchor": "top",
              "currentvalue": {"prefix": "step ", "font": {"size": 12}}, "pad": {"t": 30}}
    fig.update_layout(
        title={"text": f"{title}<br><sub>{_label(frames[0])}</sub>", "x": 0.01, "font": {"size": 14}},
        width=width, height=height, margin={"l": 45, "r": 15, "t": 75, "b": 120}, plot_bgcolor="white",
        barmode="overlay", bargap=0, updatemenus=[play], sliders=[slider],
        legend={"orientation": "h", "x": 0.58, "y": 1.0, "yanchor": "bottom", "font": {"size": 10}},
    )
    fig.update_xaxes(range=grid.x_range, showgrid=False, zeroline=False, constrain="domain", row=1, col=1)
    fig.update_yaxes(range=grid.y_range, scaleanchor="x", scaleratio=1, showgrid=False, zeroline=False,
                     constrain="domain", row=1, col=1)
    fig.update_xaxes(title_text="margin (< 0: misclassified)", range=list(value_range), gridcolor="#eee",
                     row=1, col=2)
    fig.update_yaxes(title_text="samples", gridcolor="#eee", row=1, col=2)
