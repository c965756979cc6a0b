"""Seeds 003 (ODN, hinge, soft hinge) and 004 (large-margin loss, Elsayed et al. 2018): margin losses vs
cross-entropy on small and noisy training sets.

Per setting (label noise × training-set size). Claims about margin losses in general hold when *some* margin
loss beats cross-entropy, their p-values over the losses are Holm-adjusted: test accuracy (seed 003 Table 1,
seed 004 Figs. 3-4; binomial redraws), mean test margin (same test samples paired), robustness per attack as
the mean accuracy over eps > 0 (seed 003 §4.6, seed 004 Figs. 5-6; binomial redraws). Seed 003's claims about
ODN compare ODN alone with cross-entropy: its margin mean/std ratio (§4.5, paired) and, when a variance table
is present, its last hidden layer between/within-class variance ratio (§4.4, Table 2; replicates resampled
from the test samples with the models, :func:`variance_ratio_table`).
A model whose test accuracy stays below twice chance did not train: it is named and left out.
"""

from __future__ import annotations

import numpy as np

from .. import stats
from .base import Claim, Report

__all__ = ["margin_losses", "variance_ratio_table", "load_variance", "SETTING_KEYS"]

SETTING_KEYS = ["corruption", "n_train"]


def _setting(corr, n) -> str:
    return f"{'clean labels' if corr == 'none' else f'{corr} noise'}, {int(n)} training samples"


def _accuracy(u, n_val, losses) -> list:
    acc = u.set_index("variant").val_acc
    reps = stats.binomial_draws(acc.to_numpy(), n_val)
    col = {v: i for i, v in enumerate(acc.index)}
    return [
        stats.estimate(
            acc[v] - acc["xent"],
            reps[:, col[v]] - reps[:, col["xent"]],
            label=f"{v} {acc[v]:.3f} vs {acc['xent']:.3f}",
        )
        for v in losses
    ]


def _paired(s, losses, stat, fmt):
    """Per loss: stat(loss rows) − stat(xent rows) on the same test rows, rows resampled jointly."""
    m = s.pivot_table(index=["seed", "row"], columns="variant", values="margin").dropna()
    idx = stats.paired_rows(len(m), n_boot=1000)
    out = []
    for v in losses:
        a, b = m[v].to_numpy(), m["xent"].to_numpy()
        out.append(
            stats.estimate(
                stat(a) - stat(b),
                stat(a[idx], 1) - stat(b[idx], 1),
                label=f"{v} {stat(a):{fmt}} vs {stat(b):{fmt}}",
            )
        )
    return out


def _mean(a, axis=None):
    return np.mean(a, axis=axis)


def _mean_std(a, axis=None):
    return np.mean(a, axis=axis) / np.std(a, axis=axis, ddof=1)


def _robustness(c, attack, losses) -> list:
    c = c[(c.attack == attack) & (c.eps > 0)].sort_values("eps")
    out = []
    for v in losses:
        a, x = c[c.variant == v], c[c.variant == "xent"]
        ra = stats.binomial_draws(a.accuracy.to_numpy(), a.n.to_numpy(), seed=3).mean(1)
        rx = stats.binomial_draws(x.accuracy.to_numpy(), x.n.to_numpy(), seed=4).mean(1)
        va, vx = a.accuracy.mean(), x.accuracy.mean()
        out.append(stats.estimate(va - vx, ra - rx, label=f"{v} {va:.3f} vs {vx:.3f}"))
    return out


def _variance(vt, losses) -> list:
    w = vt.pivot_table(index="replicate", columns="variant", values="ratio")
    d, r = w.loc[-1], w.drop(index=-1)
    return [
        stats.estimate(
            np.log(d[v] / d["xent"]), np.log(r[v] / r["xent"]), label=f"{v} {d[v]:.2f} vs {d['xent']:.2f}"
        )
        for v in losses
    ]


