"""Known-answer tests of the margin solvers (linear closed forms, grid brute force, verification)."""

import numpy as np
import pytest
import torch

from marginlab.margins import compute_margins, maximum_margin, normalized_margins
from marginlab.models.mlp import MLP, LinearModel


def _verify_points(model, r, X):
    """Re-check the verified points independently in float64: the point is classified ``boundary_class``,
    the point a relative ``tol`` closer to x is still classified ``pred``, and the margin is the distance."""
    import copy

    net = copy.deepcopy(model).double().eval()
    ok = r.verified & ~r.skipped
    assert ok.any()
    x = torch.as_tensor(np.asarray(X, np.float64)).reshape(len(r), -1)[ok]
    z = torch.as_tensor(r.point[ok]).reshape(ok.sum(), -1)
    with torch.no_grad():
        hi = net(z.reshape((-1,) + tuple(r.point.shape[1:]))).numpy()
        lo = net((x + (1 - r.tol) * (z - x)).reshape((-1,) + tuple(r.point.shape[1:]))).numpy()
    rows = np.arange(ok.sum())
    cls, pred = r.boundary_class[ok], r.pred[ok]
    assert (hi[rows, cls] == hi.max(1)).all() and (hi[rows, cls] >= hi[rows, pred]).all()  # j wins (or ties)
    assert (lo.argmax(1) == pred).all() and (lo[rows, pred] > np.sort(lo, 1)[:, -2]).all()  # i strictly
    np.testing.assert_allclose(np.linalg.norm((z - x).numpy(), axis=1), np.abs(r.margin[ok]), rtol=1e-12)


def test_binary_linear_closed_form_all_norms():
    m = LinearModel((6,), 2, seed=3)
    X = torch.randn(30, 6)
    W = m.linear.weight.detach().double().numpy()
    b = m.linear.bias.detach().double().numpy()
    lg = X.double().numpy() @ W.T + b
    i = lg.argmax(1)
    w = W[i] - W[1 - i]
    g = lg[np.arange(30), i] - lg[np.arange(30), 1 - i]
    for p, q in [(1, np.inf), (2, 2), (np.inf, 1)]:
        r = compute_margins(m, X, method="linearized", p=p)
        expect = g / np.linalg.norm(w, ord=q, axis=1)
        np.testing.assert_allclose(r.margin, expect, rtol=1e-5)
        assert r.converged.all()
        np.testing.assert_allclose(np.linalg.norm(r.point - X.double().numpy(), ord=p, axis=1), expect,
                                   rtol=1e-5)
    # exact solvers: distance and the exact boundary point (l2 projection onto the hyperplane)
    point = X.double().numpy() - (g / (w * w).sum(1))[:, None] * w
    for method in ("batched", "deepfool"):
        r = compute_margins(m, X, method=method)
        np.testing.assert_allclose(r.margin, g / np.linalg.norm(w, axis=1), rtol=1e-6)
        np.testing.assert_allclose(r.point, point, atol=1e-5)
        _verify_points(m, r, X)


def test_multiclass_linear_pairs_match_hyperplanes():
    m = LinearModel((4,), 4, seed=0)
    X = torch.randn(40, 4)
    r = compute_margins(m, X, method="batched")
    W = m.linear.weight.detach().double().numpy()
    b = m.linear.bias.detach().double().numpy()
    lg = X.double().numpy() @ W.T + b
    for n in range(40):
        i = lg[n].argmax()
        for j in range(4):
            if j == i:
                assert np.isnan(r.distances[n, j])
                continue
            w = W[i] - W[j]
            d = (lg[n, i] - lg[n, j]) / np.linalg.norm(w)
            z = X[n].double().numpy() - d * w / np.linalg.norm(w)
            lz = z @ W.T + b
            top = np.sort(lz)[-2:]
            if np.isfinite(r.distances[n, j]):
                assert r.distances[n, j] == pytest.approx(d, rel=1e-6)
            else:  # unverified only where a third class wins at the hyperplane projection
                assert lz.max() > max(lz[i], lz[j]) + 1e-9 or top[0] > min(lz[i], lz[j]) + 1e-9
    _verify_points(m, r, X)


