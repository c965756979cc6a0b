"""NN ensembles vs NN-GP draws vs normalized margin (seed 001 Fig. 6): study function, finding, figure."""

import math

import numpy as np
import pandas as pd
import pytest

from marginlab.experiments.gp_study import _ensemble_accuracy, binary_mnist, gp_finding, gp_vs_ensemble
from marginlab.viz.studies import ensemble_vs_gp


@pytest.fixture(scope="module")
def data():
    return binary_mnist(80, 150, seed=0)


def test_binary_mnist_is_balanced_binary_and_on_the_sphere(data):
    train, test = data
    assert (len(train), len(test)) == (80, 150)
    assert train.n_classes == 2 and np.bincount(train.y).tolist() == [40, 40]
    norms = np.linalg.norm(train.X.reshape(len(train), -1), axis=1)
    assert np.allclose(norms, math.sqrt(784), rtol=1e-4)


def test_ensemble_accuracy_averages_outputs_over_disjoint_ensembles():
    y = np.array([1, 1])
    # four "networks", outputs (n=2, classes=2): alone each gets one point right; pairs (0,1) and (2,3) both
    # average to the correct side on both points
    outs = np.array([[[0, 1], [1, 0]], [[1, 0.5], [0, 3]], [[0, 1], [1, 0]], [[1, 0.5], [0, 3]]], float)
    assert _ensemble_accuracy(outs, y, 1) == pytest.approx(0.5)
    assert _ensemble_accuracy(outs, y, 2) == pytest.approx(1.0)
    assert _ensemble_accuracy(outs, y, 4) == pytest.approx(1.0)


def test_gp_rows_improve_with_margin_and_ensemble_size(data):
    t = gp_vs_ensemble((0.05, 0.5, 5.0), (1, 4, 16), nets=False, data=data)
    assert set(t.model) == {"NN-GP draws"} and len(t) == 9
    acc = t.set_index(["margin", "m"]).accuracy
    assert acc[(0.05, 1)] < 0.7 < acc[(5.0, 1)]  # single small-margin draws are near chance
    assert acc[(0.05, 1)] < acc[(0.05, 4)] < acc[(0.05, 16)]  # averaging helps ...
    # ... exactly like a larger margin: the m-average at γ equals one draw at √m·γ (seed 001 Eq. 3)
    t2 = gp_vs_ensemble((0.2,), (1,), nets=False, data=data)
    assert t2.accuracy.iloc[0] == pytest.approx(acc[(0.05, 16)], rel=1e-9)


def test_recipe1_ensembles_reach_targets_and_small_margin_hurts(data):
    t = gp_vs_ensemble((0.1, 3.0), (1, 2), width=64, epochs=40, data=data, seed=0)
    nn = t[t.model == "NN ensemble"].set_index(["margin", "m"])
    assert len(nn) == 4
    assert nn.achieved_margin[(0.1, 1)] == pytest.approx(0.1, rel=0.15)
    assert nn.achieved_margin[(3.0, 1)] == pytest.approx(3.0, rel=0.15)
    assert nn.accuracy[(0.1, 1)] + 0.1 < nn.accuracy[(3.0, 1)]
    assert gp_finding(t).startswith("Fig. 6 ")


def test_finding_verdict_follows_the_numbers():
    def table(small1, smallk, n_test=2000):
        return pd.DataFrame({"model": ["NN-GP draws"] * 4, "margin": [0.1, 0.1, 1.0, 1.0], "m": [1, 8, 1, 8],
                             "accuracy": [small1, smallk, 0.9, 0.92], "n_test": n_test})

    assert gp_finding(table(0.6, 0.8)).startswith("Fig. 6 reproduced")
    assert gp_finding(table(0.6, 0.55)).startswith("Fig. 6 NOT reproduced")  # averaging did not help
    assert gp_finding(table(0.95, 0.97)).startswith("Fig. 6 NOT reproduced")  # small margin did not hurt
    assert "0.600" in gp_finding(table(0.6, 0.8))
    # a 0.02 gain is a finding on 20,000 test images, not on 200 (binomial noise)
    assert gp_finding(table(0.6, 0.62, n_test=20000)).startswith("Fig. 6 reproduced")
    assert gp_finding(table(0.6, 0.62, n_test=200)).startswith("Fig. 6 NOT reproduced")
    with pytest.raises(ValueError, match="n_test"):
        gp_finding(table(0.6, 0.8).drop(columns="n_test"))


def test_figure_has_one_panel_per_model_and_one_line_per_m():
    rows = [(mod, a, m, 0.5 + 0.1 * a + 0.01 * m) for mod in ("NN ensemble", "NN-GP draws")
            for a in (0.1, 1.0) for m in (1, 4)]
    fig = ensemble_vs_gp(pd.DataFrame(rows, columns=["model", "margin", "m", "accuracy"]))
    assert len(fig.data) == 4
    assert [a.text for a in fig.layout.annotations] == ["NN ensemble", "NN-GP draws"]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    assert sum(tr.showlegend for tr in fig.data) == 2
    assert list(fig.data[1].y) == pytest.approx([0.55, 0.64])  # m=4 of the first panel, margins sorted
    with pytest.raises(ValueError, match="lacks columns"):
        ensemble_vs_gp(pd.DataFrame({"model": ["x"]}))
