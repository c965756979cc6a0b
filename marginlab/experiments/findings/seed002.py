"""Seed 002 (Trade-off between minimum and average margin, Kaiwen Wu and Yaoliang Yu).

Logistic regression (Fig. 1): the minimum margin rises towards the linear SVM's while the average margin
falls after its first epochs. MLP (§4.2, Fig. 2 top): under standard training the minimum training margin
keeps rising after the average margin's peak while the average falls. AMR (Table 1): a larger average test
margin and higher l2-PGD robust accuracy than standard training.

Trends over epochs are slopes on log(1 + epoch) after the average margin's peak. The average margin's
interval resamples the tracked samples (the same ones at every epoch); a minimum has no sampling noise worth
resampling (the logistic regression's is exact over the whole training set), so its trend is a Theil-Sen
slope with Kendall's test over the epochs. AMR vs standard: the same test samples paired; robust accuracies
redrawn from their binomials, any eps > 0 with Holm's correction.
"""

from __future__ import annotations

import numpy as np

from .. import stats
from .base import Claim, Report, not_measured

__all__ = [
    "min_vs_average_margin",
    "average_margin_regularizer",
    "min_approaches_svm",
    "average_falls",
    "amr_average_margin",
    "amr_robustness",
    "mlp_tradeoff",
]


def _per_epoch(t):
    """(epochs, matrix rows × epochs) of the tracked training samples' signed margins."""
    from ..results import signed_margins

    t = t[(t.split == "train") & (t.row >= 0)]
    m = t.assign(signed=signed_margins(t)).pivot_table(index="row", columns="epoch", values="signed")
    m = m.reindex(columns=sorted(m.columns))
    return m.columns.to_numpy(float), m.to_numpy(float)


def _average_falls(epochs, M, label) -> stats.Estimate:
    """−slope of the mean over rows on log(1 + epoch), from the mean's peak on; rows resampled."""
    mean = M.mean(0)
    after = epochs >= epochs[int(np.argmax(mean))]
    if after.sum() < 3:
        return stats.Estimate(np.nan, np.nan, np.nan, 1.0, label=f"{label}: peak at the last epochs")
    x = np.log1p(epochs[after])
    reps = np.stack([M[i][:, after].mean(0) for i in stats.paired_rows(len(M), n_boot=1000)])
    return stats.estimate(
        -stats.slope(x, mean[after]),
        -stats.slope_replicates(x, reps),
        label=f"{label}: from epoch {int(epochs[after][0])}",
    )


def min_approaches_svm(res) -> Claim:
    t, u = res.trajectory, res.units.iloc[0]
    mins = t[(t.split == "train-all-min") & (t.epoch >= 1)].sort_values("epoch")
    text, stat = (
        "the minimum margin increases during training towards the SVM's",
        "−Theil-Sen slope of the gap (SVM − minimum)/SVM on log(1 + epoch)",
    )
    if len(mins) < 3:
        return not_measured(text, "Fig. 1a", stat, "fewer than three tracked epochs")
    svm = float(u.svm_min_margin)
    gap = (svm - mins.margin.to_numpy(float)) / svm
    est = stats.theil_sen(np.log1p(mins.epoch.to_numpy(float)), gap, sign=-1.0, label="all training samples")
    last = float(mins.margin.iloc[-1])
    return Claim(
        text,
        "Fig. 1a",
        stat,
        [est],
        context=f"minimum {float(mins.margin.iloc[0]):.4f} (epoch "
        f"{int(mins.epoch.iloc[0])}) → {last:.4f} (epoch {int(mins.epoch.iloc[-1])}); SVM {svm:.4f} "
        f"(ratio {last / svm:.2f})",
    )


def average_falls(res) -> Claim:
    epochs, M = _per_epoch(res.trajectory)
    text, stat = (
        "the average margin falls after the first epochs",
        "−slope of the average training margin on log(1 + epoch) after its peak",
    )
    if len(epochs) < 3:
        return not_measured(text, "Fig. 1b", stat, "fewer than three tracked epochs")
    return Claim(text, "Fig. 1b", stat, [_average_falls(epochs, M, f"{len(M)} tracked samples")])


def _checks_lr(rep: Report, res) -> None:
    u, t = res.units.iloc[0], res.trajectory
    mins = t[t.split == "train-all-min"]
    rep.check(
        "the training set is linearly separable (the SVM fits it)",
        u.svm_train_acc == 1.0,
        f"SVM training accuracy {u.svm_train_acc:.4f}",
    )
    rep.check(
        "no epoch's minimum margin exceeds the SVM's (the SVM maximizes it)",
        (mins.margin <= u.svm_min_margin + 1e-6).all(),
        f"largest minimum {mins.margin.max():.4f} vs SVM {u.svm_min_margin:.4f}",
    )


