"""Negative controls: for every claim of every paper, a synthetic results table built to contradict it gives
"NOT reproduced" and one built to support it gives "reproduced"; the statistics on known answers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from marginlab.experiments import load_spec, stats
from marginlab.experiments.findings import NOT_REPRODUCED, REPRODUCED, losses, seed000, seed001, seed002

RNG = np.random.default_rng(0)


def fake(study, **tables):
    return SimpleNamespace(spec=load_spec(study), path=Path("/nonexistent"), **tables)


# -- the statistics ---------------------------------------------------------------------------------------
def test_estimate_interval_and_p_on_known_answers():
    """A bootstrap mean of 400 normal draws: interval half-width 1.645 standard errors, p = 1 - Phi(z)."""
    from scipy.stats import norm

    x = RNG.normal(0.1, 1.0, 400)
    se = x.std() / 20
    e = stats.estimate(x.mean(), x[stats.paired_rows(len(x))].mean(1))
    assert e.lo < x.mean() < e.hi
    assert (e.hi - e.lo) / 2 == pytest.approx(1.645 * se, rel=0.1)
    assert e.p == pytest.approx(norm.sf(x.mean() / se), abs=0.02)
    assert e.holds() == (e.lo > 0)
    assert not stats.estimate(np.nan, [1.0, 2.0]).holds()


def test_holm_adjusts_step_down():
    ps = [stats.Estimate(1, 0, 2, p) for p in (0.01, 0.04, 0.03)]
    adj = [e.p_adj for e in stats.holm(ps)]
    assert adj == pytest.approx([0.03, 0.06, 0.06])


def test_slopes():
    x = np.arange(5.0)
    assert stats.slope(x, 2 * x + 1) == pytest.approx(2.0)
    np.testing.assert_allclose(stats.slope_replicates(x, np.stack([x, -x])), [1.0, -1.0])
    t = stats.theil_sen(x, 3 * x + RNG.normal(0, 0.01, 5))
    assert t.value == pytest.approx(3.0, abs=0.05) and t.holds()
    assert not stats.theil_sen(x, -x).holds()


# -- seed 000 ---------------------------------------------------------------------------------------------
CAPS = [16, 64, 256, 1024]


def mm_units(err_lo, err_hi):
    rows = []
    for corr in ("none", "label", "gaussian"):
        for k, cap in enumerate(CAPS):
            for seed in (0, 1):
                err = err_lo + (err_hi - err_lo) * k / 3
                rows.append(dict(corruption=corr, capacity=cap, seed=seed, val_acc=1 - err, train_acc=1.0))
    return pd.DataFrame(rows)


def mm_samples(slope, corrupt_factor, n=200):
    rows = []
    for corr in ("none", "label", "gaussian"):
        corrupted = (np.arange(n) % 5 == 0) & (corr != "none")
        base = RNG.gamma(4.0, 0.25, n)
        for k, cap in enumerate(CAPS):
            m = base * (1 + slope * k) * np.where(corrupted, corrupt_factor, 1.0) + RNG.normal(0, 0.03, n)
            rows += [
                dict(
                    split="train",
                    corruption=corr,
                    capacity=cap,
                    seed=0,
                    row=r,
                    corrupted=c,
                    margin=v,
                    max_margin=np.nan,
                    max_margin_before=np.nan,
                )
                for r, (c, v) in enumerate(zip(corrupted, m))
            ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "err, verdict",
    [((0.20, 0.10), REPRODUCED), ((0.100, 0.105), NOT_REPRODUCED), ((0.100, 0.099), NOT_REPRODUCED)],
)
def test_validation_error_trend(err, verdict):
    """The issue's example: 0.100 -> 0.105 (error rising) is not a decrease; nor is a 0.001 drop on 2,000."""
    assert seed000.val_error_trend(fake("missing-margin", units=mm_units(*err))).verdict == verdict


@pytest.mark.parametrize("slope, verdict", [(0.2, REPRODUCED), (0.0, NOT_REPRODUCED), (-0.1, NOT_REPRODUCED)])
def test_margin_trend(slope, verdict):
    res = fake("missing-margin", samples=mm_samples(slope, 0.5))
    assert seed000.margin_trend(res).verdict == verdict


