"""Paper vs ours: one table per study notebook with the paper's figure or number, ours (computed from the
results tables) and how our setting differs (data size, width, epochs, seeds).

    from marginlab.experiments.paper import paper_vs_ours
    paper_vs_ours(res)        # a pandas DataFrame: item, paper, ours, setting difference

Each study is a list of :class:`Row`: the paper's side is text quoted from the seed papers; ``ours`` is a
function of the results (never typed in); ``setting`` a function of the spec, so a medium or smoke run says
what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Row", "PAPER", "paper_vs_ours"]


@dataclass(frozen=True)
class Row:
    item: str
    paper: str
    ours: Callable
    setting: Callable


def _size(spec) -> str:
    d, caps = spec.data, [c for c in spec.capacities if c is not None]
    n = d["n_train"] if d["n_train"] is not None else "all (bundled subset)"
    sizes = spec.train_sizes if spec.train_sizes != [d["n_train"]] else [n]
    epochs = sorted({spec.train_settings(v["name"])["epochs"] for v in spec.variants})
    out = f"ours ({spec.name}): {sizes} training images, {d['n_val']} test, epochs {epochs}"
    out += f", seeds {spec.seeds}" + (f", widths {caps}" if caps else "")
    return out + ", MNIST: the bundled 5,000-image training subset unless full MNIST is cached"


def _claim_verdicts(res, words: str) -> str:
    from .findings import report_for

    rep = report_for(res)
    hits = [c for c in rep.claims if words in c.text] if rep is not None else []
    return "; ".join(f"{c.verdict} ({c.evidence('.3g')})" for c in hits) or "not measured"


def _mm_error(res) -> str:
    e = (1 - res.units.groupby(["corruption", "capacity"]).val_acc.mean()).unstack()
    return "; ".join(
        f"{c}: {e.loc[c].iloc[0]:.3f} (w{e.columns[0]}) → {e.loc[c].iloc[-1]:.3f} (w{e.columns[-1]})"
        for c in e.index
    )


def _mm_ratio(res) -> str:
    s = res.samples
    out = []
    for corr in ("label", "gaussian"):
        g = s[s.corruption == corr].groupby(["capacity", "corrupted"]).margin.mean().unstack()
        if True in g and False in g:
            r = (g[True] / g[False]).to_numpy()
            out.append(f"{corr}: corrupt/clean mean margin {r.min():.2f}–{r.max():.2f}")
    return "; ".join(out) or "no corrupted runs"


def _nm_fig2(res) -> str:
    acc = res.units.groupby(["corruption", "variant"]).val_acc.mean()
    frob = sorted(
        (v for v in res.units.variant.unique() if v.startswith("frob-a")),
        key=lambda v: float(v.split("-a")[1]),
    )
    if len(frob) < 2:
        return "not measured"
    return (
        f"test accuracy {acc.get(('none', frob[0]), np.nan):.3f} (true labels, {frob[0]}) vs "
        f"{acc.get(('random', frob[-1]), np.nan):.3f} (random labels, {frob[-1]})"
    )


def _amr_table(res) -> str:
    c = res.curves.groupby(["variant", "eps"]).accuracy.mean().unstack()
    acc = res.units.groupby("variant").val_acc.mean()
    s = res.samples[res.samples.split == "val"].groupby("variant").margin.mean()
    return "; ".join(
        f"{v}: clean {100 * acc[v]:.2f}, "
        + ", ".join(f"ε={e:g} {100 * c.loc[v, e]:.2f}" for e in c.columns if e > 0)
        + f", avg margin {s[v]:.2f}"
        for v in ("std", "amr")
    )


def _lr_fig1(res) -> str:
    t, u = res.trajectory, res.units.iloc[0]
    mins = t[t.split == "train-all-min"].sort_values("epoch")
    avg = t[(t.split == "train") & (t.row >= 0)].groupby("epoch").margin.mean()
    return (
        f"minimum {mins.margin.iloc[0]:.3f} → {mins.margin.iloc[-1]:.3f} (SVM {u.svm_min_margin:.3f}); "
        f"average peaks at {avg.max():.3f} (epoch {int(avg.idxmax())}), ends {avg.iloc[-1]:.3f}"
    )


def _losses_acc(res) -> str:
    u = res.units.groupby(["corruption", "n_train", "variant"]).val_acc.mean()
    return "; ".join(
        f"{c}/{int(n)}: " + ", ".join(f"{v} {g.loc[(c, n, v)]:.3f}" for v in g.index.get_level_values(2))
        for (c, n), g in u.groupby(level=[0, 1])
    )


PAPER = {
    "missing-margin": [
        Row(
            "Fig. 1: validation error vs width",
            "falls with width for clean, 20 % label- and 20 % "
            "input-corrupted MNIST (55,000 images, widths 100–10,000, 3 seeds)",
            _mm_error,
            _size,
        ),
        Row(
            "Fig. 1 claim (tested)",
            "error decreases with capacity",
            lambda r: _claim_verdicts(r, "validation error"),
            _size,
        ),
        Row(
            "Figs. 2-3: corrupt vs clean margins",
            "corrupted samples keep smaller margins at every width",
            _mm_ratio,
            lambda s: _size(s) + "; margins of correctly classified training samples (as §5)",
        ),
        Row(
            "Fig. 2 claim (tested)",
            "mean margins rise with width for every group",
            lambda r: _claim_verdicts(r, "mean margins increase"),
            lambda s: (
                _size(s) + f"; {s.train['epochs']} epochs for every set (paper: 1,000 label-corrupted, "
                "100 others)"
            ),
        ),
    ],
    "normalized-margin": [
        Row(
            "Fig. 1: spectral margins, standard training",
            "true labels right of random labels (Bartlett et al. 2017's effect)",
            lambda r: _claim_verdicts(r, "standard training"),
            _size,
        ),
        Row(
            "Fig. 2: Recipe 1, random labels α=100 vs true α=1",
            "ordering reversed; 81 % vs 10 % test accuracy",
            lambda r: _claim_verdicts(r, "reverses") + "; " + _nm_fig2(r),
            _size,
        ),
        Row(
            "Fig. 5: accuracy vs targeted normalized margin",
            "rises with the target (2-layer nets, 1,000 images, 50,000–250,000 full-batch epochs)",
            lambda r: _claim_verdicts(r, "test accuracy increases"),
            _size,
        ),
    ],
    "min-vs-average-margin": [
        Row(
            "Fig. 1a/b: LR on MNIST 0 vs 1",
            "minimum margin rises towards the SVM's, average falls after the first epochs (1,000 epochs)",
            _lr_fig1,
            _size,
        ),
        Row("Fig. 1 claims (tested)", "both", lambda r: _claim_verdicts(r, "margin"), _size),
    ],
    "average-margin-regularizer": [
        Row(
            "Table 1, MNIST MLP (%)",
            "Std: clean 98.24, ε=0.5 89.26, 1.0 49.23, 1.5 15.78, 2.0 5.06, avg "
            "margin 0.80; AMR: 96.01, 91.18, 81.01, 62.93, 38.44, 1.41",
            _amr_table,
            lambda s: _size(s) + f"; PGD {s.robustness['steps']} steps, ascending the logit margin",
        ),
        Row(
            "Table 1 claims (tested)",
            "AMR: larger average margin, higher robust accuracy",
            lambda r: _claim_verdicts(r, "AMR"),
            _size,
        ),
        Row(
            "§4.2: MLP trade-off (tested)",
            "minimum rises while the average falls",
            lambda r: _claim_verdicts(r, "standard training"),
            _size,
        ),
    ],
    "margin-losses": [
        Row(
            "test accuracy per loss",
            "seed 003 (full MNIST): xent 99.09, hinge 98.95, soft hinge 99.14, ODN "
            "99.16; seed 004: margin beats xent with noisy labels (e.g. 96.4 vs 93.9 at 80 % noise) and "
            "small training sets",
            _losses_acc,
            lambda s: _size(s) + "; MLP 784-256-256-10 (papers: CNNs), 20 % label noise, Adam",
        ),
        Row(
            "claims (tested)",
            "margin losses beat cross-entropy",
            lambda r: (
                f"{sum(c.verdict == 'reproduced' for c in _report(r).claims)} of "
                f"{len(_report(r).claims)} claims reproduced"
            ),
            _size,
        ),
        Row(
            "seed 003 Table 2: variance ratio (test)",
            "ODN 21.5 vs xent 15.65 (ODN the most compact)",
            lambda r: _claim_verdicts(r, "compact"),
            _size,
        ),
    ],
}
PAPER["missing-margin-cifar10"] = PAPER["missing-margin"]


def _report(res):
    from .findings import report_for

    return report_for(res)


def paper_vs_ours(res):
    """The paper-vs-ours table of a built-in study's results (see the module docstring)."""
    import pandas as pd

    from .findings import study_of

    study = study_of(res.spec.name)
    if study is None:
        raise ValueError(f"res: spec {res.spec.name!r} is not a built-in study ({', '.join(PAPER)})")
    return pd.DataFrame(
        [
            {"item": r.item, "paper": r.paper, "ours": r.ours(res), "setting difference": r.setting(res.spec)}
            for r in PAPER[study]
        ]
    )
