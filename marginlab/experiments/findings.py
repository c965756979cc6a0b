"""Does a run reproduce its paper's finding? Each function reads a :class:`Results` and returns a
:class:`Report`: numbers computed from the tables plus one Markdown line per claim saying whether it holds.

Nothing here is tuned to pass: a claim that the numbers contradict is reported as "not reproduced".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Report",
    "missing_margin",
    "normalized_margin",
    "min_vs_average_margin",
    "average_margin_regularizer",
    "margin_losses",
    "FINDINGS",
    "report_for",
]


@dataclass
class Report:
    """Claims checked against a run: ``claims`` is a list of ``(claim, holds, evidence)``; ``numbers`` the
    values behind them. Renders as Markdown in notebooks."""

    title: str
    claims: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def add(self, claim: str, holds, evidence: str):
        self.claims.append((claim, None if holds is None else bool(holds), evidence))

    @property
    def reproduced(self) -> int:
        return sum(1 for _, h, _ in self.claims if h)

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        for claim, holds, ev in self.claims:
            tag = "n/a (not measured)" if holds is None else ("reproduced" if holds else "NOT reproduced")
            lines.append(f"- **{tag}**: {claim} — {ev}")
        lines.append("")
        lines.append(f"{self.reproduced} of {len(self.claims)} claims reproduced.")
        lines += [f"\n_{n}_" for n in self.notes]
        return "\n".join(lines)

    _repr_markdown_ = to_markdown

    def __str__(self):
        return self.to_markdown()


#: a difference counts as a finding only beyond this many standard errors (accuracies: binomial; margins: of
#: the mean); smaller differences are reported as "NOT reproduced" with the error bar in the evidence
N_SE = 2.0

_SE_NOTE = (
    f"a difference counts only beyond {N_SE:g} standard errors (binomial for accuracies, of the mean for "
    "margins); ± in the evidence is that threshold"
)


def _binom_se(p, n):
    n = np.asarray(n, float)
    p = np.asarray(p, float)
    return np.sqrt(np.clip(p * (1 - p), 0, None) / np.where(n > 0, n, np.nan))


def _masking_note(curves, threshold: float = 0.05):
    """A note naming the models whose attack gradients were exactly zero for more than ``threshold`` of the
    samples: their robust accuracy is overstated (gradient masking), see marginlab.experiments.robustness."""
    if "zero_grad" not in curves or not (curves["zero_grad"] > threshold).any():
        return None
    bad = curves[curves["zero_grad"] > threshold]
    keys = [k for k in ("corruption", "n_train", "variant") if k in bad]
    worst = bad.groupby(keys + ["attack", "loss"], dropna=False)["zero_grad"].max().reset_index()
    parts = [
        " ".join(str(r[k]) for k in keys) + f" {r['attack']} ({r['loss']} loss): {r['zero_grad']:.0%}"
        for _, r in worst.iterrows()
    ]
    return "gradient masking: zero attack gradients for " + "; ".join(parts)


def _scale_note(res):
    u = res.units
    return (
        f"run {res.spec.name!r}: {len(u)} models, training sets of {sorted(set(u['n_train'].dropna()))} "
        f"samples"
        if "n_train" in u and u["n_train"].notna().any()
        else f"run {res.spec.name!r}: {len(u)} models"
    )


def missing_margin(res) -> Report:
    """Seed 000: (1) validation error falls with capacity; (2) mean margins grow with capacity;
    (3) corrupted samples have smaller margins than clean ones; (4) label corruption lowers maximum margins;
    (5) Gaussian input corruption raises the maximum margin of the corrupted samples."""
    from ..groups import group_labels

    rep = Report("Seed 000 — The missing margin")
    u, s = res.units, res.samples.assign(group=lambda d: group_labels(d))
    caps = sorted(int(c) for c in u["capacity"].unique())
    lo, hi = caps[0], caps[-1]
    err = u.assign(err=1 - u.val_acc).groupby(["corruption", "capacity"])["err"].mean().unstack()
    rep.numbers["val_error"] = err.round(4).to_dict()
    # tolerance: one binomial standard error of the validation estimate (seed noise at small scale)
    n_val = max(int(res.spec.data["n_val"]), 1) * max(len(res.spec.seeds), 1)
    se = np.sqrt(err[lo] * (1 - err[lo]) / n_val)
    ok = bool((err[hi] <= err[lo] + se).all())
    rep.add(
        "validation error decreases with capacity (Fig. 1; tolerance one standard error)",
        ok,
        "; ".join(
            f"{c}: {err.loc[c, lo]:.3f} (width {lo}) → {err.loc[c, hi]:.3f} (width {hi}), s.e. {se[c]:.3f}"
            for c in err.index
        ),
    )
    mm = s.groupby(["group", "capacity"])["margin"].mean().unstack()
    rep.numbers["mean_margin"] = mm.round(4).to_dict()
    ok = bool((mm[hi] > mm[lo]).all())
    rep.add(
        "mean margins increase with capacity for every sample group (Fig. 2)",
        ok,
        "; ".join(f"{g}: {mm.loc[g, lo]:.3f} → {mm.loc[g, hi]:.3f}" for g in mm.index),
    )
    pairs = [("label-corrupted", "label"), ("input-corrupted", "gaussian")]
    ev, oks = [], []
    for name, _ in pairs:
        a, b = f"clean:{name}", f"corrupt:{name}"
        if a in mm.index and b in mm.index:
            oks.append(bool((mm.loc[b] < mm.loc[a]).all()))
            ev.append(
                f"{name}: corrupt/clean mean margin ratio "
                f"{np.round((mm.loc[b] / mm.loc[a]).values, 2).tolist()} "
                f"over widths {caps}"
            )
    rep.add(
        "corrupted samples have smaller margins than clean samples at every capacity (Figs. 2-3)",
        all(oks) if oks else None,
        "; ".join(ev) or "no corrupted runs",
    )
    one = s.drop_duplicates(["corruption", "row"])
    lab = one[one.corruption == "label"].dropna(subset=["max_margin"])
    if len(lab):
        frac = float((lab.max_margin < lab.max_margin_before - 1e-9).mean())
        drop = float((lab.max_margin / lab.max_margin_before).median())
        rep.numbers.update(label_maxmargin_reduced=frac, label_maxmargin_median_ratio=drop)
        rep.add(
            "label corruption reduces the maximum margin of many samples, clean and corrupt (Fig. 4)",
            frac > 0.25,
            f"{100 * frac:.1f}% of {len(lab)} samples have a smaller maximum margin after corruption "
            f"(median after/before ratio {drop:.2f})",
        )
    else:
        rep.add("label corruption reduces maximum margins (Fig. 4)", None, "maximum margins not measured")
    gau = one[one.corruption == "gaussian"].dropna(subset=["max_margin"])
    if len(gau):
        c, k = gau[gau.corrupted], gau[~gau.corrupted]
        rc = float((c.max_margin / c.max_margin_before).median())
        nondec = float((gau.max_margin >= gau.max_margin_before - 1e-9).mean())
        rep.numbers.update(gaussian_corrupt_maxmargin_ratio=rc, gaussian_not_decreased=nondec)
        rep.add(
            "input corruption leaves maximum margins unchanged or larger; corrupted samples become remote "
            "(Fig. 7)",
            nondec > 0.9 and rc > 1.2,
            f"{100 * nondec:.1f}% of samples not decreased; corrupted samples' median after/before ratio "
            f"{rc:.2f} (min after {c.max_margin.min():.2f} vs clean median {k.max_margin.median():.2f})",
        )
    rep.notes.append(_scale_note(res))
    return rep


def normalized_margin(res) -> Report:
    """Seed 001: (Fig. 1) under standard training true labels have larger spectrally-normalized margins than
    random labels; (Fig. 2) Recipe 1 can inflate random-label normalized margins past the true-label ones
    while test accuracy stays at chance; (Fig. 5) accuracy rises with the targeted normalized margin."""
    rep = Report("Seed 001 — Normalized margin")
    s, u = res.samples, res.units
    col = "nm_spectral"
    if col not in s:
        rep.add("normalized margins measured", None, "marginlab.margins.normalized was not available")
        return rep
    med = s.groupby(["corruption", "variant"])[col].median().unstack()
    rep.numbers["median_spectral"] = med.to_dict()
    acc = u.groupby(["corruption", "variant"])["val_acc"].mean().unstack()
    rep.numbers["val_acc"] = acc.round(4).to_dict()
    if "std" in med.columns and {"none", "random"} <= set(med.index):
        a, b = med.loc["none", "std"], med.loc["random", "std"]
        rep.add(
            "standard training: true labels have larger spectrally-normalized margins than random labels "
            "(Fig. 1)",
            a > b,
            f"median {a:.3g} (true) vs {b:.3g} (random); test accuracy "
            f"{acc.loc['none', 'std']:.3f} vs {acc.loc['random', 'std']:.3f}",
        )
        frob = sorted(
            (v for v in med.columns if v.startswith("frob-a")), key=lambda v: float(v.split("-a")[1])
        )
        if frob:
            # Fig. 2 / App. A: both networks under Frobenius control, true labels targeting the smallest label
            # scale (1), random labels the largest (100)
            best, ref = frob[-1], frob[0]
            r, t = med.loc["random", best], med.loc["none", ref]
            rep.add(
                "Recipe 1 reverses the ordering: random labels get larger normalized margins than true "
                "labels while generalizing at chance (Fig. 2)",
                r > t and acc.loc["random", best] < 0.5 * acc.loc["none", ref],
                f"random labels with {best}: median {r:.3g}, test accuracy {acc.loc['random', best]:.3f}; "
                f"true labels with {ref}: median {t:.3g}, test accuracy {acc.loc['none', ref]:.3f}",
            )
            if "nm_frobenius" in s:
                fm = s.groupby(["corruption", "variant"])["nm_frobenius"].median().unstack()
                rep.numbers["median_frobenius"] = fm.to_dict()
                rep.add(
                    "the same comparison for the Frobenius-normalized margin, the quantity Recipe 1 controls",
                    fm.loc["random", best] > fm.loc["none", ref],
                    f"median {fm.loc['random', best]:.3g} (random, {best}) vs "
                    f"{fm.loc['none', ref]:.3g} (true, {ref})",
                )
    frob = sorted([v for v in acc.columns if v.startswith("frob-a")], key=lambda v: float(v.split("-a")[1]))
    if len(frob) >= 2 and "none" in acc.index:
        alphas = [float(v.split("-a")[1]) for v in frob]
        accs = [acc.loc["none", v] for v in frob]
        rho = float(np.corrcoef(np.log(alphas), accs)[0, 1])
        rep.add(
            "with Frobenius control, test accuracy increases with the targeted normalized margin (Fig. 5)",
            rho > 0,
            f"targets {alphas} → accuracy {np.round(accs, 3).tolist()} (correlation with log target "
            f"{rho:.2f})",
        )
    rep.notes.append(_scale_note(res))
    return rep


def min_vs_average_margin(res) -> Report:
    """Seed 002 Fig. 1: for logistic regression on separable data the minimum margin grows towards the SVM's
    while the average margin falls after the first epochs."""
    rep = Report("Seed 002 — Minimum vs average margin (logistic regression, MNIST 0 vs 1)")
    t, u = res.trajectory, res.units.iloc[0]
    mins = t[t.split == "train-all-min"].sort_values("epoch")
    avg = t[(t.split == "train") & (t.row >= 0)].groupby("epoch")["margin"].mean()
    m1 = mins[mins.epoch >= 1]
    first, last = float(m1.margin.iloc[0]), float(m1.margin.iloc[-1])
    rep.numbers.update(
        min_first=first,
        min_last=last,
        svm_min=u.svm_min_margin,
        avg_peak=float(avg.max()),
        avg_last=float(avg.iloc[-1]),
        svm_mean=u.svm_mean_margin,
    )
    rep.add(
        "the minimum margin increases during training and approaches the SVM's",
        last > first and last > 0,
        f"min margin {first:.4f} (epoch {int(m1.epoch.iloc[0])}) → "
        f"{last:.4f} (epoch {int(m1.epoch.iloc[-1])}); "
        f"SVM {u.svm_min_margin:.4f} (ratio {last / u.svm_min_margin:.2f})",
    )
    peak_epoch = int(avg.idxmax())
    rep.add(
        "the average margin falls after the first epochs",
        float(avg.iloc[-1]) < float(avg.max()),
        f"average margin peaks at {avg.max():.3f} (epoch {peak_epoch}) and ends at {avg.iloc[-1]:.3f}; "
        f"SVM average {u.svm_mean_margin:.3f}",
    )
    rep.notes.append(f"final train accuracy {u.train_acc:.4f}; {_scale_note(res)}")
    return rep


def average_margin_regularizer(res) -> Report:
    """Seed 002 Table 1: AMR training gives a larger average margin and higher l2-PGD robust accuracy; §4.2:
    under standard training the MLP's minimum margin rises while its average margin falls."""
    rep = Report("Seed 002 — Average-margin regularizer vs standard training (Table 1 analogue)")
    u, c = res.units, res.curves
    if not {"std", "amr"} <= set(u.variant):
        rep.add("AMR compared with standard training", None, "the run lacks the 'std' or 'amr' variant")
        return rep
    am = u.groupby("variant")["mean_margin_val" if "mean_margin_val" in u else "mean_margin_train"].mean()
    acc = u.groupby("variant")["val_acc"].mean()
    rob = c.groupby(["variant", "eps"])["accuracy"].mean().unstack()
    rep.numbers.update(avg_margin=am.to_dict(), clean_acc=acc.to_dict(), robust=rob.round(4).to_dict())
    # average margin: paired over the same test samples (both models see the same rows)
    s = getattr(res, "samples", None)
    d, se = am["amr"] - am["std"], float("nan")
    if s is not None and len(s):
        split = "val" if (s.split == "val").any() else "train"
        v = s[s.split == split]
        keys = [k for k in ("seed", "row") if k in v]
        pair = v[v.variant == "amr"].merge(v[v.variant == "std"], on=keys, suffixes=("_a", "_s"))
        diff = (pair["margin_a"] - pair["margin_s"]).dropna()
        if len(diff) > 1:
            d, se = float(diff.mean()), float(diff.std() / np.sqrt(len(diff)))
    rep.add(
        "AMR has the larger average margin",
        d > N_SE * se,
        f"average test margin {am['amr']:.3f} (AMR) vs {am['std']:.3f} (standard); paired difference "
        f"{d:+.4f} ± {N_SE * se:.4f}",
    )
    n = c.groupby(["variant", "eps"])["n"].sum().unstack() if "n" in c else rob * np.nan
    eps_pos = [e for e in rob.columns if e > 0]
    diffs = {e: rob.loc["amr", e] - rob.loc["std", e] for e in eps_pos}
    ses = {}
    for e in eps_pos:
        se_amr = _binom_se(rob.loc["amr", e], n.loc["amr", e])
        se_std = _binom_se(rob.loc["std", e], n.loc["std", e])
        ses[e] = float(np.hypot(se_amr, se_std))
    rep.add(
        "AMR has higher robust accuracy under l2 PGD, especially at large eps",
        any(diffs[e] > N_SE * ses[e] for e in eps_pos)
        and not any(diffs[e] < -N_SE * ses[e] for e in eps_pos),
        "; ".join(
            f"eps {k:g}: {rob.loc['amr', k]:.3f} vs {rob.loc['std', k]:.3f}"
            + (f" (± {N_SE * ses[k]:.3f})" if k in ses else "")
            for k in rob.columns
        ),
    )
    rep.notes.append(_SE_NOTE)
    t = res.trajectory
    t = t[(t.variant == "std") & (t.split == "train") & (t.row >= 0)]
    if t.epoch.nunique() >= 3:
        from .results import signed_margins

        per = t.assign(signed=signed_margins(t)).groupby("epoch")["signed"].agg(["min", "mean"])
        peak = int(per["mean"].idxmax())
        last = int(per.index.max())
        rep.numbers.update(mlp_min=per["min"].to_dict(), mlp_mean=per["mean"].to_dict())
        rep.add(
            "standard training of the MLP: the minimum training margin keeps rising while the average margin "
            "falls after its peak (§4.2, Fig. 2 top)",
            per.loc[last, "min"] > per.loc[peak, "min"] and per.loc[last, "mean"] < per.loc[peak, "mean"],
            f"{len(t[t.epoch == last])} tracked training samples: average {per.loc[peak, 'mean']:.3f} (epoch "
            f"{peak}, its peak) → {per.loc[last, 'mean']:.3f} (epoch {last}); minimum (signed) "
            f"{per.loc[peak, 'min']:.3f} → {per.loc[last, 'min']:.3f}",
        )
    if (note := _masking_note(c)) is not None:
        rep.notes.append(note)
    rep.notes.append(
        f"clean accuracy {acc['amr']:.3f} (AMR) vs {acc['std']:.3f} (standard); {_scale_note(res)}"
    )
    return rep