def _setting_claims(res, corr, n, variance) -> tuple[list, list]:
    u = res.units[(res.units.corruption == corr) & (res.units.n_train == n)]
    n_classes = int(res.samples["label"].max()) + 1
    failed = u[u.val_acc < 2.0 / n_classes].variant.tolist()
    notes = [f"did not train ({_setting(corr, n)}): {', '.join(failed)}"] if failed else []
    if "xent" in failed or "xent" not in set(u.variant):
        return [], notes
    u = u[~u.variant.isin(failed)]
    losses = [v for v in u.variant if v != "xent"]
    s = res.samples[(res.samples.corruption == corr) & (res.samples.n_train == n)]
    split = "val" if (s.split == "val").any() else "train"
    s = s[(s.split == split) & s.variant.isin(u.variant)]
    where = _setting(corr, n)
    claims = [
        Claim(
            f"a margin loss generalizes better than cross-entropy ({where})",
            "003 Table 1, 004 Figs. 3-4",
            "test accuracy, loss − xent",
            _accuracy(u, int(res.spec.data["n_val"]), losses),
            "any",
        ),
        Claim(
            f"a margin loss gives larger mean {split} margins than cross-entropy ({where})",
            "003 Fig. 5, 004 §4",
            f"mean {split} margin, loss − xent (paired)",
            _paired(s, losses, _mean, ".3f"),
            "any",
        ),
    ]
    if "odn" in losses:
        claims.append(
            Claim(
                f"ODN's margin distribution has a larger mean/std ratio than cross-entropy's ({where})",
                "003 §4.5, Fig. 5",
                "mean/std of margins, ODN − xent (paired)",
                _paired(s, ["odn"], _mean_std, ".2f"),
            )
        )
    c = res.curves[(res.curves.corruption == corr) & (res.curves.n_train == n)]
    for attack in sorted(set(c.attack)):
        claims.append(
            Claim(
                f"a margin loss is more robust than cross-entropy ({attack}, {where})",
                "003 §4.6, 004 Figs. 5-6",
                "mean accuracy over eps > 0, loss − xent",
                _robustness(c, attack, losses),
                "any",
            )
        )
    if variance is not None:
        vt = variance[
            (variance.corruption == corr) & (variance.n_train == n) & variance.variant.isin(u.variant)
        ]
        if len(vt) and "odn" in losses:  # seed 003 Table 2 credits ODN with the most compact classes
            claims.append(
                Claim(
                    f"ODN gives more compact classes in the last hidden layer than cross-entropy ({where})",
                    "003 §4.4, Table 2",
                    "log(variance ratio between/within, ODN / xent)",
                    _variance(vt, ["odn"]),
                )
            )
    return claims, notes


def margin_losses(res, variance=None) -> Report:
    """The seeds 003/004 report of a ``margin-losses`` run; ``variance``: a :func:`variance_ratio_table`
    (default: the results folder's ``variance.parquet`` when present)."""
    from .notes import masking_note, scale_note

    if variance is None:
        variance = load_variance(res)
    rep = Report("Seeds 003/004 — Margin losses vs cross-entropy")
    for (corr, n), _ in res.units.groupby(SETTING_KEYS, sort=False):
        claims, notes = _setting_claims(res, corr, n, variance)
        for c in claims:
            rep.add(c)
        rep.notes += notes
    _checks(rep, res)
    if (note := masking_note(res.curves)) is not None:
        rep.notes.append(note)
    rep.notes.append(scale_note(res))
    return rep


def _checks(rep: Report, res) -> None:
    spec = res.spec
    names = {v["name"] for v in spec.variants}
    if "odn" in names:
        o = spec.train_settings("odn")["loss_options"]
        rep.check(
            "ODN at seed 003 Table 1's values (r / theta / mu = 1.2 / 0.7 / 0.1)",
            (o.get("r"), o.get("theta"), o.get("mu")) == (1.2, 0.7, 0.1),
            str(o),
        )
    if "large-margin" in names:
        o = spec.train_settings("large-margin")["loss_options"]
        rep.check(
            "large-margin loss at seed 004 App. A.2's MNIST values (l2 at the input, gamma 200 on 0-255 "
            "pixels, max aggregation, cross-entropy weight 1)",
            abs(o.get("gamma", 0) - 200 / 255) < 1e-9
            and o.get("aggregation") == "max"
            and o.get("ce_weight") == 1.0,
            str(o),
        )


def load_variance(res):
    """The results folder's shipped ``variance.parquet`` (:func:`variance_ratio_table`), or None."""
    import pandas as pd

    f = res.path / "variance.parquet"
    return pd.read_parquet(f) if f.exists() else None


def variance_ratio_table(res, n_boot: int = 500):
    """Between/within-class variance ratios of every model's last hidden layer on its test samples
    (seed 003 §4.4), with ``n_boot`` bootstrap replicates (the same resampled rows for every loss of a
    setting); ``replicate`` −1 is the ratio on the samples themselves. Needs the trained models."""
    import pandas as pd

    from ...embed import features, variance_ratio

    rows = []
    for (corr, n), g in res.units.groupby(SETTING_KEYS, sort=False):
        _, val = res.data(g.unit_id.iloc[0])
        idx = stats.paired_rows(len(val), n_boot=n_boot, seed=5)
        for uid, variant in zip(g.unit_id, g.variant):
            Z = features(val.X, model=res.model(uid), layer=-1)
            vals = [variance_ratio(Z, val.y).ratio] + [variance_ratio(Z[i], val.y[i]).ratio for i in idx]
            rows += [(corr, n, variant, b - 1, r) for b, r in enumerate(vals)]
    return pd.DataFrame(rows, columns=[*SETTING_KEYS, "variant", "replicate", "ratio"])
