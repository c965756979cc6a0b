"""NN-GP arccos kernel, margin-scaled posterior and ensembles (seed 001 §6)."""

import math
import warnings

import numpy as np
import pytest
import torch

from marginlab.gp import NNGP, NonPSDWarning, arccos_h, arccos_kernel


def sphere(rng, n, d):
    X = rng.normal(size=(n, d))
    return X * (math.sqrt(d) / np.linalg.norm(X, axis=1, keepdims=True))


def test_arccos_h_known_values_and_clamping():
    assert arccos_h(1.0) == pytest.approx(1.0)
    assert arccos_h(0.0) == pytest.approx(1 / math.pi)
    assert arccos_h(-1.0) == pytest.approx(0.0, abs=1e-15)
    out = arccos_h(np.array([1 + 1e-9, -1 - 1e-9]))  # round-off outside [-1, 1] is clamped, never NaN
    assert np.all(np.isfinite(out)) and out[0] == pytest.approx(1.0)
    t = np.linspace(-1, 1, 11)
    assert np.all(np.diff(arccos_h(t)) > 0) and np.all(arccos_h(t) >= t)


def test_kernel_depth_one_and_norm_scaling():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 4))
    assert np.allclose(arccos_kernel(X, depth=1, sigma=2.0), 4.0 * X @ X.T / 4)
    K = arccos_kernel(X, depth=3, sigma=1.5)
    assert np.allclose(K, K.T) and np.linalg.eigvalsh(K).min() > -1e-10
    # degree-1 homogeneity in each input; on the sphere the diagonal is sigma^{2L}
    assert np.allclose(arccos_kernel(2 * X, X, depth=3), 2 * arccos_kernel(X, depth=3))
    S = sphere(rng, 4, 6)
    assert np.allclose(np.diag(arccos_kernel(S, depth=4, sigma=1.2)), 1.2 ** 8)
    t = S[0] @ S[1] / 6
    assert arccos_kernel(S[:1], S[1:2], depth=3)[0, 0] == pytest.approx(arccos_h(arccos_h(t)))


