"""Figure builders for the study notebooks: tidy DataFrames from :mod:`marginlab.experiments` in, plotly
``go.Figure`` out. No training or solving here; the only numerics are summaries (means, histograms, KDEs,
a distance matrix).

Column names follow the runner's tables: ``samples`` (unit_id, corruption, fraction, n_train, capacity,
variant, seed, split, row, corrupted, margin, max_margin, max_margin_before, ...), ``units`` (train_acc,
val_acc, ...), ``curves`` (attack, eps, accuracy) and ``trajectory`` (epoch, split, row, margin).
"""

from __future__ import annotations

import numpy as np

from ..groups import GROUP_COLORS, group_color, group_dash, group_labels

__all__ = [
    "GROUP_COLORS",
    "group_labels",
    "error_vs_capacity",
    "mean_margin_vs_capacity",
    "margin_ridgelines",
    "max_margin_scatter",
    "distance_matrix_figure",
    "margin_trajectory",
    "margin_histograms_over_epochs",
    "robustness_curves",
    "margin_kde",
    "summary_bars",
    "ensemble_vs_gp",
    "TWIN_COLORS",
    "twin_margins",
    "twin_accuracy_vs_margin",
]

_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880")


def _go():
    import plotly.graph_objects as go

    return go


def _layout(fig, title, xt, yt, width, height, **kw):
    fig.update_layout(
        title=title,
        xaxis_title=xt,
        yaxis_title=yt,
        width=width,
        height=height,
        template="plotly_white",
        margin=dict(l=60, r=20, t=50, b=50),
        **kw,
    )
    return fig


def _mean_std(df, by, value):
    g = df.groupby(by, dropna=False)[value]
    return g.mean().rename("mean").to_frame().join(g.std(ddof=0).rename("std")).reset_index()


def _band(fig, x, mean, std, color, name, dash="solid", showlegend=True):
    go = _go()
    std = np.nan_to_num(np.asarray(std, float))
    fig.add_trace(
        go.Scatter(
            x=np.r_[x, x[::-1]],
            y=np.r_[mean + std, (mean - std)[::-1]],
            fill="toself",
            fillcolor=color,
            opacity=0.15,
            line=dict(width=0),
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=mean,
            mode="lines+markers",
            name=name,
            line=dict(color=color, dash=dash),
            legendgroup=name,
            showlegend=showlegend,
        )
    )


def error_vs_capacity(
    units, *, x="capacity", color="corruption", metric="val_acc", title=None, width=620, height=380
):
    """Seed 000 Fig. 1: validation error (1 - ``metric``) vs capacity, mean +- std over seeds."""
    go = _go()
    df = units.assign(error=1.0 - units[metric])
    fig = go.Figure()
    for i, (key, sub) in enumerate(df.groupby(color, sort=False)):
        s = _mean_std(sub, x, "error").sort_values(x)
        _band(fig, s[x].to_numpy(float), s["mean"].to_numpy(), s["std"].to_numpy(), _PALETTE[i % 8], str(key))
    fig.update_xaxes(type="log")
    return _layout(fig, title or "Validation error vs capacity", x, "validation error", width, height)


def mean_margin_vs_capacity(samples, *, x="capacity", value="margin", title=None, width=620, height=380):
    """Seed 000 Fig. 2: mean margin per sample group vs capacity (per-seed means, then mean +- std)."""
    go = _go()
    df = samples.assign(group=group_labels(samples))
    per_seed = df.groupby(["group", x, "seed"], dropna=False)[value].mean().reset_index()
    fig = go.Figure()
    for g, sub in per_seed.groupby("group", sort=True):
        s = _mean_std(sub, x, value).sort_values(x)
        _band(fig, s[x].to_numpy(float), s["mean"].to_numpy(), s["std"].to_numpy(), group_color(g), g,
              dash=group_dash(g))
    fig.update_xaxes(type="log")
    return _layout(fig, title or f"Mean {value} per group vs capacity", x, f"mean {value}", width, height)