@pytest.fixture(scope="module")
def toy_net():
    torch.manual_seed(0)
    from marginlab.data import load_toy
    from marginlab.train.fit import fit

    train, _ = load_toy("moons", n=400, seed=0) if "n" in load_toy.__code__.co_varnames else load_toy("moons")
    m = MLP((2,), (32, 32), train.n_classes, seed=0)
    fit(m, train, epochs=30, lr=1e-2, optimizer="adam", batch_size=64, progress=False)
    return m, train


def test_toy_net_vs_grid_bruteforce(toy_net):
    m, train = toy_net
    X = torch.as_tensor(train.X[:25])
    r = compute_margins(m, X, method="batched")
    assert r.converged.all()
    _verify_points(m, r, X)
    lo, hi = train.X.min(0) - 3, train.X.max(0) + 3
    h = 0.01
    gx, gy = np.meshgrid(np.arange(lo[0], hi[0], h), np.arange(lo[1], hi[1], h))
    G = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    with torch.no_grad():
        cls = m(torch.as_tensor(G)).argmax(1).numpy()
    for n in range(25):
        other = G[cls != r.pred[n]]
        d = np.sqrt(((other - train.X[n]) ** 2).sum(1)).min()
        # the nearest different-class grid cell lies within one cell diagonal beyond the boundary
        assert r.margin[n] <= d + 1e-9
        assert r.margin[n] >= d - h * np.sqrt(2)
    rd = compute_margins(m, X, method="deepfool")
    # both are verified to within tol of a crossing (relative), so they compare up to that tolerance
    assert np.all(rd.margin >= r.margin * (1 - 2 * r.tol))
    _verify_points(m, rd, X)


def test_certified_lower_bound_below_exact(toy_net):
    m, train = toy_net
    X = torch.as_tensor(train.X[:10])
    exact = compute_margins(m, X, method="batched").margin
    lb = compute_margins(m, X, method="crown", steps=15).margin
    assert np.all(lb <= exact + 1e-9)
    assert np.all(lb > 0.2 * exact)  # not vacuous
    lip = compute_margins(m, X, method="lipschitz", radius=2.0, n_samples=256)
    assert lip.estimate and np.all(np.isfinite(lip.margin))


def test_hidden_layer_margin_equals_tail_margin(toy_net):
    m, train = toy_net
    X = torch.as_tensor(train.X[:8])
    r = compute_margins(m, X, layer=1)
    with torch.no_grad():
        H = m.activations(X, 1)
    assert r.point.shape == (8,) + tuple(H.shape[1:])
    tail = m.tail(1)
    with torch.no_grad():
        lg = tail(torch.as_tensor(r.point[r.converged]).float()).numpy()
    rows = np.arange(r.converged.sum())
    assert np.all(np.abs(lg[rows, r.pred[r.converged]] - lg[rows, r.boundary_class[r.converged]]) < 1e-4)
    lin = compute_margins(m, X, method="linearized", layer="hidden1")
    assert np.isfinite(lin.margin).all()


def test_skip_and_signed():
    m = LinearModel((3,), 3, seed=1)
    X = torch.randn(20, 3)
    with torch.no_grad():
        pred = m(X).argmax(1).numpy()
    y = pred.copy()
    y[:5] = (y[:5] + 1) % 3
    r = compute_margins(m, X, y=y, skip_misclassified=True)
    assert r.skipped[:5].all() and not r.skipped[5:].any() and np.isnan(r.margin[:5]).all()
    s = compute_margins(m, X, y=y, signed=True)
    assert np.all(s.margin[:5] < 0) and np.all(s.margin[5:] > 0)
    assert len(r.to_frame()) == 20 and len(r.subset(np.arange(3))) == 3


