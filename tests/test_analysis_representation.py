"""Hidden-layer views: exact in 2-D layers, a fixed PCA projection in wider ones, per-unit heatmaps."""

import json

import numpy as np
import pytest
import torch

from marginlab.analysis.representation import LayerView, layer_values, unit_heatmaps
from marginlab.data import make_toy
from marginlab.device import torch_threads
from marginlab.margins import compute_margins
from marginlab.models import MLP
from marginlab.train import Trainer
from marginlab.viz.common import make_grid


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def moons():
    return make_toy("moons", 120, noise=0.1, seed=0)


def _trained(hidden, data, steps=150, **kw):
    model = MLP((2,), hidden, 2, seed=0, **kw)
    with torch_threads(1):
        Trainer(model, data, lr=0.1, batch_size=32, device="cpu").step(steps)
    return model.eval()


def test_input_layer_is_the_plane_and_its_surface_is_the_model(moons):
    model = _trained((8,), moons, 10)
    view = LayerView(model, 0).fit(moons.X)
    assert view.kind_ == "identity" and view.exact_ and "2-D" in view.note_
    np.testing.assert_array_equal(view.transform(moons.X), moons.X.astype(np.float64))
    grid = make_grid(moons.X, resolution=7)
    with torch.no_grad():
        expect = model(torch.as_tensor(grid.points)).double().numpy()
    np.testing.assert_allclose(view.surface_logits(grid.points), expect, rtol=1e-6)


def test_a_2d_hidden_layer_is_drawn_exactly_with_its_margins(moons):
    model = _trained((8, 2), moons)
    view = LayerView(model, "hidden2").fit(moons.X)
    assert view.layer_ == 2 and view.kind_ == "identity"
    X = moons.X[:25]
    with torch.no_grad():
        acts = model.activations(torch.as_tensor(X), 2).double().numpy()
    np.testing.assert_allclose(view.transform(X), acts)
    res = compute_margins(model, X, layer=2)
    start, end = view.segments(X, res)
    ok = res.verified
    assert ok.sum() >= 20
    # drawn distance == margin, and the drawn end point sits on the drawn boundary (top two logits tie)
    np.testing.assert_allclose(np.linalg.norm(end - start, axis=1)[ok], res.margin[ok], rtol=1e-9)
    L = view.surface_logits(end[ok])
    top = np.sort(L, axis=1)
    assert np.all(np.abs(top[:, -1] - top[:, -2]) <= 1e-4 * np.maximum(1, np.abs(top[:, -1])))


def test_a_wide_layer_gets_a_fixed_pca_projection(moons):
    from sklearn.decomposition import PCA

    model = MLP((2,), (16,), 2, seed=0)
    view = LayerView(model, 1).fit(moons.X)
    Z = layer_values(model, moons.X, 1)
    np.testing.assert_allclose(np.abs(view.transform(moons.X)),
                               np.abs(PCA(2, svd_solver="full").fit_transform(Z)), rtol=1e-6, atol=1e-9)
    assert view.kind_ == "pca" and not view.exact_ and "slice" in view.note_
    before = (view.mean_.copy(), view.components_.copy(), view.transform(moons.X))
    np.testing.assert_array_equal(view.transform(moons.X), before[2])  # same call, same picture
    Trainer(model, moons, lr=0.1, batch_size=32, device="cpu").step(30)
    model.eval()
    # the projection did not move with training; the points did, through the same map
    np.testing.assert_array_equal(view.mean_, before[0])
    np.testing.assert_array_equal(view.components_, before[1])
    Z1 = layer_values(model, moons.X, 1)
    np.testing.assert_allclose(view.transform(moons.X), (Z1 - before[0]) @ before[1].T, rtol=1e-12)
    assert not np.allclose(view.transform(moons.X), before[2])
    # the surface is the tail on the plane through the mean; projected segments are never longer than margins
    U = np.random.default_rng(0).normal(size=(9, 2))
    with torch.no_grad():
        plane = torch.as_tensor(view.mean_ + U @ view.components_, dtype=torch.float32)
        np.testing.assert_allclose(view.surface_logits(U), model.tail(1)(plane).double().numpy(), rtol=1e-6)
    res = compute_margins(model, moons.X[:15], layer=1)
    start, end = view.segments(moons.X[:15], res)
    ok = res.verified
    assert (np.linalg.norm(end - start, axis=1)[ok] <= res.margin[ok] * (1 + 1e-9)).all()


