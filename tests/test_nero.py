"""Nero, norm projections and Recipe 1 (seed 001 §3.2)."""

import math

import numpy as np
import pytest
import torch

from marginlab.data import Dataset
from marginlab.models import CNN, MLP
from marginlab.train import fit
from marginlab.train.optim import OPTIMIZERS, FrobeniusProjection, Nero, SpectralProjection, make_optimizer
from marginlab.train.recipe import _frobenius_margins, recipe1


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared 2-core machine: threads only add contention
    yield
    torch.set_num_threads(n)


def rows(p):
    return p.detach().reshape(p.shape[0], -1)


@pytest.mark.parametrize("make", [lambda: MLP(6, (16, 8), 3, seed=0),
                                  lambda: CNN(2, input_shape=(1, 8, 8), n_classes=3, fc=12, seed=0)])
def test_nero_keeps_constraints_after_many_steps(make):
    model = make()
    opt = make_optimizer("nero", model.parameters(), lr=0.05, beta=0.9)
    biases0 = [m.bias.detach().clone() for m in model.weight_layers()]
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        x = torch.randn((8,) + model.input_shape, generator=g)
        y = torch.randint(0, 3, (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y) + model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m, b0 in zip(model.weight_layers(), biases0):
        W = rows(m.weight).double()
        assert torch.allclose(W.mean(1), torch.zeros(W.shape[0], dtype=W.dtype), atol=1e-6)
        assert torch.allclose(W.norm(dim=1), torch.ones(W.shape[0], dtype=W.dtype), atol=1e-5)
        assert W.norm().item() == pytest.approx(math.sqrt(W.shape[0]), rel=1e-5)  # Recipe 1 step 3
        assert not torch.allclose(m.bias.detach(), b0)  # biases train, unconstrained


def test_nero_step_is_per_neuron_normalised_and_scale_free():
    torch.manual_seed(0)
    base = MLP(5, (4,), 3, activation="tanh", seed=1)  # no dead units: every neuron gets a gradient
    x, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    deltas = []
    for scale in (1.0, 1000.0):
        m = MLP(5, (4,), 3, activation="tanh", seed=1)
        m.load_state_dict(base.state_dict())
        opt = Nero(m.parameters(), lr=0.1, beta=0.99, constraints=False)
        W0 = [rows(p).clone() for p in m.parameters()]
        loss = scale * torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        deltas.append([rows(p) - w0 for p, w0 in zip(m.parameters(), W0)])
        for p, w0, d in zip(m.parameters(), W0, deltas[-1]):
            if p.dim() >= 2:
                # first step: v_hat = ||g||^2, so each neuron moves by lr * ||w|| exactly (a relative step)
                assert torch.allclose(d.norm(dim=1), 0.1 * w0.norm(dim=1), rtol=1e-4)
            else:
                # biases: no constraint; each entry moves by lr * max(rms, floor)
                rms = max(w0.pow(2).mean().sqrt().item(), 0.01)
                assert torch.allclose(d.abs().flatten(), torch.full((p.numel(),), 0.1 * rms), rtol=1e-4)
    for a, b in zip(*deltas):
        assert torch.allclose(a, b, atol=1e-6)  # invariant to the gradient's scale


def test_nero_projects_at_construction_and_by_name():
    m = MLP(4, (6,), 2, seed=0)
    assert "nero" in OPTIMIZERS
    make_optimizer("nero", m.parameters(), lr=0.01)
    for layer in m.weight_layers():
        assert torch.allclose(rows(layer.weight).norm(dim=1), torch.ones(layer.weight.shape[0]), atol=1e-6)
    m2 = MLP(4, (6,), 2, seed=0)
    make_optimizer("nero", m2.parameters(), lr=0.01, zero_mean=False)
    assert not torch.allclose(rows(m2.weight_layers()[0].weight).mean(1), torch.zeros(6), atol=1e-3)


@pytest.mark.parametrize("kwargs,match", [({"beta": 1.0}, "beta"), ({"beta": -0.1}, "beta"),
                                          ({"eps": 0.0}, "eps"), ({"bias_floor": -1.0}, "bias_floor")])
def test_nero_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Nero(MLP(2, (3,), 2).parameters(), lr=0.1, **kwargs)
    with pytest.raises(ValueError, match="lr"):
        Nero(MLP(2, (3,), 2).parameters(), lr=0.0)


def test_frobenius_and_spectral_projections():
    m = MLP(7, (9, 5), 3, seed=0)
    with torch.no_grad():
        for layer in m.weight_layers():
            layer.weight.mul_(3.7)
    FrobeniusProjection()(m)
    for layer in m.weight_layers():
        assert layer.weight.norm().item() == pytest.approx(math.sqrt(layer.weight.shape[0]), rel=1e-6)
    FrobeniusProjection(scale=2.0, layers=[0])(m)
    assert m.weight_layers()[0].weight.norm().item() == pytest.approx(2 * 3.0, rel=1e-6)

    SpectralProjection(0.5, mode="normalize")(m)
    for layer in m.weight_layers():
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(0.5, rel=1e-5)
    SpectralProjection(1.0)(m)  # clip: already below 1, unchanged
    for layer in m.weight_layers():
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(0.5, rel=1e-5)
    proj = SpectralProjection(0.25, mode="normalize", n_power_iterations=2)
    for _ in range(30):
        proj(m)  # power-iteration vectors persist between calls and converge
    for layer in m.weight_layers():
        assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(0.25, rel=1e-4)
    with pytest.raises(ValueError, match="max_norm"):
        SpectralProjection(0.0)
    with pytest.raises(ValueError, match="mode"):
        SpectralProjection(mode="cap")
    with pytest.raises(ValueError, match="layers"):
        FrobeniusProjection(layers=[5])(m)


def test_projection_as_fit_constraint():
    rng = np.random.default_rng(0)
    ds = Dataset(rng.normal(size=(32, 3)).astype(np.float32), rng.integers(0, 2, 32), 2)
    m = MLP(3, (8,), 2, seed=0)
    fit(m, ds, epochs=3, lr=0.5, constraints=[FrobeniusProjection()], progress=False, device="cpu")
    for layer in m.weight_layers():
        assert layer.weight.norm().item() == pytest.approx(math.sqrt(layer.weight.shape[0]), rel=1e-5)


# -- Recipe 1 ----------------------------------------------------------------------------------------------

@pytest.fixture
def small_problem():
    rng = np.random.default_rng(0)
    n, d, k = 30, 10, 3
    return Dataset(rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, n), k)


