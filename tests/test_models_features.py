"""Input features (a fixed differentiable map in front of an MLP) and dropout: known answers, invariances."""

import numpy as np
import pytest
import torch

from marginlab.margins import compute_margins
from marginlab.models import FEATURES, MLP, FeatureMap, LinearModel, build_model, load_model, save_model


def _points(n=40, seed=0, scale=2.0):
    return torch.as_tensor(np.random.default_rng(seed).uniform(-scale, scale, (n, 2)), dtype=torch.float32)


def test_feature_values_and_jacobian_match_the_formulas():
    fmap = FeatureMap(tuple(FEATURES))
    p = _points(6, seed=1).double()
    x, y = p[:, 0], p[:, 1]
    expect = torch.stack([x, y, x * x, y * y, x * y, torch.sin(x), torch.sin(y)], 1)
    torch.testing.assert_close(fmap(p), expect)
    J = torch.autograd.functional.jacobian(lambda q: fmap(q[None])[0], p[0])
    a, b = float(x[0]), float(y[0])
    analytic = torch.tensor([[1, 0], [0, 1], [2 * a, 0], [0, 2 * b], [b, a], [np.cos(a), 0], [0, np.cos(b)]],
                            dtype=torch.float64)
    torch.testing.assert_close(J, analytic)
    assert list(fmap.parameters()) == []


def test_spellings_and_bad_names():
    assert FeatureMap(["X", "sin(x)", "x*y", "y**2"]).names == ("x", "sin x", "xy", "y^2")
    assert FeatureMap("x, y").names == ("x", "y")
    with pytest.raises(ValueError, match=r"names\[1\] = 'cos x' is not a feature; allowed: x, y, x\^2"):
        FeatureMap(["x", "cos x"])
    with pytest.raises(ValueError, match="twice"):
        FeatureMap(["x", "X"])
    with pytest.raises(ValueError, match="at least one"):
        FeatureMap([])
    with pytest.raises(TypeError, match="names must be a sequence"):
        FeatureMap(3)
    with pytest.raises(ValueError, match=r"features need 2-D points.*\(3,\)"):
        MLP((3,), (4,), 2, features=("x",))
    with pytest.raises(ValueError, match=r"features\[0\] = 'z'"):
        MLP((2,), (4,), 2, features=("z",))


def test_identity_features_equal_the_plain_mlp_including_margins():
    plain = MLP((2,), (8, 8), 3, seed=3)
    feat = MLP((2,), (8, 8), 3, seed=3, features=("x", "y"))
    X = _points()
    torch.testing.assert_close(feat(X), plain(X), rtol=0, atol=0)
    for k in range(plain.n_layers):
        torch.testing.assert_close(feat.activations(X, k), plain.activations(X, k), rtol=0, atol=0)
        torch.testing.assert_close(feat.tail(k)(feat.activations(X, k)), feat(X))
    a = compute_margins(plain, X[:12])
    b = compute_margins(feat, X[:12])
    np.testing.assert_array_equal(a.margin, b.margin)
    assert feat.representation_shape(0) == (2,) and feat.resolve_layer("hidden1") == 1


def test_feature_order_is_a_permutation_of_first_layer_columns():
    plain = MLP((2,), (6,), 2, seed=0)
    swapped = MLP((2,), (6,), 2, seed=0, features=("y", "x"))
    with torch.no_grad():
        swapped.blocks[0][2].weight.copy_(plain.blocks[0][1].weight[:, [1, 0]])
    X = _points()
    torch.testing.assert_close(swapped(X), plain(X))


def _circle_model(r):
    # logits (0, x^2 + y^2 - r^2): the boundary is the circle of radius r, so margin(p) = | ||p|| - r |
    model = LinearModel((2,), 2, features=("x^2", "y^2")).double()
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        model.linear.bias.copy_(torch.tensor([0.0, -r * r]))
    rng = np.random.default_rng(0)
    radius = rng.uniform(0.3, 2.5, 30)
    angle = rng.uniform(0, 2 * np.pi, 30)
    return model, np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1), np.abs(radius - r)


def test_circle_from_squares_has_the_closed_form_margin():
    r = 1.3
    model, X, exact = _circle_model(r)
    res = compute_margins(model, X, method="nlopt", n_jobs=1)  # seed 000's reference solver
    assert res.converged.all()
    np.testing.assert_allclose(res.margin, exact, rtol=1e-6)
    # the boundary points lie on the circle, in the input plane
    np.testing.assert_allclose(np.linalg.norm(res.point, axis=1), r, rtol=1e-6)
    # the default solver's verified points are on the circle too, so its margins are upper bounds
    fast = compute_margins(model, X)
    np.testing.assert_allclose(np.linalg.norm(fast.point, axis=1), r, rtol=1e-6)
    assert (fast.margin >= exact * (1 - 1e-7)).all()