@pytest.mark.parametrize("factor, verdict", [(0.5, REPRODUCED), (1.0, NOT_REPRODUCED), (1.3, NOT_REPRODUCED)])
def test_corrupt_below_clean(factor, verdict):
    res = fake("missing-margin", samples=mm_samples(0.1, factor))
    assert seed000.corrupt_below_clean(res).verdict == verdict


def test_max_margin_is_a_setting_check_not_a_claim():
    s = mm_samples(0.1, 0.5).assign(max_margin=1.0, max_margin_before=2.0)
    rep = seed000.missing_margin(fake("missing-margin", units=mm_units(0.2, 0.1), samples=s))
    assert all("maximum margin" not in c.text for c in rep.claims)
    assert any("maximum margin" in k.text and k.holds for k in rep.checks)


# -- seed 001 ---------------------------------------------------------------------------------------------
def nm_tables(true_over_random, recipe_factor, accs):
    rows = []
    for corr, variant, scale in [
        ("none", "std", true_over_random),
        ("random", "std", 1.0),
        ("random", "frob-a100", recipe_factor),
        ("none", "frob-a1", 1.0),
    ]:
        v = scale * 1e-3 * RNG.lognormal(0, 0.5, 300)
        rows += [dict(corruption=corr, variant=variant, nm_spectral=x, nm_frobenius=x) for x in v]
    units = [
        dict(corruption="none", variant=f"frob-a{a}", val_acc=acc, train_acc=1.0)
        for a, acc in zip((1, 4, 16, 100), accs)
    ]
    return fake("normalized-margin", samples=pd.DataFrame(rows), units=pd.DataFrame(units))


@pytest.mark.parametrize("ratio, verdict", [(3.0, REPRODUCED), (1.0, NOT_REPRODUCED), (0.5, NOT_REPRODUCED)])
def test_spectral_ordering(ratio, verdict):
    assert seed001.spectral_ordering(nm_tables(ratio, 3.0, [0.8] * 4)).verdict == verdict


@pytest.mark.parametrize("ratio, verdict", [(3.0, REPRODUCED), (1.0, NOT_REPRODUCED)])
def test_recipe_reverses_ordering(ratio, verdict):
    assert seed001.recipe_reverses_ordering(nm_tables(3.0, ratio, [0.8] * 4)).verdict == verdict


@pytest.mark.parametrize(
    "accs, verdict",
    [
        ([0.70, 0.78, 0.84, 0.89], REPRODUCED),
        ([0.800, 0.799, 0.802, 0.801], NOT_REPRODUCED),
        ([0.89, 0.84, 0.78, 0.70], NOT_REPRODUCED),
    ],
)
def test_accuracy_trend(accs, verdict):
    """A positive correlation on 4 noisy points (0.800, 0.799, 0.802, 0.801) is no trend on 2,000 samples."""
    assert seed001.accuracy_trend(nm_tables(3.0, 3.0, accs)).verdict == verdict


# -- seed 002: logistic regression --------------------------------------------------------------------------
EPOCHS = [0, 1, 2, 3, 5, 10, 20, 50, 100, 200]


def lr_tables(mins, avg_curve, n=300):
    rows = [
        dict(epoch=e, split="train-all-min", row=-1, margin=m, correct=m > 0) for e, m in zip(EPOCHS, mins)
    ]
    base = RNG.normal(0, 0.5, n)
    for e, a in zip(EPOCHS, avg_curve):
        m = a + base + RNG.normal(0, 0.05, n)
        rows += [dict(epoch=e, split="train", row=r, margin=x, correct=x > 0) for r, x in enumerate(m)]
    units = pd.DataFrame([dict(svm_min_margin=1.2, svm_mean_margin=2.0, svm_train_acc=1.0, train_acc=1.0)])
    return fake("min-vs-average-margin", trajectory=pd.DataFrame(rows), units=units)