def _beats_xent(sub, col, fmt=".3f"):
    """(holds, evidence): the best margin loss in ``sub`` (rows: variants) exceeds cross-entropy in ``col`` by
    more than N_SE standard errors (column ``se:<col>``)."""
    others = sub.drop(index="xent")
    best = others[col].idxmax()
    d = others.loc[best, col] - sub.loc["xent", col]
    se = float(np.hypot(others.loc[best, f"se:{col}"], sub.loc["xent", f"se:{col}"]))
    evidence = (
        f"best {best} {others.loc[best, col]:{fmt}} vs xent {sub.loc['xent', col]:{fmt}} "
        f"(± {N_SE * se:{fmt}}); all: " + ", ".join(f"{k} {v:{fmt}}" for k, v in sub[col].items())
    )
    return bool(d > N_SE * se), evidence


def margin_losses(res, variance_ratios: dict | None = None) -> Report:
    """Seeds 003/004: margin losses vs cross-entropy on small / noisy training sets: test accuracy, margin
    mean/std ratio, robustness and (optionally) the embedding variance ratio."""
    rep = Report("Seeds 003/004 — Margin losses vs cross-entropy")
    u, s, c = res.units, res.samples, res.curves
    split = "val" if (s.split == "val").any() else "train"
    m = s[s.split == split].groupby(["corruption", "n_train", "variant"])["margin"]
    stats = (m.mean() / m.std()).rename("mean_std_ratio").to_frame().join(m.mean().rename("mean_margin"))
    stats = stats.join((m.std() / np.sqrt(m.count())).rename("se:mean_margin"))
    acc = u.set_index(["corruption", "n_train", "variant"])["val_acc"]
    stats = stats.join(acc)
    n_val = (getattr(res.spec, "data", None) or {}).get("n_val")
    stats["se:val_acc"] = _binom_se(stats["val_acc"], n_val if n_val else np.nan)
    # robustness as the mean accuracy over the eps grid (area under the curve / eps range): a single large eps
    # drives every model to zero accuracy at small scale. Its standard error: the mean of the per-eps ones
    # (the accuracies at different eps are positively correlated, so this does not understate it)
    eps = f"{c.eps.min():g}-{c.eps.max():g}"
    keys = ["corruption", "n_train", "variant", "attack"]
    rob = c.groupby(keys)["accuracy"].mean().unstack()
    c_se = c.assign(se=_binom_se(c["accuracy"], c["n"] if "n" in c else np.nan))
    rob_se = c_se.groupby(keys)["se"].mean().unstack()
    stats = stats.join(rob.add_prefix("acc:")).join(rob_se.add_prefix("se:acc:"))
    rep.numbers["table"] = stats.round(4).reset_index().to_dict("records")
    n_classes = int(s["label"].max()) + 1
    for (corr, n), sub in stats.groupby(level=[0, 1]):
        sub = sub.droplevel([0, 1])
        # a model that did not learn (test accuracy below twice chance) predicts one class: its "margins" and
        # "robustness" are meaningless, so it is reported and left out of the comparisons
        failed = sub.index[sub["val_acc"] < 2.0 / n_classes].tolist()
        if failed:
            rep.notes.append(f"did not train ({corr}, n={int(n)}): " + ", ".join(
                f"{v} (test accuracy {sub.loc[v, 'val_acc']:.3f})" for v in failed))
        sub = sub.drop(index=[v for v in failed if v != "xent"])
        if "xent" not in sub.index or len(sub) < 2 or "xent" in failed:
            continue
        setting = f"{'clean labels' if corr == 'none' else f'{corr} noise'}, {int(n)} training samples"
        rep.add(
            f"a margin loss generalizes better than cross-entropy ({setting})", *_beats_xent(sub, "val_acc")
        )
        rep.add(
            f"margin losses give larger mean {split} margins than cross-entropy ({setting})",
            *_beats_xent(sub, "mean_margin"),
        )
        if "odn" in sub.index:
            rep.add(
                f"ODN's margin distribution has a larger mean/std ratio than cross-entropy's (seed 003 §4.5, "
                f"Fig. 5; {setting})",
                sub.loc["odn", "mean_std_ratio"] > sub.loc["xent", "mean_std_ratio"],
                ", ".join(f"{k} {v:.2f}" for k, v in sub["mean_std_ratio"].items()),
            )
        rcols = [col for col in sub.columns if col.startswith("acc:")]
        for col in rcols:
            rep.add(
                f"a margin loss is more robust than cross-entropy "
                f"({col.split(':')[1]}, mean accuracy over eps {eps}, {setting})",
                *_beats_xent(sub, col),
            )
    if variance_ratios:
        best = max(variance_ratios, key=variance_ratios.get)
        rep.add(
            "margin losses give more compact classes in the last hidden layer "
            "(variance ratio, seed 003 §4.4)",
            best != "xent",
            ", ".join(f"{k} {v:.2f}" for k, v in variance_ratios.items()),
        )
    if (note := _masking_note(c)) is not None:
        rep.notes.append(note)
    rep.notes.append(_SE_NOTE)
    rep.notes.append(_scale_note(res))
    return rep


#: built-in study name -> the function that checks its paper's claims
FINDINGS = {
    "missing-margin": missing_margin,
    "missing-margin-cifar10": missing_margin,
    "normalized-margin": normalized_margin,
    "min-vs-average-margin": min_vs_average_margin,
    "average-margin-regularizer": average_margin_regularizer,
    "margin-losses": margin_losses,
}


def report_for(res) -> Report | None:
    """The :class:`Report` for a run of a built-in study (its quick version included), ``None`` for a spec of
    another name. Specs are matched by name, so a user's own spec keeps its own name to opt out."""
    name = res.spec.name
    check = FINDINGS.get(name[: -len("-quick")] if name.endswith("-quick") else name)
    return None if check is None else check(res)