def min_vs_average_margin(res) -> Report:
    """The seed 002 Fig. 1 report of a ``min-vs-average-margin`` run (module docstring)."""
    from .notes import scale_note

    rep = Report("Seed 002 — Minimum vs average margin (logistic regression, MNIST 0 vs 1)")
    rep.add(min_approaches_svm(res))
    rep.add(average_falls(res))
    _checks_lr(rep, res)
    rep.notes.append(scale_note(res))
    return rep


# -- the MLP and AMR ------------------------------------------------------------------------------------
def amr_average_margin(res) -> Claim:
    s = res.samples
    split = "val" if (s.split == "val").any() else "train"
    v = s[s.split == split]
    pair = v[v.variant == "amr"].merge(v[v.variant == "std"], on=["seed", "row"], suffixes=("_a", "_s"))
    d = (pair.margin_a - pair.margin_s).dropna().to_numpy(float)
    idx = stats.paired_rows(len(d))
    return Claim(
        "AMR has the larger average margin",
        "Table 1",
        f"mean paired difference of {split} margins (AMR − standard)",
        [stats.estimate(d.mean(), d[idx].mean(1), label=f"{len(d)} samples")],
        context=f"average {pair.margin_a.mean():.3f} (AMR) vs {pair.margin_s.mean():.3f} (standard)",
    )


def amr_robustness(res) -> Claim:
    c = res.curves
    rob = c.groupby(["variant", "eps"]).agg(acc=("accuracy", "mean"), n=("n", "sum")).reset_index()
    parts = []
    for eps, g in rob[rob.eps > 0].groupby("eps"):
        a, s = g.set_index("variant").loc["amr"], g.set_index("variant").loc["std"]
        reps = stats.binomial_draws([a.acc, s.acc], [a.n, s.n], seed=int(eps * 1000))
        parts.append(
            stats.estimate(
                a.acc - s.acc, reps[:, 0] - reps[:, 1], label=f"eps {eps:g}: {a.acc:.3f} vs {s.acc:.3f}"
            )
        )
    return Claim(
        "AMR has higher robust accuracy under l2 PGD",
        "Table 1",
        "robust accuracy AMR − standard per eps",
        parts,
        combine="any",
    )


def mlp_tradeoff(res) -> Claim:
    t = res.trajectory
    epochs, M = _per_epoch(t[t.variant == "std"])
    text, stat = (
        "standard training of the MLP: the minimum training margin keeps rising while the average "
        "margin falls after its peak",
        "after the average's peak: Theil-Sen slope of the minimum, −slope of the average, on log(1 + epoch)",
    )
    if len(epochs) < 3:
        return not_measured(text, "§4.2, Fig. 2 top", stat, "fewer than three tracked epochs")
    after = epochs >= epochs[int(np.argmax(M.mean(0)))]
    mins = stats.theil_sen(np.log1p(epochs[after]), M[:, after].min(0), label="minimum")
    return Claim(text, "§4.2, Fig. 2 top", stat, [mins, _average_falls(epochs, M, "average")])


def average_margin_regularizer(res) -> Report:
    """The seed 002 report of an ``average-margin-regularizer`` run (module docstring)."""
    from .notes import masking_note, scale_note

    rep = Report("Seed 002 — Average-margin regularizer vs standard training (Table 1 analogue)")
    if not {"std", "amr"} <= set(res.units.variant):
        rep.add(not_measured("AMR compared with standard training", "Table 1", "-", "no 'std' and 'amr'"))
        return rep
    for claim in (amr_average_margin, amr_robustness, mlp_tradeoff):
        rep.add(claim(res))
    opts = res.spec.train_settings("amr")["loss_options"]
    rep.check(
        "AMR at seed 002 §5's MNIST values (lambda 0.1, beta 1e-3, tau 5)",
        opts.get("lam") == 0.1 and opts.get("beta") == 1e-3 and opts.get("tau") == 5.0,
        str(opts),
    )
    acc = res.units.groupby("variant").val_acc.mean()
    rep.notes.append(
        f"clean test accuracy {acc['amr']:.3f} (AMR) vs {acc['std']:.3f} (standard); " + scale_note(res)
    )
    if (note := masking_note(res.curves)) is not None:
        rep.notes.append(note)
    return rep