RISING = [-1.5, -0.8, -0.3, 0.0, 0.2, 0.4, 0.5, 0.6, 0.65, 0.7]
PEAKED = [1, 2, 3, 3.3, 3.2, 3.1, 3.0, 2.9, 2.85, 2.8]


@pytest.mark.parametrize(
    "mins, verdict", [(RISING, REPRODUCED), ([0.5] * 10, NOT_REPRODUCED), (RISING[::-1], NOT_REPRODUCED)]
)
def test_min_approaches_svm(mins, verdict):
    mins = np.asarray(mins) + RNG.normal(0, 1e-3, 10)
    assert seed002.min_approaches_svm(lr_tables(mins, PEAKED)).verdict == verdict


@pytest.mark.parametrize(
    "avg, verdict",
    [
        (PEAKED, REPRODUCED),
        ([1, 2, 3, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.9999], NOT_REPRODUCED),
        ([1, 2, 3, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7], NOT_REPRODUCED),
    ],
)
def test_average_falls(avg, verdict):
    """The issue's example: 3.000 -> 2.9999 is no fall."""
    assert seed002.average_falls(lr_tables(RISING, avg)).verdict == verdict


# -- seed 002: AMR -------------------------------------------------------------------------------------
def amr_tables(shift=0.1, rob=(0.30, 0.20), mins=RISING, avg=PEAKED, n=500):
    m = RNG.normal(1.0, 0.7, n)  # standard error of a paired difference with noise 0.7: 0.03
    samples = [
        dict(
            split="val",
            variant=v,
            seed=0,
            row=r,
            margin=x + (shift if v == "amr" else 0) + RNG.normal(0, 0.7),
        )
        for v in ("std", "amr")
        for r, x in enumerate(m)
    ]
    curves = [
        dict(variant=v, eps=e, accuracy=a, n=1000)
        for e in (0.0, 1.0, 2.0)
        for v, a in (("amr", rob[0] if e == 2.0 else 0.5), ("std", rob[1] if e == 2.0 else 0.5))
    ]
    traj = lr_tables(mins, avg).trajectory.query("split == 'train'")
    traj = pd.concat([traj.assign(variant="std"), traj.assign(variant="amr")])
    units = pd.DataFrame(dict(variant=["std", "amr"], val_acc=[0.9, 0.9]))
    return fake(
        "average-margin-regularizer",
        samples=pd.DataFrame(samples),
        curves=pd.DataFrame(curves),
        trajectory=traj,
        units=units,
    )


@pytest.mark.parametrize(
    "shift, verdict", [(0.2, REPRODUCED), (1e-4, NOT_REPRODUCED), (-0.2, NOT_REPRODUCED)]
)
def test_amr_average_margin(shift, verdict):
    """The issue's example: +1e-4 on noise with standard error 0.03 is not a finding."""
    assert seed002.amr_average_margin(amr_tables(shift=shift)).verdict == verdict


@pytest.mark.parametrize(
    "rob, verdict",
    [((0.30, 0.20), REPRODUCED), ((0.205, 0.20), NOT_REPRODUCED), ((0.10, 0.20), NOT_REPRODUCED)],
)
def test_amr_robustness(rob, verdict):
    claim = seed002.amr_robustness(amr_tables(rob=rob))
    assert claim.verdict == verdict and all(p.p_adj is not None for p in claim.parts)


@pytest.mark.parametrize(
    "mins, avg, verdict",
    [
        (RISING, PEAKED, REPRODUCED),
        (RISING[::-1], PEAKED, NOT_REPRODUCED),
        (RISING, sorted(PEAKED), NOT_REPRODUCED),
    ],
)
def test_mlp_tradeoff(mins, avg, verdict):
    """The MLP's tracked samples: the minimum is the tracked samples' minimum, the average their mean."""
    res = amr_tables(mins=mins, avg=avg)
    t = res.trajectory
    for e, m in zip(EPOCHS, mins):  # row 0 carries each epoch's minimum, far below the other rows
        at = (t.epoch == e) & (t.row == 0)
        t.loc[at, "margin"], t.loc[at, "correct"] = m - 3.0, m - 3.0 > 0
    assert seed002.mlp_tradeoff(res).verdict == verdict


