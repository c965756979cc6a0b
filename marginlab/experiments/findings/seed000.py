"""Seed 000 (The missing margin, Theunissen, Mouton & Davel 2023): claims about capacity and corruption.

Findings (models' behaviour, tested): validation error falls with capacity (Fig. 1); mean margins rise with
capacity for every sample group (Fig. 2); corrupted samples have smaller margins than clean ones at every
capacity (Figs. 2-3). Setting checks (properties of the data alone, or of the protocol): maximum margins
before / after corruption (Figs. 4, 7: distances between training samples, no model involved), training
to interpolation, margins of correctly classified samples only (§5).

Capacity trends are slopes per doubling of width (least squares on log2 width); their intervals resample
seeds and redraw each validation error from its binomial (validation error), or resample the measured
training samples, the same rows at every width (mean margins).
"""

from __future__ import annotations

import numpy as np

from .. import stats
from .base import Claim, Report, not_measured

__all__ = ["missing_margin", "val_error_trend", "margin_trend", "corrupt_below_clean"]

_GROUPS = {"label": "label-corrupted", "gaussian": "input-corrupted"}


def _caps(u) -> np.ndarray:
    return np.array(sorted(int(c) for c in u["capacity"].unique()))


def val_error_trend(res) -> Claim:
    """Fig. 1: for every corruption, the slope of validation error per doubling of width is negative."""
    u, n_val = res.units, int(res.spec.data["n_val"])
    parts = []
    for corr, g in u.groupby("corruption", sort=False):
        x = np.log2(g["capacity"].to_numpy(float))
        err = 1 - g["val_acc"].to_numpy(float)
        reps = stats.binomial_draws(err, n_val)  # (B, units): each unit's error redrawn
        if g["seed"].nunique() > 1:  # and the seeds resampled within each width
            reps = np.take_along_axis(reps, _seed_resample(g), axis=1)
        parts.append(stats.estimate(-stats.slope(x, err), -stats.slope_replicates(x, reps), label=corr))
    return Claim(
        "validation error decreases with capacity",
        "Fig. 1",
        "−slope of validation error per doubling of width",
        parts,
    )


def _seed_resample(g) -> np.ndarray:
    """(B, units) column indices: within each width, units drawn with replacement among its seeds."""
    g = g.reset_index(drop=True)
    r = stats.rng(1)
    cols = np.empty((stats.N_BOOT, len(g)), int)
    for _, idx in g.groupby("capacity").groups.items():
        idx = np.asarray(idx)
        cols[:, idx] = idx[r.integers(0, len(idx), size=(stats.N_BOOT, len(idx)))]
    return cols


def _margin_matrix(s):
    """Rows: measured samples (seed, row); columns: widths; values: margin (NaN: misclassified, skipped)."""
    m = s.pivot_table(index=["seed", "row"], columns="capacity", values="margin", aggfunc="first")
    return m.reindex(columns=sorted(m.columns))


def margin_trend(res) -> Claim:
    """Fig. 2: for every sample group, the mean margin rises per doubling of width (rows resampled, the same
    rows at every width)."""
    from ...groups import group_labels

    s = res.samples[res.samples.split == "train"]
    s = s.assign(group=group_labels(s))
    parts = []
    for grp, g in s.groupby("group", sort=True):
        m = _margin_matrix(g)
        x = np.log2(m.columns.to_numpy(float))
        M = m.to_numpy(float)
        idx = stats.paired_rows(len(M))
        with np.errstate(all="ignore"):
            reps = np.stack([np.nanmean(M[i], axis=0) for i in idx])
        parts.append(
            stats.estimate(stats.slope(x, np.nanmean(M, 0)), stats.slope_replicates(x, reps), label=grp)
        )
    return Claim(
        "mean margins increase with capacity for every sample group",
        "Fig. 2",
        "slope of the mean margin per doubling of width",
        parts,
    )


def corrupt_below_clean(res) -> Claim | None:
    """Figs. 2-3: at every width, the clean samples' mean margin exceeds the corrupted samples' (each group
    resampled on its own)."""
    s = res.samples[res.samples.split == "train"]
    parts = []
    for corr in _GROUPS:
        for cap, g in s[s.corruption == corr].groupby("capacity"):
            vals = {
                "clean": g.loc[~g.corrupted, "margin"].dropna(),
                "corrupt": g.loc[g.corrupted, "margin"].dropna(),
            }
            if min(len(v) for v in vals.values()) < 2:
                continue
            diff = lambda d: np.mean(d["clean"]) - np.mean(d["corrupt"])  # noqa: E731
            ratio = vals["corrupt"].mean() / vals["clean"].mean()
            parts.append(
                stats.estimate(
                    diff(vals),
                    stats.resample_groups(vals, diff, n_boot=500),
                    label=f"{corr} w{int(cap)} (ratio {ratio:.2f})",
                )
            )
    if not parts:
        return not_measured(
            "corrupted samples have smaller margins than clean ones at every capacity",
            "Figs. 2-3",
            "mean margin clean − corrupted",
            "no corrupted run measured",
        )
    return Claim(
        "corrupted samples have smaller margins than clean ones at every capacity",
        "Figs. 2-3",
        "mean margin of clean − corrupted samples (corrupted/clean ratio in the label)",
        parts,
    )


def _checks(rep: Report, res) -> None:
    u, s = res.units, res.samples
    rep.check(
        "margins of correctly classified samples only (seed 000 §5)",
        res.spec.margins["skip_misclassified"],
        f"margins.skip_misclassified = {res.spec.margins['skip_misclassified']}",
    )
    target = res.spec.train["target_train_acc"]
    rep.check(
        "models trained to interpolation (seed 000 §4.2)",
        target is not None and (u.train_acc >= 0.99).all(),
        f"training accuracy {u.train_acc.min():.3f}–{u.train_acc.max():.3f}",
    )
    one = s.drop_duplicates(["corruption", "row"])
    lab = one[one.corruption == "label"].dropna(subset=["max_margin"])
    if len(lab):
        frac = float((lab.max_margin < lab.max_margin_before - 1e-9).mean())
        rep.check(
            "label corruption shrinks the maximum margin of many samples (Fig. 4; data only, no model)",
            frac > 0.25,
            f"{frac:.1%} of {len(lab)} samples have a smaller maximum margin after corruption",
        )
    gau = one[one.corruption == "gaussian"].dropna(subset=["max_margin"])
    if len(gau):
        c = gau[gau.corrupted]
        nondec = float((gau.max_margin >= gau.max_margin_before - 1e-9).mean())
        ratio = float((c.max_margin / c.max_margin_before).median())
        rep.check(
            "input corruption makes corrupted samples remote (Fig. 7; data only, no model)",
            nondec > 0.9 and ratio > 1.2,
            f"{nondec:.1%} of samples not decreased; corrupted samples' "
            f"median after/before ratio {ratio:.2f}",
        )


def missing_margin(res) -> Report:
    """The seed 000 report of a ``missing-margin`` run (module docstring)."""
    from .notes import scale_note

    rep = Report("Seed 000 — The missing margin")
    for claim in (val_error_trend, margin_trend, corrupt_below_clean):
        rep.add(claim(res))
    _checks(rep, res)
    rep.notes.append(scale_note(res))
    return rep
