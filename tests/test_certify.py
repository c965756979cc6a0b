"""Sound linear bounds and certified lower bounds on margins (linear_bounds, relax, certify, crown)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from marginlab.margins import compute_margins
from marginlab.margins._chain import to_chain
from marginlab.margins.certify import certified_radius
from marginlab.margins.linear_bounds import concretize, neuron_bounds, pair_lower_bounds, supports
from marginlab.margins.relax import Act, relax
from marginlab.models.cnn import CNN
from marginlab.models.mlp import MLP, LinearModel

ACTS = ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "softplus", "elu"]
RELAX = [Act("relu"), Act("leaky_relu", 0.1), Act("leaky_relu", -0.3), Act("leaky_relu", 2.0),
         Act("elu", 1.0), Act("elu", 2.5), Act("tanh"), Act("sigmoid"), Act("gelu"),
         Act("softplus", 1.0, 20.0), Act("softplus", 3.0, 2.0)]


def _ball_samples(x, r, p, n, gen):
    """Points of the l_p ball of radius r around x (rows), interior and surface."""
    P, D = x.shape
    if math.isinf(p):
        u = torch.rand((P, n, D), generator=gen, dtype=torch.float64) * 2 - 1
        u[:, : n // 2] = torch.sign(u[:, : n // 2])          # corners
    elif p == 1:
        u = torch.distributions.Laplace(0.0, 1.0).sample((P, n, D)).double()
        u = u / u.abs().sum(2, keepdim=True)
        u[:, : n // 4] = 0
        idx = torch.randint(0, D, (P, n // 4), generator=gen)
        sign = torch.sign(torch.randn((P, n // 4, 1), generator=gen)).double()
        u[:, : n // 4].scatter_(2, idx[..., None], sign)                 # vertices
    else:
        u = torch.randn((P, n, D), generator=gen, dtype=torch.float64)
        u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
        u[:, n // 2:] *= torch.rand((P, n - n // 2, 1), generator=gen, dtype=torch.float64)
    return x[:, None, :] + r[:, None, None] * u


@pytest.mark.parametrize("act", RELAX, ids=lambda a: f"{a.kind}{a.param:g}")
def test_relaxations_are_sound_on_dense_grids(act):
    gen = torch.Generator().manual_seed(1)
    N = 1500
    scale = torch.tensor([0.1, 1.0, 5.0, 30.0], dtype=torch.float64)[torch.arange(N) % 4]
    c = torch.randn(N, generator=gen, dtype=torch.float64) * scale
    w = torch.rand(N, generator=gen, dtype=torch.float64) ** 3 * torch.tensor(
        [1e-9, 0.1, 1.0, 10.0, 50.0], dtype=torch.float64)[torch.arange(N) % 5]
    l, u = c - w, c + w
    al, cl, au, cu = relax(act, l, u)
    z = l[:, None] + (u - l)[:, None] * torch.linspace(0, 1, 1001, dtype=torch.float64)[None]
    s = act.forward(z)                                   # what torch computes (softplus threshold included)
    assert bool((al[:, None] * z + cl[:, None] <= s).all())
    assert bool((s <= au[:, None] * z + cu[:, None]).all())
    # not vacuous: on narrow intervals the two lines nearly touch the function
    narrow = w < 1e-6
    gap = (au - al)[:, None] * z + (cu - cl)[:, None]
    assert float(gap[narrow].max()) < 1e-4 + act.lower_slack   # (softplus: torch's threshold jump)


def test_linear_model_bounds_are_exact_for_every_norm():
    m = LinearModel((5,), 4, seed=1).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    I = torch.arange(12) % 4
    J = (I + 1 + torch.arange(12) % 3) % 4
    r = torch.rand(12, generator=gen, dtype=torch.float64)
    W, b = m.linear.weight.detach(), m.linear.bias.detach()
    w = W[I] - W[J]
    g = (x * w).sum(1) + b[I] - b[J]
    for p, q in [(2.0, 2.0), (math.inf, 1.0), (1.0, math.inf)]:
        lb = pair_lower_bounds(m, (5,), x, I, J, r, p=p)
        np.testing.assert_allclose(lb, g - r * torch.linalg.vector_norm(w, ord=q, dim=1), rtol=0, atol=1e-12)
    # with a box and p = inf the set is a box: exact as well
    lo, hi = x.min() - 0.1, x.max() + 0.1
    lb = pair_lower_bounds(m, (5,), x, I, J, r, p=math.inf, box=(lo, hi))
    zlo, zhi = torch.clamp(x - r[:, None], min=float(lo)), torch.clamp(x + r[:, None], max=float(hi))
    exact = (w.clamp(min=0) * zlo + w.clamp(max=0) * zhi).sum(1) + b[I] - b[J]
    np.testing.assert_allclose(lb, exact, atol=1e-12)


@pytest.mark.parametrize("p", [2.0, math.inf, 1.0])
@pytest.mark.parametrize("act", ACTS)
def test_pair_bounds_below_sampled_minimum(act, p):
    m = MLP((6,), (12, 10), 4, activation=act, seed=2).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        I = m(x).argmax(1)
    J = (I + 1) % 4
    r = torch.rand(20, generator=gen, dtype=torch.float64) * 0.6
    lb = pair_lower_bounds(m, (6,), x, I, J, r, p=p)
    z = _ball_samples(x, r, p, 1500, gen)
    with torch.no_grad():
        lg = m(z.reshape(-1, 6)).reshape(20, 1500, 4)
    ar = torch.arange(20)
    g = (lg[ar, :, I] - lg[ar, :, J]).amin(1)
    assert bool((lb <= g + 1e-12).all())
    assert float((g - lb).median()) < 0.5 * float(g.abs().median() + 1)  # informative, not -inf


def test_box_bounds_are_sound_and_at_least_as_tight():
    m = MLP((4,), (16,), 3, activation="tanh", seed=4).double()
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(10, 4, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        I = m(x).argmax(1)
    J = (I + 2) % 3
    r = torch.full((10,), 0.8, dtype=torch.float64)
    for p in (2.0, 1.0, math.inf):
        free = pair_lower_bounds(m, (4,), x, I, J, r, p=p)
        boxed = pair_lower_bounds(m, (4,), x, I, J, r, p=p, box=(0.0, 1.0))
        assert float((boxed - free).mean()) > 0                # the box removes points: tighter on average
        # for a given linear function the box bound is never worse (the plain ball bound is kept)
        A = torch.randn((10, 3, 4), generator=gen, dtype=torch.float64)
        c = torch.zeros((10, 3), dtype=torch.float64)
        lo, hi = torch.zeros_like(x), torch.ones_like(x)
        assert bool((concretize(A, c, x, r, p, (lo, hi)) >= concretize(A, c, x, r, p) - 1e-12).all())
        z = _ball_samples(x, r, p, 3000, gen).clamp(0, 1)   # clamping keeps a point of the ball in it
        with torch.no_grad():
            lg = m(z.reshape(-1, 4)).reshape(10, 3000, 3)
        ar = torch.arange(10)
        assert bool((boxed <= (lg[ar, :, I] - lg[ar, :, J]).amin(1) + 1e-12).all())


def test_neuron_bounds_contain_preactivations():
    m = MLP((5,), (8, 7, 6), 3, activation="gelu", seed=6).double()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    r = torch.full((6,), 0.5, dtype=torch.float64)
    bounds = neuron_bounds(m, (5,), x, r, p=2.0)
    assert [b[0].shape for b in bounds] == [(6, 8), (6, 7), (6, 6)]
    z = _ball_samples(x, r, 2.0, 2000, gen).reshape(-1, 5)
    chain = to_chain(m, (5,))
    for k, (l, u) in enumerate(bounds):
        y = chain.forward(z, upto=k).reshape(6, 2000, -1)
        assert bool((y >= l[:, None] - 1e-12).all()) and bool((y <= u[:, None] + 1e-12).all())


def test_conv_avgpool_networks_are_bounded_and_maxpool_refused():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 2, 3),
                        nn.Tanh(), nn.Flatten(), nn.Linear(2, 3)).double()
    assert supports(net)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 36, generator=gen, dtype=torch.float64)
    chain = to_chain(net, (1, 6, 6))
    with torch.no_grad():
        np.testing.assert_allclose(chain.forward(x), net(x.reshape(-1, 1, 6, 6)), atol=1e-12)
        I = net(x.reshape(-1, 1, 6, 6)).argmax(1)
    J = (I + 1) % 3
    r = torch.full((5,), 0.3, dtype=torch.float64)
    lb = pair_lower_bounds(net, (1, 6, 6), x, I, J, r)
    z = _ball_samples(x, r, 2.0, 1000, gen)
    with torch.no_grad():
        lg = net(z.reshape(-1, 1, 6, 6)).reshape(5, 1000, 3)
    assert bool((lb <= (lg[torch.arange(5), :, I] - lg[torch.arange(5), :, J]).amin(1)).all())
    assert not supports(CNN(2, input_shape=(1, 8, 8)))        # max pooling
    with pytest.raises(ValueError, match="MaxPool2d"):
        compute_margins(CNN(2, input_shape=(1, 8, 8)), torch.rand(2, 1, 8, 8), certify=True)


def _best_known(m, X):
    return compute_margins(m, X, restarts=8, max_iter=150)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(act=st.sampled_from(ACTS), depth=st.integers(1, 3), width=st.integers(4, 24), dim=st.integers(2, 8),
       seed=st.integers(0, 10_000))
def test_certified_radius_never_exceeds_a_boundary_point(act, depth, width, dim, seed):
    """Searched far beyond the margin (up to 3x the best known boundary distance), the certified radius
    still stops below every verified boundary point."""
    m = MLP((dim,), (width,) * depth, 3, activation=act, seed=seed)
    X = torch.randn(6, dim, generator=torch.Generator().manual_seed(seed))
    best = _best_known(m, X)
    ok = best.converged
    if not ok.any():
        return
    chain = to_chain(m, (dim,))
    x = X[ok].double()
    I = torch.as_tensor(best.pred[ok])
    mask = torch.ones((int(ok.sum()), 3), dtype=torch.bool)
    mask[torch.arange(int(ok.sum())), I] = False
    lo = certified_radius(chain, x, I, mask, torch.as_tensor(3 * best.margin[ok]), rtol=1e-6)
    assert np.all(lo.numpy() <= best.margin[ok] * (1 + 1e-6))
    # and each verified boundary point lies outside the certified ball of its pair
    pts = torch.as_tensor(best.point[ok]).reshape(len(x), -1)
    d = torch.linalg.vector_norm(pts - x, dim=1)
    lb = pair_lower_bounds(m, (dim,), x, I, torch.as_tensor(best.boundary_class[ok]), d)
    with torch.no_grad():
        lg = m(pts.float()).double()
    g = lg[torch.arange(len(x)), I] - lg[torch.arange(len(x)), torch.as_tensor(best.boundary_class[ok])]
    assert bool((lb <= g + 1e-5).all())


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_certify_flag_for_every_method(act):
    m = MLP((5,), (16,), 3, activation=act, seed=8)
    X = torch.randn(12, 5, generator=torch.Generator().manual_seed(9))
    for method, kw in [("batched", {}), ("deepfool", {}), ("linearized", {})]:
        r = compute_margins(m, X, method=method, certify=True, **kw)
        assert np.all(np.isfinite(r.lower)) and np.all(r.lower > 0)
        v = r.verified
        assert np.all(r.lower[v] <= r.margin[v])
        assert np.all(r.lower[r.certified] >= r.margin[r.certified] * (1 - 1e-4))
        assert not r.certified[~v].any()
        if method == "batched":
            assert np.median(r.lower / r.margin) > 0.5       # a one-hidden-layer net: informative
    r0 = compute_margins(m, X)
    assert np.isnan(r0.lower).all() and not r0.certified.any()


def test_linear_models_certify_exactly_in_every_norm():
    m = LinearModel((4,), 5, seed=3)
    X = torch.randn(25, 4, generator=torch.Generator().manual_seed(4))
    for p, method in [(2, "batched"), (math.inf, "deepfool"), (1, "deepfool")]:
        r = compute_margins(m, X, method=method, p=p, certify=True)
        np.testing.assert_allclose(r.lower, r.margin, rtol=2e-5)
        assert r.certified.all()


def test_certificate_is_invariant_to_logit_offset_and_scale():
    m = MLP((3,), (10,), 4, activation="sigmoid", seed=5).double()
    X = torch.randn(8, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    shifted = nn.Sequential(m, nn.Linear(4, 4).double())
    with torch.no_grad():
        shifted[1].weight.copy_(1e3 * torch.eye(4))
        shifted[1].bias.fill_(1e4)
    a = compute_margins(m, X, method="crown")
    b = compute_margins(shifted, X, method="crown")
    np.testing.assert_allclose(a.lower, b.lower, rtol=1e-4)


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_crown_method_covers_all_activations(act):
    m = MLP((4,), (12,), 3, activation=act, seed=10)
    X = torch.randn(10, 4, generator=torch.Generator().manual_seed(11))
    r = compute_margins(m, X, method="crown")
    assert r.estimate and np.all(r.lower == r.margin)
    best = _best_known(m, X)
    assert np.all(r.lower <= best.margin * (1 + 1e-6))
    assert np.all(r.lower > 0.2 * best.margin)


def test_bad_input_is_refused():
    m = MLP((3,), (5,), 3, seed=0)
    X = torch.randn(4, 3)
    with pytest.raises(TypeError, match="certify"):
        compute_margins(m, X, certify="yes")
    with pytest.raises(ValueError, match="radius"):
        pair_lower_bounds(m, (3,), X, [0] * 4, [1] * 4, [-1.0, 1, 1, 1])
    with pytest.raises(ValueError, match="I and J"):
        pair_lower_bounds(m, (3,), X, [0] * 4, [5] * 4, [1.0] * 4)
    odd = nn.Sequential(nn.Linear(3, 4), nn.Hardswish(), nn.Linear(4, 2))
    assert not supports(odd)
    with pytest.raises(ValueError, match="Hardswish"):
        compute_margins(odd, X, certify=True)