def margin_ridgelines(
    samples, *, by="capacity", value="margin", nbins=40, title=None, width=520, height=None
):
    """Seed 000 Fig. 3: one row per ``by`` value (ascending, bottom to top), histograms of clean (green)
    and corrupted (red) samples on a common set of bins, each row scaled to its own maximum."""
    go = _go()
    v = samples[value].to_numpy(float)
    v = v[np.isfinite(v)]
    edges = np.linspace(0.0, float(v.max()) if len(v) else 1.0, nbins + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    levels = sorted(samples[by].dropna().unique())
    fig = go.Figure()
    for r, lev in enumerate(levels):
        sub = samples[samples[by] == lev]
        hists = {
            k: np.histogram(sub.loc[sub.corrupted == (k == "corrupt"), value].dropna(), bins=edges)[0]
            for k in ("clean", "corrupt")
        }
        top = max(1, max(h.max() for h in hists.values()))
        for k, h in hists.items():
            if h.sum() == 0:
                continue
            y = r + 0.9 * h / top
            fig.add_trace(
                go.Scatter(
                    x=np.r_[centers, centers[::-1]],
                    y=np.r_[y, np.full(len(centers), r)],
                    fill="toself",
                    mode="lines",
                    line=dict(color=GROUP_COLORS[k], width=1),
                    opacity=0.6,
                    name=k,
                    legendgroup=k,
                    showlegend=r == 0,
                    hovertemplate=f"{by}={lev}<br>{value}=%{{x:.3f}}<extra>{k}</extra>",
                )
            )
    fig.update_yaxes(tickvals=list(range(len(levels))), ticktext=[str(lv) for lv in levels])
    return _layout(
        fig, title or f"{value} distributions by {by}", value, by, width, height or 120 + 70 * len(levels)
    )


def max_margin_scatter(samples, *, title=None, width=480, height=460):
    """Seed 000 Figs. 4 / 7: maximum margin before (x) vs after (y) corruption; dashed y = x."""
    go = _go()
    df = samples.dropna(subset=["max_margin", "max_margin_before"]).drop_duplicates(
        ["corruption", "fraction", "row"]
    )
    fig = go.Figure()
    for k in ("clean", "corrupt"):
        sub = df[df.corrupted == (k == "corrupt")]
        fig.add_trace(
            go.Scattergl(
                x=sub["max_margin_before"],
                y=sub["max_margin"],
                mode="markers",
                name=k,
                marker=dict(color=GROUP_COLORS[k], size=4, opacity=0.6),
            )
        )
    lim = [0, float(np.nanmax(df[["max_margin", "max_margin_before"]].to_numpy())) * 1.05 if len(df) else 1]
    fig.add_trace(go.Scatter(x=lim, y=lim, mode="lines", line=dict(color="black", dash="dash"), name="y = x"))
    return _layout(
        fig,
        title or "Maximum margin before vs after corruption",
        "maximum margin (original data)",
        "maximum margin (corrupted data)",
        width,
        height,
    )


def distance_matrix_figure(X, margin, corrupted, *, k=None, title=None, width=560, height=520):
    """Seed 000 Fig. 5: Euclidean distances between the ``k`` smallest-margin clean and ``k`` smallest-margin
    corrupted samples, ordered by corruption status first, then by margin."""
    go = _go()
    X = np.asarray(X, float).reshape(len(X), -1)
    margin, corrupted = np.asarray(margin, float), np.asarray(corrupted, bool)
    idx = []
    for flag in (False, True):
        rows = np.flatnonzero((corrupted == flag) & np.isfinite(margin))
        rows = rows[np.argsort(margin[rows], kind="stable")]
        idx.append(rows[:k] if k else rows)
    order = np.concatenate(idx)
    Z = X[order]
    sq = (Z * Z).sum(1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0.0))
    labels = [f"{'corrupt' if corrupted[i] else 'clean'} m={margin[i]:.3f}" for i in order]
    fig = go.Figure(
        go.Heatmap(z=D, x=labels, y=labels, colorscale="Viridis", colorbar=dict(title="distance"))
    )
    n0 = len(idx[0])
    for axis in ("x", "y"):
        fig.add_shape(
            type="line",
            xref="x" if axis == "x" else "paper",
            yref="paper" if axis == "x" else "y",
            x0=n0 - 0.5 if axis == "x" else 0,
            x1=n0 - 0.5 if axis == "x" else 1,
            y0=0 if axis == "x" else n0 - 0.5,
            y1=1 if axis == "x" else n0 - 0.5,
            line=dict(color="white", width=2),
        )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    return _layout(
        fig,
        title or f"Distances: {n0} clean | {len(idx[1])} corrupt smallest-margin samples",
        "clean → corrupt (by margin)",
        "clean → corrupt (by margin)",
        width,
        height,
    )


