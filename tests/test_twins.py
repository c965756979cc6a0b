"""Attack-set twin networks (seed 001 Figs. 3 and 7): data, study function, finding, figures."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from marginlab.data import load_mnist
from marginlab.experiments.twins import attack_set_data, attack_set_twins, twins_finding
from marginlab.viz.studies import TWIN_COLORS, twin_accuracy_vs_margin, twin_margins

N_CLEAN, N_ATTACK, N_TEST = 60, 120, 500


@pytest.fixture(scope="module")
def data():
    return attack_set_data(N_CLEAN, N_ATTACK, N_TEST, seed=0)


@pytest.fixture(scope="module")
def result(data):
    return attack_set_twins((1.0,), width=128, epochs=300, lr_decay=0.995, data=data)


def test_attack_set_is_disjoint_randomly_labelled_and_on_the_sphere(data):
    clean, attack, test = data
    assert (len(clean), len(attack), len(test)) == (N_CLEAN, N_ATTACK, N_TEST)
    assert clean.n_classes == attack.n_classes == 10
    assert len(np.intersect1d(clean.index, attack.index)) == 0
    true = load_mnist("train").y
    assert np.array_equal(clean.y, true[clean.index])  # clean points keep their labels
    assert np.array_equal(attack.y_original, true[attack.index])
    changed = attack.y != attack.y_original
    assert np.array_equal(changed, attack.corrupted)
    assert 0.75 * N_ATTACK < changed.sum() < N_ATTACK  # uniform labels: ~90% differ, a few coincide
    assert len(np.unique(attack.y)) == 10
    for ds in data:
        assert np.allclose(np.linalg.norm(ds.X.reshape(len(ds), -1), axis=1), math.sqrt(784), rtol=1e-4)
    again = attack_set_data(N_CLEAN, N_ATTACK, N_TEST, seed=0)[1]
    assert np.array_equal(again.index, attack.index) and np.array_equal(again.y, attack.y)
    assert not np.array_equal(attack_set_data(N_CLEAN, N_ATTACK, N_TEST, seed=1)[1].index, attack.index)


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(n_clean=3000, n_attack=2001), ValueError, r"n_clean \+ n_attack must be at most 5000"),
    (dict(n_clean=0), ValueError, r"n_clean must be an integer in \[1, inf\], got 0"),
    (dict(n_attack=2.5), TypeError, "n_attack must be an integer"),
    (dict(n_test=10001), ValueError, r"n_test must be an integer in \[1, 10000\]"),
])
def test_data_validation_names_parameter_and_range(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        attack_set_data(**kwargs)


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(margins=(1.0, -0.5)), ValueError, r"margins\[\] must be in \(0, inf\), got -0.5"),
    (dict(margins=()), ValueError, "margins must contain at least one"),
    (dict(margins=("big",)), TypeError, "margins must be a sequence of positive numbers"),
    (dict(epochs=0), ValueError, r"epochs must be an integer in \[1, inf\]"),
    (dict(width=0), ValueError, r"width must be an integer in \[1, inf\]"),
    (dict(depth=1), ValueError, r"depth must be an integer in \[2, inf\]"),
    (dict(lr=0.0), ValueError, r"lr must be in \(0, inf\)"),
    (dict(lr_decay=1.5), ValueError, r"lr_decay must be in \(0, 1\]"),
    (dict(beta=1.0), ValueError, r"beta must be in \[0, 1\)"),
])
def test_study_validation_names_parameter_and_range(data, kwargs, err, msg):
    with pytest.raises(err, match=msg):
        attack_set_twins(**{"margins": (1.0,), "data": data, **kwargs})


def test_overlapping_attack_set_is_rejected(data):
    clean, attack, test = data
    with pytest.raises(ValueError, match="disjoint"):
        overlapping = attack.subset(np.arange(5)).replace(index=clean.index[:5])
        attack_set_twins((1.0,), data=(clean, overlapping, test))


def test_tables_have_one_block_per_twin_and_the_right_rows(result, data):
    s, t = result.samples, result.summary
    assert list(t.twin) == ["control", "attack"] and set(t.alpha) == {1.0}
    assert {"train_acc", "clean_acc", "attack_acc", "test_acc", "margin_mean", "margin_median",
            "margin_min", "n_train", "epochs", "seconds"} <= set(t.columns)
    assert list(t.n_train) == [N_CLEAN, N_CLEAN + N_ATTACK]
    assert list(s.columns) == ["twin", "alpha", "set", "row", "label", "true_label", "margin", "correct"]
    assert s.groupby(["twin", "set"]).size().to_dict() == {
        ("attack", "attack"): N_ATTACK, ("attack", "clean"): N_CLEAN, ("control", "clean"): N_CLEAN}
    # the same clean points (same rows, true labels) for both twins; attack rows carry the random labels
    cc = s[(s.twin == "control")]
    ac = s[(s.twin == "attack") & (s.set == "clean")]
    assert np.array_equal(cc.row, ac.row) and np.array_equal(cc.label, cc.true_label)
    aa = s[s.set == "attack"]
    assert np.array_equal(aa.row, data[1].index) and np.array_equal(aa.label, data[1].y)
    assert np.isnan(t.attack_acc.iloc[0])
    assert np.array_equal(result.clean_rows, data[0].index)
    assert np.array_equal(result.attack_rows, data[1].index)
    # summary numbers are the per-sample numbers
    assert t.margin_median.iloc[1] == pytest.approx(np.median(ac.margin))
    assert t.attack_acc.iloc[1] == pytest.approx(aa.correct.mean())


def test_both_twins_fit_and_hit_the_targeted_margin_but_the_attack_twin_generalizes_worse(result):
    t = result.summary.set_index("twin")
    assert t.clean_acc.min() == 1.0
    assert t.loc["attack", "attack_acc"] >= 0.95  # the random labels are actually fitted
    assert t.margin_median.to_numpy() == pytest.approx([1.0, 1.0], rel=0.1)
    assert t.loc["control", "test_acc"] > t.loc["attack", "test_acc"] + 0.1
    line = twins_finding(result)
    assert line.startswith("Fig. 3 reproduced at α ∈ {1}")
    assert f"{t.loc['control', 'test_acc']:.3f} vs attack {t.loc['attack', 'test_acc']:.3f}" in line


def _fake(medians, accs, alpha=1.0, n_test=1000):
    rng = np.random.default_rng(0)
    rows = [pd.DataFrame({"twin": tw, "alpha": alpha, "set": "clean",
                          "margin": m + 0.01 * rng.standard_normal(50)})
            for tw, m in zip(("control", "attack"), medians)]
    summary = pd.DataFrame({"twin": ["control", "attack"], "alpha": alpha, "margin_median": medians,
                            "test_acc": accs, "n_test": n_test})
    return SimpleNamespace(samples=pd.concat(rows, ignore_index=True), summary=summary)


def test_finding_verdict_follows_the_numbers():
    assert twins_finding(_fake([1.0, 0.95], [0.81, 0.35])).startswith("Fig. 3 reproduced at α ∈ {1}")
    # margins differ / no test-accuracy gap / a looser tolerance accepts the first
    assert twins_finding(_fake([1.0, 0.6], [0.81, 0.35])).startswith("Fig. 3 NOT reproduced")
    assert twins_finding(_fake([1.0, 1.0], [0.81, 0.78])).startswith("Fig. 3 NOT reproduced")
    assert twins_finding(_fake([1.0, 0.6], [0.81, 0.35]), rtol=0.5).startswith("Fig. 3 reproduced")
    line = twins_finding(_fake([2.0, 1.9], [0.812, 0.351], alpha=2.0))
    assert "median margin control 2.000 vs attack 1.900" in line and "0.812 vs attack 0.351" in line
    assert "KS 1.00" in line  # the two fake distributions do not overlap at all
    # a gap that would pass as a point estimate is no finding on 100 test images (binomial noise)
    assert twins_finding(_fake([1.0, 0.95], [0.81, 0.68], n_test=100)).startswith("Fig. 3 NOT reproduced")
    assert twins_finding(_fake([1.0, 0.95], [0.81, 0.68], n_test=10000)).startswith("Fig. 3 reproduced")
    with pytest.raises(ValueError, match=r"rtol must be in \[0, inf\)"):
        twins_finding(_fake([1, 1], [0.8, 0.3]), rtol=-1)


def _tables():
    rows, summ = [], []
    for a in (0.5, 2.0):
        for tw, acc in (("control", 0.8), ("attack", 0.4)):
            rows.append(pd.DataFrame({"twin": tw, "alpha": a, "set": ["clean"] * 20 + ["attack"] * 5,
                                      "margin": np.linspace(0.9 * a, a, 25)}))
            summ.append({"twin": tw, "alpha": a, "test_acc": acc * a / 2, "train_acc": 1.0, "clean_acc": 1.0})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(summ)


def test_margin_figure_one_panel_per_alpha_with_test_accuracy_in_the_names():
    samples, summary = _tables()
    fig = twin_margins(samples, summary)
    assert [a.text for a in fig.layout.annotations if a.text.startswith("α")] == ["α = 0.5", "α = 2"]
    assert [tr.name for tr in fig.data] == [
        "control: test acc 20.0% (α=0.5)", "attack: test acc 10.0% (α=0.5)",
        "control: test acc 80.0% (α=2)", "attack: test acc 40.0% (α=2)"]
    assert all(len(tr.x) == 20 for tr in fig.data)  # clean points only
    assert [tr.marker.color for tr in fig.data[:2]] == [TWIN_COLORS["control"], TWIN_COLORS["attack"]]
    one = twin_margins(samples, alphas=[2.0])
    assert [tr.name for tr in one.data] == ["control", "attack"]
    with pytest.raises(ValueError, match="no clean rows"):
        twin_margins(samples, alphas=[7.0])
    with pytest.raises(ValueError, match="lacks columns"):
        twin_margins(samples.drop(columns="margin"))


def test_accuracy_figure_has_test_and_train_lines_per_twin():
    _, summary = _tables()
    fig = twin_accuracy_vs_margin(summary)
    assert [tr.name for tr in fig.data] == ["control test", "attack test", "control train", "attack train"]
    assert list(fig.data[1].y) == pytest.approx([0.1, 0.4]) and list(fig.data[1].x) == [0.5, 2.0]
    assert [tr.line.dash for tr in fig.data] == ["solid", "solid", "dash", "dash"]
    assert fig.layout.xaxis.type == "log"
    with pytest.raises(ValueError, match="lacks columns"):
        twin_accuracy_vs_margin(summary, train="nope")