def test_recipe1_with_nero_reaches_target_margin(small_problem):
    m = MLP(10, (64,), 3, bias=False, seed=0)
    res = recipe1(m, small_problem, 0.5, epochs=500, optimizer="nero", lr=0.1, lr_decay=0.99,
                  lr_decay_every=1)
    # every training point's Frobenius-normalized margin within 1% of the target
    assert np.all(np.abs(res.margins - 0.5) < 0.005), res.margins
    X = torch.as_tensor(res.train.X)
    assert torch.allclose(X.norm(dim=1), torch.full((len(X),), math.sqrt(10.0)), rtol=1e-5)  # step 1


def test_recipe1_with_sgd_and_per_sample_targets(small_problem):
    alpha = np.where(np.arange(30) % 2 == 0, 1.0, 2.0)
    m = MLP(10, (64,), 3, bias=False, seed=0)
    res = recipe1(m, small_problem, alpha, epochs=300, optimizer="sgd", lr=0.05)
    assert np.allclose(res.margins, alpha, rtol=0.01), res.margins
    # the helper measures Def. 3.1: rescaling weights and inputs leaves it unchanged
    X, y = res.train.tensors()
    before = _frobenius_margins(m, X, y)
    with torch.no_grad():
        m.weight_layers()[0].weight.mul_(3.0)
    assert torch.allclose(_frobenius_margins(m, 2.0 * X, y), before, rtol=1e-5)


def test_recipe1_needs_bias_free_net(small_problem):
    with pytest.raises(ValueError, match="bias-free"):
        recipe1(MLP(10, (8,), 3, seed=0), small_problem, 1.0, epochs=1)