# -- seeds 003/004 -------------------------------------------------------------------------------------------
LOSSES = ("xent", "hinge", "odn", "large-margin")


def ml_tables(acc_gain=0.0, margin_gain=0.0, odn_sd=0.5, rob_gain=0.0, n=500):
    samples, units, curves = [], [], []
    base = RNG.normal(1.0, 0.5, n)
    for v in LOSSES:
        gain = 0.0 if v == "xent" else 1.0
        sd = odn_sd if v == "odn" else 0.5
        m = 1.0 + gain * margin_gain + sd * (base - 1.0) / 0.5 + RNG.normal(0, 0.2, n)
        samples += [
            dict(
                split="val", corruption="label", n_train=500, variant=v, seed=0, row=r, margin=x, label=r % 10
            )
            for r, x in enumerate(m)
        ]
        units.append(dict(corruption="label", n_train=500, variant=v, val_acc=0.80 + gain * acc_gain))
        curves += [
            dict(
                corruption="label",
                n_train=500,
                variant=v,
                attack="fgsm",
                eps=e,
                n=1000,
                accuracy=max(0.0, 0.6 - e + gain * rob_gain),
            )
            for e in (0.0, 0.1, 0.2)
        ]
    return fake(
        "margin-losses", samples=pd.DataFrame(samples), units=pd.DataFrame(units), curves=pd.DataFrame(curves)
    )


def ml_claim(res, words, variance=None):
    return next(c for c in losses.margin_losses(res, variance).claims if words in c.text)


@pytest.mark.parametrize(
    "gain, verdict", [(0.05, REPRODUCED), (0.0001, NOT_REPRODUCED), (-0.05, NOT_REPRODUCED)]
)
def test_losses_accuracy(gain, verdict):
    claim = ml_claim(ml_tables(acc_gain=gain), "generalizes better")
    assert claim.verdict == verdict and claim.combine == "any"


@pytest.mark.parametrize("gain, verdict", [(0.1, REPRODUCED), (1e-4, NOT_REPRODUCED), (-0.1, NOT_REPRODUCED)])
def test_losses_mean_margin(gain, verdict):
    assert ml_claim(ml_tables(margin_gain=gain), "larger mean").verdict == verdict


@pytest.mark.parametrize("sd, verdict", [(0.25, REPRODUCED), (0.5, NOT_REPRODUCED), (1.0, NOT_REPRODUCED)])
def test_odn_mean_std_ratio(sd, verdict):
    assert ml_claim(ml_tables(odn_sd=sd), "mean/std").verdict == verdict


@pytest.mark.parametrize(
    "gain, verdict", [(0.1, REPRODUCED), (0.001, NOT_REPRODUCED), (-0.1, NOT_REPRODUCED)]
)
def test_losses_robustness(gain, verdict):
    assert ml_claim(ml_tables(rob_gain=gain), "more robust").verdict == verdict


@pytest.mark.parametrize("factor, verdict", [(2.0, REPRODUCED), (1.0, NOT_REPRODUCED), (0.5, NOT_REPRODUCED)])
def test_variance_ratio(factor, verdict):
    rows = []
    for v in LOSSES:
        r = 3.0 * (factor if v == "odn" else 1.0) * np.exp(RNG.normal(0, 0.05, 501))
        rows += [
            dict(corruption="label", n_train=500, variant=v, replicate=b - 1, ratio=x)
            for b, x in enumerate(r)
        ]
    assert ml_claim(ml_tables(), "compact", pd.DataFrame(rows)).verdict == verdict


def test_untrained_model_is_left_out_and_named():
    res = ml_tables(acc_gain=0.05)
    res.units.loc[res.units.variant == "odn", "val_acc"] = 0.11
    rep = losses.margin_losses(res)
    assert any("did not train" in n and "odn" in n for n in rep.notes)
    assert all("odn" not in p.label for c in rep.claims for p in c.parts)