def test_kernel_matches_wide_random_relu_networks():
    """Monte-Carlo check of Σ(x, x′) = σ^{2L} h^{L−1}(xᵀx′/d₀).

    Nets: first layer N(0, σ²/d₀), later layers N(0, 2σ²/d) (the gp module's scale convention), width 4096,
    L = 3; the output covariance given the last hidden layer is exactly 2σ²·hᵀh′/width, averaged over 6 nets.
    The finite-width error per entry is about √(2/width)·(L−1) ≈ 3% of σ^{2L} for a single net, ≈1.3% after
    averaging 6 (measured ≈1%); tolerance 5% of σ^{2L}. Getting L or σ wrong changes entries by ≥ 15%
    (e.g. the antipodal pair: h(h(−1)) = 1/π vs h(h(h(−1))) = 0.48)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    d0, L, sigma, width, R = 8, 3, 1.3, 4096, 6
    X = sphere(rng, 6, d0)
    X[1] = 0.9 * X[0] + 0.1 * X[1]
    X[1] *= math.sqrt(d0) / np.linalg.norm(X[1])
    X[2] = -X[0]
    K = arccos_kernel(X, depth=L, sigma=sigma)
    Xt = torch.tensor(X, dtype=torch.float32)
    est = np.zeros_like(K)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for _ in range(R):
            h, d = Xt, d0
            for layer in range(L - 1):
                c = 1.0 if layer == 0 else 2.0
                h = torch.relu(h @ (torch.randn(d, width) * math.sqrt(c * sigma ** 2 / d)))
                d = width
            est += (2 * sigma ** 2 * (h @ h.T) / width).double().numpy() / R
    assert np.abs(est - K).max() < 0.05 * sigma ** (2 * L)


def test_posterior_interpolates_training_points():
    rng = np.random.default_rng(1)
    X = sphere(rng, 12, 5)
    y = np.where(rng.random(12) < 0.5, -1, 1)
    gp = NNGP(depth=3, sigma=2.0).fit(X, y)
    C1, C2 = gp.posterior(X)
    assert np.allclose(C1[:, 0], y, atol=1e-6) and np.all(C2 < 1e-6) and np.all(C2 >= 0)
    Xt = sphere(rng, 4, 5)
    C1, C2 = gp.posterior(Xt)
    K = arccos_kernel(np.vstack([X, Xt]), depth=3)
    Kxx, Ktx, Ktt = K[:12, :12], K[12:, :12], K[12:, 12:]
    assert np.allclose(C1[:, 0], Ktx @ np.linalg.solve(Kxx, y), atol=1e-8)
    assert np.allclose(C2, np.diag(Ktt - Ktx @ np.linalg.solve(Kxx, Ktx.T)), atol=1e-8)
    _, full = gp.posterior(Xt, full_cov=True)
    assert np.allclose(np.diag(full), C2, atol=1e-10)


def test_ensemble_variance_shrinks_as_one_over_m():
    rng = np.random.default_rng(2)
    X = sphere(rng, 10, 4)
    y = np.where(X[:, 0] > 0, 1, -1)
    gp = NNGP(depth=2, sigma=1.5).fit(X, y)
    Xt = sphere(rng, 3, 4)
    C1, C2 = gp.posterior(Xt)
    n = 3000
    for m in (1, 4, 16):
        f = gp.sample(Xt, 0.7, m=m, n_draws=n, method="average", seed=m)[..., 0]
        # sample variance of n Gaussian draws: relative s.e. sqrt(2/n) = 2.6%; tolerance 4 s.e.
        assert np.allclose(f.var(0, ddof=1) * m / (1.5 ** 4 * C2), 1.0, atol=0.11)
        assert np.allclose(f.mean(0), 0.7 * C1[:, 0], atol=4 * np.sqrt(1.5 ** 4 * C2 / m / n))
        g = gp.sample(Xt, 0.7, m=m, n_draws=n, method="closed_form", seed=100 + m)[..., 0]
        assert np.allclose(g.var(0, ddof=1) * m / (1.5 ** 4 * C2), 1.0, atol=0.11)


def test_accuracy_depends_on_normalized_margin_and_ensemble_size():
    rng = np.random.default_rng(3)
    X = sphere(rng, 40, 6)
    w = rng.normal(size=6)
    y = np.where(X @ w > 0, 1, -1)
    Xt = sphere(rng, 200, 6)
    yt = np.where(Xt @ w > 0, 1, -1)
    a = NNGP(depth=2, sigma=1.0).fit(X, y)
    b = NNGP(depth=2, sigma=3.0).fit(X, y)
    grid = a.accuracy_grid(Xt, yt, [0.01, 0.1, 1.0, 10.0], [1, 4, 16])
    # only γ/σ^L matters
    assert np.allclose(grid, b.accuracy_grid(Xt, yt, [0.01, 0.1, 1.0, 10.0], [1, 4, 16]))
    # small normalized margins: noise dominates, and a larger γ/σ^L or a larger ensemble helps
    assert np.all(np.diff(grid[:3], axis=0) > 0) and np.all(np.diff(grid[:2], axis=1) > 0)
    assert grid[0, 0] < 0.55
    # large normalized margins: the posterior mean decides (the curve need not be monotone on the way there)
    C1, _ = a.posterior(Xt)
    assert grid[-1, -1] == pytest.approx(np.mean(np.sign(C1[:, 0]) == yt), abs=0.01)
    # averaging m draws = multiplying the normalized margin by √m (Eq. 3)
    assert a.expected_accuracy(Xt, yt, 0.1, m=16) == pytest.approx(a.expected_accuracy(Xt, yt, 0.4))
    mc = a.accuracy(Xt, yt, 0.3, m=4, n_trials=200, seed=0)
    assert mc == pytest.approx(a.expected_accuracy(Xt, yt, 0.3, m=4), abs=0.01)


def test_multiclass_gp():
    rng = np.random.default_rng(4)
    X = sphere(rng, 30, 5)
    y = np.argmax(X[:, :3], axis=1)
    gp = NNGP(depth=2).fit(X, y)
    assert not gp.binary_ and gp.Y_.shape == (30, 3)
    acc = gp.accuracy(X, y, 100.0, m=1, n_trials=5, seed=0)
    assert acc > 0.95
    with pytest.raises(ValueError, match="binary"):
        gp.expected_accuracy(X, y, 1.0)


def test_zero_one_labels_are_the_same_binary_problem():
    """Labels {0, 1} are two classes, not a one-hot pair of outputs: the GP is the {-1, +1} one, so the exact
    expected accuracy exists and equals it, and predictions come back as 0 / 1."""
    rng = np.random.default_rng(6)
    X, Xt = sphere(rng, 30, 5), sphere(rng, 80, 5)
    w = rng.normal(size=5)
    y01, yt01 = (X @ w > 0).astype(int), (Xt @ w > 0).astype(int)
    pm = NNGP(depth=2).fit(X, 2 * y01 - 1)
    zo = NNGP(depth=2).fit(X, y01)
    assert zo.binary_ and zo.Y_.shape == (30, 1) and zo.classes_.tolist() == [0, 1]
    np.testing.assert_allclose(zo.posterior(Xt)[0], pm.posterior(Xt)[0])
    for ratio, m in ((0.1, 1), (1.0, 4)):
        expected = pm.expected_accuracy(Xt, 2 * yt01 - 1, ratio, m=m)
        assert zo.expected_accuracy(Xt, yt01, ratio, m=m) == expected
    f = zo.sample(Xt, 10.0, n_draws=3, seed=0)
    assert set(np.unique(zo.predict(f)).tolist()) <= {0, 1}
    assert zo.accuracy(Xt, yt01, 1.0, seed=0) == pm.accuracy(Xt, 2 * yt01 - 1, 1.0, seed=0)
    with pytest.raises(ValueError, match=r"y must hold the binary labels \[0, 1\]"):
        zo.expected_accuracy(Xt, 2 * yt01 - 1, 1.0)  # -1 is not a label of this fit


def test_non_psd_gram_is_reported_and_jittered():
    rng = np.random.default_rng(5)
    X = sphere(rng, 5, 3)
    Xd = np.vstack([X, X])  # duplicated rows: singular Gram matrix
    y = np.array([1, -1, 1, 1, -1] * 2)
    with pytest.warns(NonPSDWarning, match="jitter"):
        gp = NNGP(depth=2, jitter=0.0).fit(Xd, y)
    assert gp.jitter_ > 0
    C1, C2 = gp.posterior(X)
    assert np.all(np.isfinite(C1)) and np.all(C2 >= 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NNGP(depth=2).fit(X, y[:5])  # a well-conditioned Gram matrix: no warning


@pytest.mark.parametrize("call,match", [
    (lambda: arccos_kernel(np.ones((2, 3)), depth=0), "depth"),
    (lambda: arccos_kernel(np.ones((2, 3)), sigma=0.0), "sigma"),
    (lambda: arccos_kernel(np.ones((2, 3)), np.ones((2, 4))), "same number of features"),
    (lambda: arccos_kernel(np.array([[np.nan, 1.0]])), "finite"),
    (lambda: NNGP(depth=2).fit(np.ones((3, 2)), [1, -1]), "one label per row"),
    (lambda: NNGP(depth=2).fit(np.eye(3), [0.5, 1, 2]), "labels"),
    (lambda: NNGP(depth=2).posterior(np.eye(2)), "fit"),
    (lambda: NNGP(depth=2).fit(np.eye(3), [1, -1, 1]).sample(np.eye(3), -1.0), "gamma"),
    (lambda: NNGP(depth=2).fit(np.eye(3), [1, -1, 1]).sample(np.eye(3), 1.0, m=0), "m must be"),
    (lambda: NNGP(jitter=-1.0), "jitter"),
])
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        call()