def test_bad_inputs():
    m = LinearModel((3,), 2, seed=1)
    X = torch.randn(4, 3)
    with pytest.raises(ValueError, match="X must have shape"):
        compute_margins(m, torch.randn(4, 5))
    with pytest.raises(ValueError, match="NaN or inf"):
        compute_margins(m, torch.tensor([[np.nan, 0, 0]], dtype=torch.float32))
    with pytest.raises(ValueError, match="method must be one of"):
        compute_margins(m, X, method="magic")
    with pytest.raises(ValueError, match="p must be"):
        compute_margins(m, X, p=0.5)
    with pytest.raises(ValueError, match="tol"):
        compute_margins(m, X, tol=0)
    with pytest.raises(ValueError, match="tol"):
        compute_margins(m, X, tol=-1e-3)
    with pytest.raises(ValueError, match="tol"):
        compute_margins(m, X, tol=float("nan"))
    with pytest.raises(TypeError, match="tol"):
        compute_margins(m, X, tol="small")
    with pytest.raises(ValueError, match="max_iter"):
        compute_margins(m, X, method="batched", max_iter=0)
    with pytest.raises(ValueError, match="no parameters"):
        compute_margins(torch.nn.Flatten(), X)
    with pytest.raises(ValueError, match="p=1 is not supported"):
        compute_margins(m, X, method="batched", p=1)


def test_zero_gradient_flagged_not_looping():
    m = MLP((2,), (4,), 2, seed=0)
    with torch.no_grad():
        m.blocks[0][1].weight.zero_()  # all hidden ReLUs dead: logits constant, no gradient anywhere
        m.blocks[0][1].bias.fill_(-1.0)
    r = compute_margins(m, torch.randn(5, 2), method="batched", max_iter=50)
    assert not r.converged.any() and np.isnan(r.margin).all()
    assert r.info["zero_gradient"] > 0
    assert (r.iterations <= 50).all()


def test_dead_relu_region_flagged_or_exact():
    """One ReLU unit h = relu(x0); logits (2h - 0.5, 0.5 - 2h)... boundary x0 = 0.25 where h > 0, constant
    logits (zero gradient) for x0 < 0. Samples with a gradient get the exact distance; samples in the dead
    region are either flagged (zero gradient, not converged) or verified at the true distance: never a wrong
    margin, never an endless loop."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[2].bias.copy_(torch.tensor([-0.25, 0.25]))
    X = torch.tensor([[1.0, 0.3], [0.6, -2.0], [0.1, 0.5], [-0.5, 0.0], [-2.0, 1.0], [-0.1, -0.1]])
    r = compute_margins(net, X, method="batched", max_iter=20)
    true = np.abs(X[:, 0].numpy() - 0.25)
    live = X[:, 0].numpy() > 0
    assert r.converged[live].all()
    np.testing.assert_allclose(r.margin[live], true[live], rtol=1e-6)
    dead = ~live
    ok = r.converged[dead]
    np.testing.assert_allclose(r.margin[dead][ok], true[dead][ok], rtol=1e-6)
    assert np.isnan(r.margin[dead][~ok]).all()
    assert (r.iterations <= 20).all()
    if (~ok).any():
        assert r.info["zero_gradient"] > 0
    # the same net without the direction starts and without escalation: the dead samples cannot move and
    # are flagged; escalation restarts them away from x, where they find the boundary
    r1 = compute_margins(net, X, method="batched", n_directions=0, restarts=1, max_iter=20, escalations=0)
    assert not r1.converged[dead].any() and r1.info["zero_gradient"] == dead.sum()
    assert set(r1.status[dead]) <= {"no boundary point"}
    np.testing.assert_allclose(r1.margin[live], true[live], rtol=1e-6)
    r2 = compute_margins(net, X, method="batched", n_directions=0, restarts=1, max_iter=20)
    assert r2.converged.all()
    np.testing.assert_allclose(r2.margin, true, rtol=1e-6)


def test_batched_2d_multiclass_near_global():
    """An untrained 3-class 2-D net (boundaries with several local minima): compare with a brute-force polar
    ray grid. The direction starts make the global search likely, not certain: every sample must be within
    1% of the grid's first crossing and most within the grid resolution."""
    torch.manual_seed(3)
    net = MLP((2,), (64, 64), 3, seed=3)
    X = torch.randn(12, 2) * 0.5
    r = compute_margins(net, X, method="batched")
    assert r.converged.all()
    _verify_points(net, r, X)
    ang = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    U = np.stack([np.cos(ang), np.sin(ang)], 1)
    close = 0
    for n in range(12):
        rad = np.linspace(0, 1.2 * r.margin[n], 401)[1:]
        P = (X[n].numpy()[None, None] + rad[None, :, None] * U[:, None]).reshape(-1, 2).astype(np.float32)
        with torch.no_grad():
            cls = net(torch.as_tensor(P)).argmax(1).numpy().reshape(len(ang), len(rad))
        hit = cls != r.pred[n]
        first = np.where(hit.any(1), rad[hit.argmax(1)], np.inf)
        d = first.min()  # >= the true margin (crossed cells lie beyond the boundary)
        assert r.margin[n] <= 1.01 * d
        # the ray grid misses the nearest point by at most one radial step and the angular step
        assert r.margin[n] >= d - (rad[1] - rad[0]) - d * (ang[1] - ang[0])
        close += r.margin[n] <= d + 1e-9
    assert close >= 10