def test_batched_reaches_the_circle_margin():
    """A curved boundary: the walk's merit from a Newton estimate far from the boundary is optimistic and
    once stopped the walk 3.7e-4 above the exact margin while reporting converged (sample 27)."""
    model, X, exact = _circle_model(1.3)
    np.testing.assert_allclose(compute_margins(model, X).margin, exact, rtol=1e-5)


def test_sine_feature_margin_is_the_distance_to_the_nearest_solution():
    # logits (0, sin x - c): boundary lines x = asin(c) + 2 pi k and pi - asin(c) + 2 pi k
    c = 0.4
    model = LinearModel((2,), 2, features=("sin x",)).double()
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[0.0], [1.0]]))
        model.linear.bias.copy_(torch.tensor([0.0, -c]))
    rng = np.random.default_rng(1)
    X = np.stack([rng.uniform(-4, 4, 25), rng.uniform(-1, 1, 25)], 1)
    ks = np.arange(-3, 4) * 2 * np.pi
    lines = np.concatenate([np.arcsin(c) + ks, np.pi - np.arcsin(c) + ks])
    expect = np.abs(X[:, :1] - lines[None]).min(1)
    res = compute_margins(model, X, method="nlopt", n_jobs=1)
    assert res.converged.all()
    np.testing.assert_allclose(res.margin, expect, rtol=1e-6)


def test_hidden_layer_margins_work_with_features():
    model = MLP((2,), (5, 4), 2, seed=0, features=("x", "y", "xy", "x^2"))
    X = _points(10)
    res = compute_margins(model, X, layer=1)
    assert res.layer == 1 and res.point.shape == (10, 5)


def test_dropout_is_off_in_eval_and_in_margins():
    a = MLP((2,), (16, 16), 2, seed=0, dropout=0.5)
    b = MLP((2,), (16, 16), 2, seed=0)
    X = _points(64)
    a.train()
    assert not torch.equal(a(X), a(X))  # training mode: random masks
    a.eval()
    torch.testing.assert_close(a(X), b(X), rtol=0, atol=0)
    a.train()
    ra = compute_margins(a, X[:10])
    rb = compute_margins(b, X[:10])
    np.testing.assert_array_equal(ra.margin, rb.margin)
    assert a.training  # the caller's mode is restored
    assert sum(isinstance(m, torch.nn.Dropout) for m in a.modules()) == 2


def test_dropout_validation_and_set_dropout():
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1"):
        MLP((2,), (4,), 2, dropout=1.0)
    with pytest.raises(TypeError, match="dropout must be a real number"):
        MLP((2,), (4,), 2, dropout="0.2")
    with pytest.raises(ValueError, match="dropout acts on hidden units"):
        MLP((2,), (), 2, dropout=0.1)
    m = MLP((2,), (4, 4), 2, seed=0)
    assert not any(isinstance(x, torch.nn.Dropout) for x in m.modules()) and "dropout" not in m.config
    keys = set(m.state_dict())
    m.set_dropout(0.25)
    assert [x.p for x in m.modules() if isinstance(x, torch.nn.Dropout)] == [0.25, 0.25]
    assert m.dropout == 0.25 and m.config["dropout"] == 0.25 and set(m.state_dict()) == keys
    m.set_dropout(0.0)
    assert m.dropout == 0.0 and "dropout" not in m.config
    with pytest.raises(ValueError, match="dropout"):
        m.set_dropout(-0.1)


def test_save_load_keeps_features_and_dropout(tmp_path):
    m = MLP((2,), (6,), 3, seed=1, features=("x", "y", "sin y"), dropout=0.2)
    path = save_model(tmp_path / "m.pt", m)
    back = load_model(path)
    assert back.features == ("x", "y", "sin y") and back.dropout == 0.2 and back.config == m.config
    X = _points()
    m.eval()
    torch.testing.assert_close(back(X), m(X))
    lin = LinearModel((2,), 2, features=("x^2",))
    assert build_model(lin.config).features == ("x^2",) and type(build_model(lin.config)) is LinearModel
    plain = MLP((2,), (6,), 3)
    assert set(plain.config) == {"family", "input_shape", "hidden", "n_classes", "activation", "bias", "seed"}


def test_crown_needs_the_plain_input_but_works_past_the_map():
    model = MLP((2,), (6,), 2, seed=0, features=("x", "y", "xy"))
    X = _points(5)
    with pytest.raises(ValueError, match="FeatureMap is not supported"):
        compute_margins(model, X, method="crown")
    res = compute_margins(model, X, method="crown", layer=1)
    assert res.layer == 1 and len(res) == 5