def margin_trajectory(
    trajectory, *, color="split", reference=None, show_min=False, title=None, width=620, height=380
):
    """Seed 002 Figs. 1a/b and 2: minimum and average margin vs epoch (log x). ``reference``:
    ``{name: value}`` horizontal lines (e.g. the SVM's minimum / average margin). ``show_min``: also the
    minimum over each group's tracked samples (dashed; misclassified samples count as negative margins)."""
    from ..experiments.results import signed_margins

    go = _go()
    df = trajectory[trajectory["row"] >= 0]
    df = df.assign(signed=signed_margins(df))
    agg = df.groupby([color, "epoch"]).agg(mean=("margin", "mean"), min=("signed", "min")).reset_index()
    allmin = trajectory[trajectory["split"] == "train-all-min"]
    fig = go.Figure()
    for i, (key, sub) in enumerate(agg.groupby(color, sort=False)):
        x = np.maximum(sub["epoch"].to_numpy(float), 0.5)  # epoch 0 on a log axis
        fig.add_trace(
            go.Scatter(
                x=x,
                y=sub["mean"],
                mode="lines+markers",
                name=f"average ({key})",
                line=dict(color=_PALETTE[i % 8]),
            )
        )
        if show_min:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=sub["min"],
                    mode="lines+markers",
                    name=f"minimum ({key})",
                    line=dict(color=_PALETTE[i % 8], dash="dash"),
                )
            )
    if len(allmin):
        fig.add_trace(
            go.Scatter(
                x=np.maximum(allmin["epoch"].to_numpy(float), 0.5),
                y=allmin["margin"],
                mode="lines+markers",
                name="minimum (whole training set)",
                line=dict(color="black"),
            )
        )
    for j, (name, val) in enumerate((reference or {}).items()):
        fig.add_hline(y=val, line=dict(dash=_DASHES[1 + j % 5], color="gray"), annotation_text=name)
    fig.update_xaxes(type="log")
    return _layout(
        fig, title or "Margins during training", "epoch (0 shown at 0.5)", "l2 margin", width, height
    )


def margin_histograms_over_epochs(
    trajectory, *, epochs=None, split="train", nbins=40, title=None, width=620, height=380
):
    """Seed 002 Fig. 1c: margin histograms at selected epochs (common bins)."""
    go = _go()
    df = trajectory[(trajectory["split"] == split) & (trajectory["row"] >= 0)]
    all_epochs = sorted(df["epoch"].unique())
    if epochs is None:
        epochs = all_epochs[:: max(1, len(all_epochs) // 4)][:5]
    v = df["margin"].to_numpy(float)
    v = v[np.isfinite(v)]
    edges = np.linspace(v.min(), v.max(), nbins + 1) if len(v) else np.linspace(0, 1, nbins + 1)
    fig = go.Figure()
    for i, e in enumerate(epochs):
        h, _ = np.histogram(df.loc[df.epoch == e, "margin"].dropna(), bins=edges, density=True)
        fig.add_trace(
            go.Scatter(
                x=0.5 * (edges[1:] + edges[:-1]),
                y=h,
                mode="lines",
                line_shape="hvh",
                name=f"epoch {e}",
                line=dict(color=_PALETTE[i % 8]),
            )
        )
    return _layout(
        fig,
        title or f"Margin histograms over epochs ({split})",
        "l2 margin (signed)",
        "density",
        width,
        height,
    )


def robustness_curves(curves, *, color="variant", title=None, width=900, height=340):
    """Seeds 002-004: accuracy vs eps, one panel per attack, one line per ``color`` (mean over seeds)."""
    from plotly.subplots import make_subplots

    go = _go()
    attacks = list(dict.fromkeys(curves["attack"]))
    fig = make_subplots(rows=1, cols=max(1, len(attacks)), subplot_titles=attacks, shared_yaxes=True)
    keys = list(dict.fromkeys(curves[color]))
    for c, a in enumerate(attacks, start=1):
        sub = curves[curves.attack == a].groupby([color, "eps"])["accuracy"].mean().reset_index()
        for i, key in enumerate(keys):
            s = sub[sub[color] == key].sort_values("eps")
            fig.add_trace(
                go.Scatter(
                    x=s["eps"],
                    y=s["accuracy"],
                    mode="lines+markers",
                    name=str(key),
                    legendgroup=str(key),
                    showlegend=c == 1,
                    line=dict(color=_PALETTE[i % 8]),
                ),
                row=1,
                col=c,
            )
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    fig.update_xaxes(title_text="eps")
    return _layout(fig, title or "Robust accuracy", None, None, width, height)


def margin_kde(
    samples, *, value="margin", color="variant", facet=None, points=200, title=None, width=620, height=380
):
    """Seeds 001/003: kernel density of ``value`` per ``color`` group (one panel per ``facet`` value)."""
    from plotly.subplots import make_subplots
    from scipy.stats import gaussian_kde

    go = _go()
    facets = list(dict.fromkeys(samples[facet])) if facet else [None]
    fig = make_subplots(
        rows=1,
        cols=len(facets),
        subplot_titles=[str(f) for f in facets] if facet else None,
        shared_yaxes=True,
    )
    v = samples[value].to_numpy(float)
    v = v[np.isfinite(v)]
    lo, hi = (np.percentile(v, 0.5), np.percentile(v, 99.5)) if len(v) else (0, 1)
    grid = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), points)
    keys = list(dict.fromkeys(samples[color]))
    for c, f in enumerate(facets, start=1):
        sub = samples if f is None else samples[samples[facet] == f]
        for i, key in enumerate(keys):
            x = sub.loc[sub[color] == key, value].to_numpy(float)
            x = x[np.isfinite(x)]
            if len(x) < 2 or np.ptp(x) == 0:
                continue
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=gaussian_kde(x)(grid),
                    mode="lines",
                    name=str(key),
                    legendgroup=str(key),
                    showlegend=c == 1,
                    line=dict(color=_PALETTE[i % 8]),
                ),
                row=1,
                col=c,
            )
    fig.update_xaxes(title_text=value)
    fig.update_yaxes(title_text="density", row=1, col=1)
    return _layout(fig, title or f"Distribution of {value}", None, None, width, height)


