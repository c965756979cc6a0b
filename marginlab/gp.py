"""NN-GP model of normalized margin (seed 001 §6.1–6.2).

An L-layer ReLU MLP with Gaussian weights becomes, as the widths grow, a Gaussian process with the
compositional arccos kernel (Cho & Saul 2009)::

    Σ(x, x′) = σ^{2L} · h∘…∘h (xᵀx′/d₀)   (h applied L−1 times),   h(t) = (√(1−t²) + t(π − arccos t))/π

for inputs on the sphere of radius √d₀ (Recipe 1 step ①). Off the sphere the kernel carries the input norms,
Σ = σ^{2L}·(‖x‖‖x′‖/d₀)·h^{L−1}(cos∠(x, x′)), which is what :func:`arccos_kernel` computes.

Scale convention: Σ is exactly the output covariance of a net whose first layer has weights N(0, σ²/d₀) and
whose later layers have N(0, 2σ²/d_{l−1}) (He scaling: the factor 2 undoes the ReLU halving the second
moment). With N(0, σ²/d_{l−1}) everywhere, as written in seed 001, the covariance is Σ/2^{L−1}; the constant
is absorbed into σ and changes nothing below.

Conditioning on labels scaled by a margin γ gives the posterior N(γ·C₁, σ^{2L}·C₂) at test points, with
C₁ = Σ̂_xX Σ̂_XX⁻¹ Y and C₂ = Σ̂_xx − Σ̂_xX Σ̂_XX⁻¹ Σ̂_Xx on the normalized Gram tensors Σ̂ = Σ/σ^{2L}. The
average of m independent draws is N(γ·C₁, σ^{2L}·C₂/m) (Eq. 3): accuracy depends on γ/σ^L and m only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._validation import check_float, check_int

__all__ = ["arccos_h", "arccos_kernel", "NNGP", "NonPSDWarning"]


class NonPSDWarning(UserWarning):
    """A Gram matrix was not numerically positive definite; jitter was added (the amount is reported)."""


def arccos_h(t):
    """h(t) = (√(1−t²) + t(π − arccos t))/π, the ReLU arccos map on correlations; t is clamped to [−1, 1]
    (round-off can push cosines slightly outside). h(1) = 1, h(−1) = 0, h(0) = 1/π."""
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    return (np.sqrt(np.clip(1.0 - t * t, 0.0, None)) + t * (np.pi - np.arccos(t))) / np.pi


def _as_matrix(X, name):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, d, ...) with n >= 1, got {X.shape}")
    X = X.reshape(len(X), -1)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite")
    return X


def arccos_kernel(X1, X2=None, *, depth: int = 2, sigma: float = 1.0) -> np.ndarray:
    """The NN-GP covariance Σ(X1, X2) of a ``depth``-layer ReLU MLP (module docstring), shape (n1, n2).

    ``depth`` = L, the number of weight layers (L = 1: the linear kernel σ²·xᵀx′/d₀). Zero inputs give zero
    rows (their network output is 0)."""
    depth = check_int(depth, "depth", min_value=1)
    sigma = check_float(sigma, "sigma", min_value=0.0, min_inclusive=False)
    A = _as_matrix(X1, "X1")
    B = A if X2 is None else _as_matrix(X2, "X2")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"X1 and X2 must have the same number of features, got {A.shape[1]} and "
                         f"{B.shape[1]}")
    d0 = A.shape[1]
    na = np.linalg.norm(A, axis=1)
    nb = np.linalg.norm(B, axis=1)
    scale = np.outer(na, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(scale > 0, (A @ B.T) / np.where(scale > 0, scale, 1.0), 0.0)
    t = np.clip(t, -1.0, 1.0)
    for _ in range(depth - 1):
        t = arccos_h(t)
    return sigma ** (2 * depth) * (scale / d0) * t


def _cholesky_jitter(K: np.ndarray, jitter: float, max_tries: int = 12):
    """Cholesky of K + jitter·mean(diag)·I, growing the jitter ×10 until it succeeds; returns (L, jitter)."""
    scale = float(np.mean(np.diag(K))) or 1.0
    j = jitter
    for _ in range(max_tries):
        try:
            return np.linalg.cholesky(K + (j * scale) * np.eye(len(K))), j
        except np.linalg.LinAlgError:
            j = max(j * 10.0, 1e-12)
    raise np.linalg.LinAlgError(f"Gram matrix is not positive definite even with relative jitter {j:g}")


class NNGP:
    """NN-GP classifier of seed 001 §6: posterior of the arccos-kernel GP for labels scaled by γ.

    ``NNGP(depth, sigma).fit(X, y)``: ``y`` either binary labels, in {−1, +1} or in {0, 1} (one output on
    targets ±1, prediction by sign, returned in the labels' own coding), or integer classes 0..k−1 with k ≥ 3
    (one independent GP per output on one-hot targets, prediction by argmax).
    ``jitter``: relative diagonal jitter for the Cholesky factorisation; if the Gram matrix is not
    numerically positive definite it is increased ×10 until it is, with a :class:`NonPSDWarning` naming the
    amount used (``jitter_`` after ``fit``)."""

    def __init__(self, depth: int = 2, sigma: float = 1.0, *, jitter: float = 1e-10):
        self.depth = check_int(depth, "depth", min_value=1)
        self.sigma = check_float(sigma, "sigma", min_value=0.0, min_inclusive=False)
        self.jitter = check_float(jitter, "jitter", min_value=0.0)

    # -- fitting ----------------------------------------------------------------------------------------
    def fit(self, X, y) -> NNGP:
        X = _as_matrix(X, "X")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}")
        vals = set(np.unique(y).tolist())
        if vals <= {-1, 1} or vals <= {0, 1}:  # two classes: one output whose sign is the class
            self.binary_ = True
            self.classes_ = np.array([-1, 1]) if vals <= {-1, 1} else np.array([0, 1])
            Y = self._signs(y)[:, None]
        else:
            if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
                raise ValueError("y must hold labels in {-1, +1} or integer classes 0..k-1")
            y = y.astype(np.int64)
            k = max(int(y.max()) + 1, 2)
            self.binary_ = False
            self.classes_ = np.arange(k)
            Y = np.eye(k)[y]
        K = arccos_kernel(X, depth=self.depth, sigma=1.0)  # normalized Gram Σ̂_XX
        try:
            L, used = _cholesky_jitter(K, self.jitter)
        except np.linalg.LinAlgError as exc:
            raise ValueError(f"the Gram matrix of X cannot be factorised: {exc} (duplicate or zero inputs?)"
                             ) from exc
        if used > self.jitter:
            eig = float(np.linalg.eigvalsh(K).min())
            warnings.warn(f"Gram matrix is not numerically positive definite (smallest eigenvalue "
                          f"{eig:.3g}); added relative jitter {used:.3g} to its diagonal",
                          NonPSDWarning, stacklevel=2)
        self.jitter_ = used
        self.X_, self.Y_, self.L_ = X, Y, L
        self.alpha_ = _cho_solve(L, Y)
        return self

    def _check_fitted(self):
        if not hasattr(self, "L_"):
            raise RuntimeError("call fit(X, y) before predicting")

    def _signs(self, y) -> np.ndarray:
        """Binary labels (in the fitted coding, {−1, +1} or {0, 1}) as ±1 targets."""
        y = np.asarray(y)
        if not np.isin(y, self.classes_).all():
            other = sorted(set(np.unique(y).tolist()) - set(self.classes_.tolist()))
            raise ValueError(f"y must hold the binary labels {self.classes_.tolist()} it was fitted with, "
                             f"got {other[:5]}")
        return np.where(y == self.classes_[1], 1.0, -1.0)

    # -- posterior ----------------------------------------------------------------------------------------
    def posterior(self, X, *, full_cov: bool = False):
        """``(C1, C2)``: C1 (n, outputs) is the posterior mean per unit γ; C2 is the normalized posterior
        variance per test point (n,) or, with ``full_cov``, the covariance (n, n). Negative round-off
        variances are clamped to 0."""
        self._check_fitted()
        Xt = _as_matrix(X, "X")
        Kx = arccos_kernel(Xt, self.X_, depth=self.depth, sigma=1.0)
        C1 = Kx @ self.alpha_
        V = _tri_solve(self.L_, Kx.T)  # L⁻¹ Σ̂_Xx
        if full_cov:
            C2 = arccos_kernel(Xt, depth=self.depth, sigma=1.0) - V.T @ V
            C2 = 0.5 * (C2 + C2.T)
        else:
            kxx = np.einsum("ij,ij->i", Xt, Xt) / Xt.shape[1]  # h(1) = 1: Σ̂(x, x) = ‖x‖²/d₀
            C2 = np.clip(kxx - np.einsum("ij,ij->j", V, V), 0.0, None)
        return C1, C2

    def sample(self, X, gamma: float, *, m: int = 1, n_draws: int = 1, method: str = "average", seed=None):
        """``n_draws`` samples (n_draws, n, outputs) of the average of ``m`` posterior draws at ``X`` for
        margin ``gamma`` (seed 001 Eq. 3). ``method='average'`` draws m functions and averages them;
        ``'closed_form'`` samples N(γ·C₁, σ^{2L}·C₂/m) directly. Draws are joint over the test points."""
        gamma = check_float(gamma, "gamma", min_value=0.0)
        m = check_int(m, "m", min_value=1)
        n_draws = check_int(n_draws, "n_draws", min_value=1)
        if method not in ("average", "closed_form"):
            raise ValueError(f"method must be 'average' or 'closed_form', got {method!r}")
        rng = np.random.default_rng(seed)
        C1, C2 = self.posterior(X, full_cov=True)
        Lc, used = _cholesky_jitter(C2, max(self.jitter, 1e-10))
        n, k = C1.shape
        s = self.sigma ** self.depth
        mean = gamma * C1
        if method == "closed_form":
            z = rng.standard_normal((n_draws, n, k))
            return mean + (s / math.sqrt(m)) * np.einsum("ij,djk->dik", Lc, z)
        z = rng.standard_normal((n_draws, m, n, k))
        draws = mean + s * np.einsum("ij,dmjk->dmik", Lc, z)
        return draws.mean(axis=1)

    def predict(self, f) -> np.ndarray:
        """Labels from sampled outputs (…, n, outputs): sign for binary, argmax otherwise."""
        f = np.asarray(f)
        if self.binary_:
            return np.where(f[..., 0] >= 0, self.classes_[1], self.classes_[0])
        return f.argmax(-1)

    def expected_accuracy(self, X, y, ratio: float, *, m: int = 1) -> float:
        """Exact expected test accuracy of the m-draw average for binary labels at normalized margin
        ``ratio`` = γ/σ^L: mean_x Φ(√m·ratio·C₁(x)·y/√C₂(x)) (points with C₂ = 0 count as sign(C₁·y))."""
        from scipy.special import ndtr

        self._check_fitted()
        if not self.binary_:
            raise ValueError("expected_accuracy needs binary labels; use accuracy() for several classes")
        ratio = check_float(ratio, "ratio", min_value=0.0)
        m = check_int(m, "m", min_value=1)
        C1, C2 = self.posterior(X)
        signal = C1[:, 0] * self._signs(y)
        sd = np.sqrt(C2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(sd > 0, math.sqrt(m) * ratio * signal / np.where(sd > 0, sd, 1.0),
                         np.sign(signal) * np.inf)
        return float(np.mean(ndtr(z)))

    def accuracy(self, X, y, ratio: float, *, m: int = 1, n_trials: int = 20, seed=None) -> float:
        """Monte-Carlo test accuracy of the m-draw average at normalized margin ``ratio`` = γ/σ^L, averaged
        over ``n_trials`` ensembles (σ is fixed, γ = ratio·σ^L)."""
        ratio = check_float(ratio, "ratio", min_value=0.0)
        f = self.sample(X, ratio * self.sigma ** self.depth, m=m, n_draws=n_trials, method="closed_form",
                        seed=seed)
        return float(np.mean(self.predict(f) == np.asarray(y)[None, :]))

    def accuracy_grid(self, X, y, ratios, ms=(1,), *, n_trials: int = 20, seed=0, exact: bool | None = None):
        """Test accuracy for every normalized margin in ``ratios`` (rows) and ensemble size in ``ms``
        (columns) — seed 001 Fig. 6. Binary labels use the exact formula unless ``exact=False``."""
        exact = self.binary_ if exact is None else bool(exact)
        out = np.empty((len(ratios), len(ms)))
        for i, r in enumerate(ratios):
            for j, m in enumerate(ms):
                out[i, j] = (self.expected_accuracy(X, y, r, m=m) if exact else
                             self.accuracy(X, y, r, m=m, n_trials=n_trials, seed=None if seed is None else
                                           seed + 1000 * i + j))
        return out


def _cho_solve(L, B):
    from scipy.linalg import solve_triangular

    return solve_triangular(L.T, solve_triangular(L, B, lower=True), lower=False)


def _tri_solve(L, B):
    from scipy.linalg import solve_triangular

    return solve_triangular(L, B, lower=True)