def test_a_one_unit_layer_is_padded():
    model = MLP((2,), (1,), 2, seed=0)
    X = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    view = LayerView(model, 1).fit(X)
    U = view.transform(X)
    assert view.kind_ == "pad" and view.exact_
    np.testing.assert_allclose(U[:, 0], layer_values(model, X, 1)[:, 0])
    assert (U[:, 1] == 0).all()
    a = view.surface_logits(np.array([[0.3, -5.0], [0.3, 7.0]]))
    np.testing.assert_array_equal(a[0], a[1])  # only the unit's value matters


def test_state_roundtrip_is_plain_json(moons):
    model = MLP((2,), (6, 5), 3, seed=1)
    view = LayerView(model, 2).fit(moons.X)
    state = json.loads(json.dumps(view.to_state()))
    back = LayerView.from_state(model, state)
    np.testing.assert_allclose(back.transform(moons.X), view.transform(moons.X), rtol=1e-12)
    assert back.note_ == view.note_
    with pytest.raises(ValueError, match="does not describe layer 1"):
        LayerView.from_state(model, {**state, "layer": 1})


def test_unit_heatmaps_are_unit_values_on_the_grid():
    model = MLP((2,), (5, 3), 2, seed=0, features=("x", "y", "xy"))
    grid = make_grid(np.array([[-1.0, -2.0], [2.0, 1.0]]), resolution=6)
    H = unit_heatmaps(model, 1, grid)
    assert H.shape == (5, 6, 6) and H.dtype == np.float32
    i, j = 4, 1
    with torch.no_grad():
        a = model.activations(torch.tensor([[grid.xs[j], grid.ys[i]]]), 1)[0].numpy()
    np.testing.assert_allclose(H[:, i, j], a, rtol=1e-6)
    xy = unit_heatmaps(model, 0, grid)
    np.testing.assert_array_equal(xy[0], np.broadcast_to(grid.xs, (6, 6)))
    np.testing.assert_array_equal(xy[1], np.broadcast_to(grid.ys[:, None], (6, 6)))
    F = unit_heatmaps(model, "features", grid)
    np.testing.assert_allclose(F[2], xy[0] * xy[1], rtol=1e-6)
    assert unit_heatmaps(model, "output", grid).shape == (2, 6, 6)
    np.testing.assert_array_equal(unit_heatmaps(model, "hidden2", grid, units=[2, 0]),
                                  unit_heatmaps(model, 2, grid)[[2, 0]])


def test_dropout_is_off_in_every_view():
    model = MLP((2,), (32, 2), 2, seed=0, dropout=0.5).train()
    twin = MLP((2,), (32, 2), 2, seed=0).eval()
    grid = make_grid(np.array([[-1.0, -1.0], [1.0, 1.0]]), resolution=5)
    np.testing.assert_array_equal(unit_heatmaps(model, 1, grid), unit_heatmaps(twin, 1, grid))
    view = LayerView(model, 2).fit(grid.points)
    np.testing.assert_array_equal(view.transform(grid.points), LayerView(twin, 2).fit(grid.points).transform(
        grid.points))
    assert model.training


def test_bad_input_is_named():
    model = MLP((2,), (4,), 2, seed=0)
    grid = make_grid(np.zeros((1, 2)), resolution=4)
    with pytest.raises(ValueError, match="layer must be in"):
        LayerView(model, 5)
    with pytest.raises(TypeError, match="model must be a marginlab MarginNet"):
        LayerView(torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="call fit"):
        LayerView(model, 1).transform(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\)"):
        LayerView(model, 1).fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        LayerView(model, 1).fit(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="grid must have .points"):
        unit_heatmaps(model, 1, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"units must be a list of unit indices in \[0, 3\]"):
        unit_heatmaps(model, 1, grid, units=[4])
    with pytest.raises(ValueError, match="layer='features' needs a model built with input features"):
        unit_heatmaps(model, "features", grid)
    view = LayerView(model, 1).fit(np.random.default_rng(0).normal(size=(5, 2)))
    res = compute_margins(model, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="layer=1"):
        view.segments(np.zeros((2, 2)), res)