def summary_bars(table, *, x, y, color=None, title=None, width=620, height=360):
    """A grouped bar chart of a summary column (e.g. test accuracy per variant and corruption)."""
    go = _go()
    fig = go.Figure()
    groups = [(None, table)] if color is None else list(table.groupby(color, sort=False))
    for i, (key, sub) in enumerate(groups):
        s = sub.groupby(x, sort=False)[y].mean()
        fig.add_trace(
            go.Bar(
                x=[str(k) for k in s.index],
                y=s.values,
                name=str(key) if key is not None else y,
                marker_color=_PALETTE[i % 8],
            )
        )
    fig.update_layout(barmode="group")
    return _layout(fig, title or f"{y} by {x}", x, y, width, height)


def _need(table, cols, name):
    missing = set(cols) - set(table.columns)
    if missing:
        raise ValueError(f"{name} lacks columns {sorted(missing)}")


def ensemble_vs_gp(table, *, models=("NN ensemble", "NN-GP draws"), title=None, width=900, height=380):
    """Seed 001 Fig. 6: test accuracy vs targeted normalized margin (log x), one panel per ``model`` and one
    line per ensemble size ``m`` (shared colours across panels). ``table``: columns ``model, margin, m,
    accuracy`` (:func:`marginlab.experiments.gp_study.gp_vs_ensemble`); panels without rows are dropped."""
    go = _go()
    from plotly.subplots import make_subplots

    _need(table, {"model", "margin", "m", "accuracy"}, "table")
    present = [m for m in models if (table["model"] == m).any()]
    if not present:
        raise ValueError(f"table has no rows for models {list(models)}")
    fig = make_subplots(rows=1, cols=len(present), shared_yaxes=True, subplot_titles=present,
                        horizontal_spacing=0.06)
    ms = sorted(table["m"].unique())
    for c, model in enumerate(present, start=1):
        sub = table[table["model"] == model]
        for i, m in enumerate(ms):
            s = sub[sub["m"] == m].groupby("margin")["accuracy"].mean().sort_index()
            if s.empty:
                continue
            fig.add_trace(
                go.Scatter(x=s.index.to_numpy(float), y=s.to_numpy(float), mode="lines+markers",
                           name=f"{m} draw{'s' if m != 1 else ''}", legendgroup=str(m), showlegend=c == 1,
                           line=dict(color=_PALETTE[i % 8])),
                row=1, col=c,
            )
        fig.update_xaxes(type="log", title_text="targeted normalized margin", row=1, col=c)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    title = title or "Averaging m networks / NN-GP draws vs normalized margin (seed 001 Fig. 6)"
    fig.update_layout(title=title,
                      width=width, height=height, template="plotly_white", legend_title_text="# draws",
                      margin=dict(l=60, r=20, t=70, b=50))
    return fig