def test_normalized_margins_invariant_to_layer_rescaling():
    m = MLP((5,), (7, 6), 3, bias=False, seed=2).double()  # float64 so rescaling itself is exact enough
    ref = MLP((5,), (7, 6), 3, bias=False, seed=9)
    X = torch.randn(12, 5)
    y = np.arange(12) % 3
    before = normalized_margins(m, X, y)
    scales = [2.0, 0.3, 5.0]
    with torch.no_grad():
        for layer, c in zip(m.weight_layers(), scales):
            layer.weight.mul_(c)
    after = normalized_margins(m, X, y)
    assert not np.allclose(before["output"], after["output"])
    np.testing.assert_allclose(after["frobenius"], before["frobenius"], rtol=1e-9)
    np.testing.assert_allclose(after["spectral"], before["spectral"], rtol=1e-9)
    # with reference weights rescaled alike the spectral margin stays invariant too
    from marginlab.margins import spectrally_normalized_margin

    ref_ws = [w.weight.detach().double() for w in ref.weight_layers()]
    m2 = MLP((5,), (7, 6), 3, bias=False, seed=2).double()
    a = spectrally_normalized_margin(m2, X, y, reference=ref_ws)
    b = spectrally_normalized_margin(m, X, y, reference=[c * w for c, w in zip(scales, ref_ws)])
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_maximum_margin_bruteforce():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = rng.integers(0, 3, 50)
    d = maximum_margin(X, y, chunk_size=7)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(2))
    D[y[:, None] == y[None]] = np.inf
    np.testing.assert_allclose(d, D.min(1), rtol=1e-12)


def test_normalized_margins_refuse_biased_nets_unless_allowed():
    """Seed 001 Defs. 3.1/3.2 assume homogeneity: with biases, scaling a layer changes the margin."""
    from marginlab.margins import frobenius_normalized_margin, spectrally_normalized_margin

    m = MLP((5,), (7,), 3, bias=True, seed=0).double()
    X, y = torch.randn(12, 5), np.arange(12) % 3
    for f in (normalized_margins, frobenius_normalized_margin, spectrally_normalized_margin):
        with pytest.raises(ValueError, match="allow_bias"):
            f(m, X, y)
    before = frobenius_normalized_margin(m, X, y, allow_bias=True)
    with torch.no_grad():
        m.weight_layers()[0].weight.mul_(3.0)
    after = frobenius_normalized_margin(m, X, y, allow_bias=True)
    assert not np.allclose(before, after, rtol=1e-3)  # why the default refuses them
