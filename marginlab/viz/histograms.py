"""Margin histograms: one builder (:func:`margin_histogram`, overlaid bars on shared bins) used by the
playground, the explorer and the notebooks; :func:`histogram_props` gives the bar traces' data alone for
in-place updates.
Groups for MNIST studies are named as in seed 000 §4.4 Table 1 (``sample-type:model-type``)."""

from __future__ import annotations

import numpy as np

from ..groups import GROUP_COLORS, MODEL_TYPES, sample_groups

__all__ = [
    "MODEL_TYPES",
    "GROUP_COLORS",
    "sample_groups",
    "histogram_props",
    "margin_histogram",
    "margin_histogram_figure",
]

def histogram_props(groups: dict, *, bins: int = 30, value_range=None) -> list[dict]:
    """Counts of each group's values on shared bins, one dict per group (``x`` bin centres, ``y`` counts,
    ``width``, ``name``). ``value_range=(lo, hi)`` fixes the bins (values outside are clipped into the end
    bins); by default they span the finite values. NaN values are not binned; they are counted in the name."""
    bins = int(bins)
    if bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins}")
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in groups.items()}
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()] + [np.zeros(0)])
    if value_range is None:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    else:
        lo, hi = map(float, value_range)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    centers = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    out = []
    for name, a in arrays.items():
        ok = np.isfinite(a)
        counts, _ = np.histogram(np.clip(a[ok], lo, hi), bins=edges)
        n_nan = int((~ok).sum())
        label = f"{name} ({len(a)})" + (f", {n_nan} unsolved" if n_nan else "")
        out.append(
            {"x": centers, "y": counts.astype(np.int32), "width": float(edges[1] - edges[0]), "name": label}
        )
    return out


_DEFAULT_COLORS = ("#4C78A8", "#E45756", "#9D9D9D", "#72B7B2", "#F58518")


def margin_histogram(
    groups: dict,
    *,
    bins: int = 30,
    value_range=None,
    highlight=None,
    colors=None,
    selectable: bool = False,
    title: str = "Margins",
    xaxis_title: str = "margin (signed: < 0 misclassified)",
    width: int = 440,
    height: int = 260,
    uirevision: str = "histogram",
):
    """Overlaid histograms of margins, one bar trace per group (e.g. ``{"train clean": m1, "train
    corrupted": m2, "test": m3}``) on shared bins (:func:`histogram_props`); each trace's ``y`` holds the
    counts, so a live figure updates by assigning new ``y``. ``highlight=(lo, hi)`` shades that band;
    ``selectable=True`` makes dragging select an x range (the explorer's range selection)."""
    import plotly.graph_objects as go

    colors = colors or {}
    traces = []
    props_list = histogram_props(groups, bins=bins, value_range=value_range)
    for i, (key, props) in enumerate(zip(groups, props_list)):
        traces.append(
            go.Bar(
                marker={"color": colors.get(key, _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)])},
                opacity=0.6,
                hovertemplate="%{x:.3g}: %{y}<extra>%{fullData.name}</extra>",
                **props,
            )
        )
    fig = go.Figure(traces)
    if highlight is not None:
        fig.add_vrect(x0=highlight[0], x1=highlight[1], fillcolor="gold", opacity=0.25, line_width=0)
    fig.update_layout(
        barmode="overlay",
        bargap=0,
        title={"text": title, "x": 0.02, "font": {"size": 13}},
        width=width,
        height=height,
        margin={"l": 45, "r": 10, "t": 35, "b": 40},
        uirevision=uirevision,
        xaxis_title=xaxis_title,
        yaxis_title="samples",
        legend={"font": {"size": 10}, "x": 1, "xanchor": "right", "y": 1},
        plot_bgcolor="white",
        xaxis={"gridcolor": "#eee"},
        yaxis={"gridcolor": "#eee"},
    )
    if selectable:
        fig.update_layout(dragmode="select", selectdirection="h")
    return fig


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
    colors: dict | None = None,
):
    """:func:`margin_histogram` of per-sample ``margins`` split by the group name in ``groups`` (seed 000
    names, green clean / red corrupt; ``colors`` maps other names to colours), range-selectable.
    Non-finite margins are left out (the explorer masks
    filtered samples with NaN). ``value_range=(lo, hi)`` shades that band (the current selection)."""
    m = np.asarray(margins, dtype=np.float64)
    g = np.asarray(groups, dtype=object)
    if m.shape != g.shape or m.ndim != 1:
        raise ValueError(f"margins and groups must be 1-D of the same length, got {m.shape} and {g.shape}")
    ok = np.isfinite(m)
    by_group = {name: m[ok & (g == name)] for name in sorted(set(g[ok].tolist()))}
    colors = {name: (colors or {}).get(name) or GROUP_COLORS.get(name.split(":")[0]) for name in by_group}
    return margin_histogram(
        by_group,
        bins=nbins,
        highlight=value_range,
        colors={k: c for k, c in colors.items() if c},
        selectable=True,
        title=title,
        xaxis_title=xaxis_title,
        width=width,
        height=height,
        uirevision="explorer-histogram",
    )