TWIN_COLORS = {"control": "#1F77B4", "attack": "#D62728"}  # seed 001 Fig. 3: blue control, red attack twin


def twin_margins(samples, summary=None, *, alphas=None, nbins=30, title=None, width=None, height=380):
    """Seed 001 Fig. 3: overlaid histograms (density) of the Frobenius-normalized margins on the *clean*
    training points of the control (blue) and attack (red) twin, one panel per targeted margin α (dotted
    line at α). ``samples``/``summary``: the tables of
    :func:`marginlab.experiments.twins.attack_set_twins`; with ``summary`` the legend names carry each
    twin's test accuracy. ``alphas``: the α values to show (default all)."""
    from plotly.subplots import make_subplots

    go = _go()
    _need(samples, {"twin", "alpha", "margin"}, "samples")
    df = samples[samples["set"] == "clean"] if "set" in samples.columns else samples
    present = sorted(df["alpha"].unique())
    alphas = present if alphas is None else [a for a in alphas if a in present]
    if not alphas:
        raise ValueError("samples has no clean rows for the requested alphas")
    acc = {}
    if summary is not None:
        _need(summary, {"twin", "alpha", "test_acc"}, "summary")
        acc = {(t, a): v for t, a, v in summary[["twin", "alpha", "test_acc"]].itertuples(index=False)}
    fig = make_subplots(rows=1, cols=len(alphas), subplot_titles=[f"α = {a:g}" for a in alphas],
                        horizontal_spacing=0.06)
    for c, a in enumerate(alphas, start=1):
        sub = df[df["alpha"] == a]
        v = sub["margin"].to_numpy(float)
        v = v[np.isfinite(v)]
        lo, hi = (min(v.min(), a), max(v.max(), a)) if len(v) else (0.0, 2.0 * a)
        size = (hi - lo) / nbins if hi > lo else max(abs(a), 1.0) / nbins
        for twin in ("control", "attack"):
            x = sub.loc[sub["twin"] == twin, "margin"].to_numpy(float)
            if not len(x):
                continue
            name = twin if (twin, a) not in acc else f"{twin}: test acc {acc[(twin, a)]:.1%}"
            if len(alphas) > 1:
                name = f"{name} (α={a:g})"
            fig.add_trace(
                go.Histogram(x=x, name=name, histnorm="probability density", opacity=0.6,
                             marker_color=TWIN_COLORS[twin], legendgroup=f"{twin}-{a:g}",
                             xbins=dict(start=lo - size, end=hi + size, size=size)),
                row=1, col=c,
            )
        fig.add_vline(x=a, line=dict(color="gray", dash="dot"), row=1, col=c)
        fig.update_xaxes(title_text="Frobenius-normalized margin (clean points)", row=1, col=c)
    fig.update_yaxes(title_text="density", row=1, col=1)
    fig.update_layout(barmode="overlay")
    return _layout(fig, title or "Attack-set twins: normalized margins on the clean points (seed 001 Fig. 3)",
                   None, None, width or max(520, 380 * len(alphas)), height)


def twin_accuracy_vs_margin(summary, *, train="train_acc", title=None, width=620, height=400):
    """Seed 001 Fig. 7: test (solid) and training (dashed) accuracy of the control (blue) and attack (red)
    twins vs targeted normalized margin α (log x). ``summary``: the per-twin table of
    :func:`marginlab.experiments.twins.attack_set_twins`; ``train``: the training-accuracy column
    (``train_acc`` on each twin's own training set, or ``clean_acc``)."""
    go = _go()
    _need(summary, {"twin", "alpha", "test_acc", train}, "summary")
    fig = go.Figure()
    for col, kind, dash in (("test_acc", "test", "solid"), (train, "train", "dash")):
        for twin in ("control", "attack"):
            s = summary[summary["twin"] == twin].groupby("alpha")[col].mean().sort_index()
            if s.empty:
                continue
            fig.add_trace(
                go.Scatter(x=s.index.to_numpy(float), y=s.to_numpy(float), mode="lines+markers",
                           name=f"{twin} {kind}", line=dict(color=TWIN_COLORS[twin], dash=dash))
            )
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, title or "Attack-set twins: accuracy vs targeted margin (seed 001 Fig. 7)",
                   "targeted normalized margin α", "accuracy", width, height)
