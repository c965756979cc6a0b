"""Shared machinery of the margin methods: input checks, the sub-network to solve on, float64
verification (seed 000 Eq. 2 with the top-two check) and the final root search onto the boundary."""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_float
from .result import MarginResult

__all__ = ["Problem", "prepare", "check_p", "check_tol", "Float64Net", "verify", "ray_root", "assemble",
           "dual_norm", "lp_norm"]


def check_p(p) -> float:
    """Norm order p in [1, inf] (``"inf"`` and ``np.inf`` accepted)."""
    if isinstance(p, str) and p.lower() in ("inf", "linf", "infinity"):
        return float("inf")
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"p must be a number >= 1 or 'inf', got {p!r}")
    p = float(p)
    if np.isnan(p) or p < 1:
        raise ValueError(f"p must be >= 1 (or inf), got {p:g}")
    return p


def check_tol(tol, name="tol") -> float:
    return check_float(tol, name, min_value=0.0, min_inclusive=False)


def dual_norm(p: float) -> float:
    """q with 1/p + 1/q = 1."""
    if p == 1:
        return float("inf")
    if np.isinf(p):
        return 1.0
    return p / (p - 1.0)


def lp_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    """Row-wise l_p norm of a (P, D) tensor."""
    if np.isinf(p):
        return v.abs().amax(dim=1)
    return torch.linalg.vector_norm(v, ord=p, dim=1)


@dataclass
class Problem:
    """A validated margin problem: ``net`` maps representation ``layer`` to logits; ``x0`` (n, D) holds the
    flattened representations on ``device``; ``shape`` is one representation's shape."""

    net: nn.Module
    x0: torch.Tensor
    shape: tuple
    n_classes: int
    layer: int
    logits: torch.Tensor
    pred: np.ndarray
    label: np.ndarray | None
    classes: np.ndarray
    device: torch.device
    dtype: torch.dtype

    @property
    def n(self) -> int:
        return self.x0.shape[0]

    @property
    def dim(self) -> int:
        return self.x0.shape[1]

    def f(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of flattened representations z (P, D)."""
        return self.net(z.reshape((-1,) + self.shape))


def _as_tensor(X, name="X"):
    if isinstance(X, torch.Tensor):
        return X.detach()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(X).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array or tensor, got dtype {arr.dtype}")
    return torch.as_tensor(arr)


def prepare(model, X, *, y=None, layer=0, classes=None, device=None) -> Problem:
    """Validate the inputs and build the :class:`Problem` (the solve runs on ``model.tail(layer)``)."""
    from ..device import resolve_device

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters: margins need a trained torch model with weights")
    dev = params[0].device if device is None else resolve_device(device)
    dtype = params[0].dtype if params[0].dtype.is_floating_point else torch.float32
    X = _as_tensor(X)
    input_shape = tuple(getattr(model, "input_shape", tuple(X.shape[1:])))
    if tuple(X.shape) == input_shape:  # a single sample without batch dimension
        X = X.unsqueeze(0)
    if X.ndim < 2 or tuple(X.shape[1:]) != input_shape:
        raise ValueError(f"X must have shape (n, {', '.join(map(str, input_shape))}) for this model, "
                         f"got {tuple(X.shape)}")
    X = X.to(dev, dtype)
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or inf values")
    if hasattr(model, "resolve_layer"):
        k = model.resolve_layer(layer)
    else:
        if layer not in (0, None):
            raise ValueError(f"layer must be 0 for a plain torch module (no MarginNet.tail), got {layer!r}")
        k = 0
    model = model.to(dev)
    was_training = model.training
    model.eval()  # margins of the deployed function (dropout/batchnorm in inference mode)
    try:
        with torch.no_grad():
            Z = model.activations(X, k) if k > 0 else X
            net = model.tail(k) if k > 0 else model
            net.eval()
            logits = net(Z)
    finally:
        model.train(was_training)
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits of shape (n, K), got {tuple(logits.shape)}")
    K = logits.shape[1]
    if K < 2:
        raise ValueError(f"the model must have at least 2 classes, got {K}")
    n = X.shape[0]
    label = None
    if y is not None:
        label = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
        if label.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {label.shape}")
        if not np.issubdtype(label.dtype, np.integer) or (
                label.size and (label.min() < 0 or label.max() >= K)):
            raise ValueError(f"y must hold integer labels in [0, {K - 1}]")
        label = label.astype(np.int64)
    if classes is None:
        cls = np.arange(K)
    else:
        cls = np.unique(np.asarray(classes, dtype=np.int64).ravel())
        if cls.size == 0 or cls.min() < 0 or cls.max() >= K:
            raise ValueError(f"classes must be a non-empty list of class indices in [0, {K - 1}], "
                             f"got {classes!r}")
    shape = tuple(Z.shape[1:])
    return Problem(net=_frozen(net), x0=Z.reshape(n, -1).contiguous(), shape=shape, n_classes=K, layer=k,
                   logits=logits, pred=logits.argmax(1).cpu().numpy().astype(np.int64), label=label,
                   classes=cls, device=dev, dtype=dtype)


class _Frozen(nn.Module):
    """Wraps a module in eval mode with parameters that do not require grad (gradients w.r.t. inputs
    only: cheaper, and the caller's ``.grad`` buffers stay untouched)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def _frozen(net):
    if isinstance(net, _Frozen):
        return net
    net = copy.deepcopy(net).eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return _Frozen(net)


@contextlib.contextmanager
def no_tf32():
    """TF32 matmuls have ~1e-3 relative error, the order of boundary tolerances: keep them off."""
    if not torch.cuda.is_available():
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class Float64Net:
    """The problem's network in float64 (on the same device, except MPS which lacks float64)."""

    def __init__(self, prob: Problem):
        self.shape = prob.shape
        dev = prob.device if prob.device.type != "mps" else torch.device("cpu")
        self.device = dev
        self.net = copy.deepcopy(prob.net).to(dev, torch.float64).eval()

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        with no_tf32():
            return self.net(z.to(self.device, torch.float64).reshape((-1,) + self.shape))


def scaled_tol(fi, fj, tol):
    """Verification threshold: ``tol`` absolute for logits below 1, relative to the logit scale above."""
    return tol * torch.clamp(torch.maximum(fi.abs(), fj.abs()), min=1.0)


def verify(logits64: torch.Tensor, i: torch.Tensor, j: torch.Tensor, tol: float):
    """``(residual, top_two, ok)`` for boundary candidates with float64 logits (P, K) and classes i, j (P,).

    top-two: no third class exceeds min(f_i, f_j) by more than the tolerance (so the point lies on the i/j
    part of the decision boundary, not inside a third class's region).
    """
    r = torch.arange(logits64.shape[0], device=logits64.device)
    fi, fj = logits64[r, i], logits64[r, j]
    res = (fi - fj).abs()
    thr = scaled_tol(fi, fj, tol)
    other = logits64.clone()
    other[r, i] = -torch.inf
    other[r, j] = -torch.inf
    third = other.amax(1) if logits64.shape[1] > 2 else torch.full_like(fi, -torch.inf)
    top2 = third <= torch.minimum(fi, fj) + thr
    ok = (res <= thr) & top2 & torch.isfinite(res)
    return res, top2, ok


@torch.no_grad()
def ray_root(f64: Float64Net, x: torch.Tensor, z: torch.Tensor, i: torch.Tensor, j: torch.Tensor, tol: float,
             *, max_iter: int = 100, extend=(1.0, 1.0 + 1e-4, 1.001, 1.01, 1.1, 1.5, 2.0)):
    """Project candidates onto the i/j boundary along the segment from x, in float64.

    For each pair, g(t) = f_i - f_j at x + t (z - x) is positive at t = 0. The end point is pushed outward
    by the factors in ``extend`` until g <= 0 (a bracket), then the Illinois variant of regula falsi finds the
    root (superlinear; exact in one step where the network is linear on the segment). Pairs without a
    bracket get ``ok=False``. Returns ``(point (P, D) float64, t_scale, logits64, evals (P,), found (P,))``
    where the point is the bracket end with the smaller |g| (always inside the bracket).
    """
    x = x.to(f64.device, torch.float64)
    d = z.to(f64.device, torch.float64) - x
    i = i.to(f64.device)
    j = j.to(f64.device)
    P = x.shape[0]
    r = torch.arange(P, device=x.device)
    evals = torch.zeros(P, dtype=torch.int64, device=x.device)

    def g_at(rows, t):
        lg = f64(x[rows] + t[:, None] * d[rows])
        return (lg[torch.arange(len(rows), device=x.device), i[rows]]
                - lg[torch.arange(len(rows), device=x.device), j[rows]]), lg

    g0, lg0 = g_at(r, torch.zeros(P, dtype=torch.float64, device=x.device))
    evals += 1
    hi = torch.full((P,), float("nan"), dtype=torch.float64, device=x.device)
    ghi = torch.full_like(hi, float("nan"))
    todo = (g0 > 0) & torch.isfinite(d).all(1)
    for s in extend:
        rows = torch.nonzero(todo & torch.isnan(hi)).flatten()
        if rows.numel() == 0:
            break
        t = torch.full((rows.numel(),), float(s), dtype=torch.float64, device=x.device)
        g, _ = g_at(rows, t)
        evals[rows] += 1
        hit = g <= 0
        hi[rows[hit]] = s
        ghi[rows[hit]] = g[hit]
    found = torch.isfinite(hi)
    lo = torch.zeros_like(hi)
    glo = g0.clone()
    thr_abs = torch.full_like(hi, float("inf"))
    # stopping threshold: a tenth of the verification tolerance on the logit scale at x
    thr_abs = 0.1 * tol * torch.clamp(lg0.abs().amax(1), min=1.0)
    active = found & (ghi.abs() > thr_abs) & (glo.abs() > thr_abs)
    side = torch.zeros(P, dtype=torch.int8, device=x.device)  # Illinois: which end was kept last time
    for _ in range(max_iter):
        rows = torch.nonzero(active).flatten()
        if rows.numel() == 0:
            break
        a, b, ga, gb = lo[rows], hi[rows], glo[rows], ghi[rows]
        t = b - gb * (b - a) / (gb - ga)
        width = b - a
        # keep strictly inside; fall back to bisection where regula falsi stalls numerically
        bad = ~torch.isfinite(t) | (t <= a) | (t >= b)
        t = torch.where(bad, 0.5 * (a + b), t)
        g, _ = g_at(rows, t)
        evals[rows] += 1
        pos = g > 0
        # Illinois: halve the retained end's g when the same end is kept twice in a row
        s_rows = side[rows]
        new_lo = torch.where(pos, t, a)
        new_hi = torch.where(pos, b, t)
        new_glo = torch.where(pos, g, torch.where(s_rows == 1, ga * 0.5, ga))
        new_ghi = torch.where(pos, torch.where(s_rows == -1, gb * 0.5, gb), g)
        side[rows] = torch.where(pos, torch.tensor(-1, dtype=torch.int8, device=x.device),
                                 torch.tensor(1, dtype=torch.int8, device=x.device))
        lo[rows], hi[rows], glo[rows], ghi[rows] = new_lo, new_hi, new_glo, new_ghi
        done = (g.abs() <= thr_abs[rows]) | (
            (new_hi - new_lo) <= 1e-15 * torch.clamp(width.abs(), min=1e-300))
        done |= (new_hi - new_lo) <= 1e-16
        # record the exact hit as both ends so the closer-|g| pick below returns it
        exact = g.abs() <= thr_abs[rows]
        lo[rows[exact & pos]] = t[exact & pos]
        hi[rows[exact & ~pos]] = t[exact & ~pos]
        active[rows[done]] = False
    # true |g| at both ends (Illinois scaled the stored values)
    t_final = torch.where(torch.isfinite(hi), hi, torch.zeros_like(hi))
    pts_hi = x + t_final[:, None] * d
    pts_lo = x + lo[:, None] * d
    lg_hi = f64(pts_hi)
    lg_lo = f64(pts_lo)
    evals += 2
    g_hi = (lg_hi[r, i] - lg_hi[r, j]).abs()
    g_lo = (lg_lo[r, i] - lg_lo[r, j]).abs()
    use_lo = g_lo < g_hi
    t_out = torch.where(use_lo, lo, t_final)
    pts = torch.where(use_lo[:, None], pts_lo, pts_hi)
    lg = torch.where(use_lo[:, None], lg_lo, lg_hi)
    t_out = torch.where(found, t_out, torch.full_like(t_out, float("nan")))
    return pts, t_out, lg, evals, found


def pair_index(prob: Problem, rows: np.ndarray):
    """All (sample, j) pairs with j in ``prob.classes`` and j != pred, for samples ``rows``."""
    pred = prob.pred[rows]
    S = np.repeat(rows, len(prob.classes))
    J = np.tile(prob.classes, len(rows))
    I = np.repeat(pred, len(prob.classes))
    keep = J != I
    return S[keep], I[keep], J[keep]


def assemble(prob: Problem, *, method, p, tol, S, I, J, dist, points, residual, top2, ok, iters, evals,
             seconds, skipped, signed=False, estimate=False, info=None) -> MarginResult:
    """Reduce pair-level results (one row per (sample S, class J)) to the per-sample :class:`MarginResult`:
    margin = min over verified j (seed 000: search every j != i and keep the smallest distance)."""
    n, K = prob.n, prob.n_classes
    dist = np.asarray(dist, np.float64)
    ok = np.asarray(ok, bool)
    distances = np.full((n, K), np.nan)
    use = ok if not estimate else np.isfinite(dist)
    distances[S[use], J[use]] = dist[use]
    margin = np.full(n, np.nan)
    point = np.full((n,) + tuple(prob.shape), np.nan)
    bclass = np.full(n, -1, np.int64)
    res = np.full(n, np.nan)
    t2 = np.zeros(n, bool)
    conv = np.zeros(n, bool)
    if len(S):
        # choose, per sample, the pair with the smallest (verified, or for estimates finite) distance
        key = np.where(use, dist, np.inf)
        order = np.lexsort((key, S))
        first = np.ones(len(order), bool)
        first[1:] = S[order][1:] != S[order][:-1]
        best = order[first]
        best = best[np.isfinite(key[best])]
        s = S[best]
        margin[s] = dist[best]
        point[s] = np.asarray(points)[best].reshape((len(best),) + tuple(prob.shape))
        bclass[s] = J[best]
        res[s] = np.asarray(residual)[best]
        t2[s] = np.asarray(top2)[best]
        conv[s] = ok[best]
    it = np.zeros(n, np.int64)
    ev = np.zeros(n, np.int64)
    if len(S):
        np.maximum.at(it, S, np.asarray(iters, np.int64))
        np.add.at(ev, S, np.asarray(evals, np.int64))
    if signed and prob.label is not None:
        wrong = prob.pred != prob.label
        margin = np.where(wrong, -margin, margin)
    secs = np.full(n, seconds / max(1, int((~skipped).sum())))
    secs[skipped] = 0.0
    return MarginResult(margin=margin, point=point, pred=prob.pred, boundary_class=bclass, residual=res,
                        top_two=t2, converged=conv, distances=distances, label=prob.label, skipped=skipped,
                        iterations=it, evaluations=ev, seconds=secs, method=method, p=p, layer=prob.layer,
                        tol=tol, estimate=estimate, info=dict(info or {}))


def skip_mask(prob: Problem, skip_misclassified: bool) -> np.ndarray:
    if not skip_misclassified:
        return np.zeros(prob.n, bool)
    if prob.label is None:
        raise ValueError("skip_misclassified=True needs labels y")
    return prob.pred != prob.label


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def pair_grad(prob: Problem, z: torch.Tensor, I: torch.Tensor, J: torch.Tensor):
    """g = f_i - f_j and its gradient at rows z (P, D): one forward+backward for the whole batch (rows are
    independent samples, so the gradient of the sum is the per-row gradient)."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        lg = prob.f(z)
        r = torch.arange(z.shape[0], device=z.device)
        g = lg[r, I] - lg[r, J]
        (grad,) = torch.autograd.grad(g.sum(), z)
    return g.detach(), grad.detach(), lg.detach()


def lp_step(w: torch.Tensor, g: torch.Tensor, p: float):
    """The smallest l_p step r with w . r = -g (rows): r = -g |w|^(q-1) sign(w) / ||w||_q^q, q the dual
    norm; p = 1 moves along the largest |w_k| only, p = inf along sign(w). Zero-gradient rows give NaN."""
    q = dual_norm(p)
    if p == 1:
        k = w.abs().argmax(1)
        r = torch.zeros_like(w)
        wk = w.gather(1, k[:, None]).squeeze(1)
        r.scatter_(1, k[:, None], (-g / wk)[:, None])
    elif np.isinf(p):
        r = -(g / w.abs().sum(1))[:, None] * torch.sign(w)
    else:
        wq = w.abs().pow(q - 1) * torch.sign(w)
        r = -(g / w.abs().pow(q).sum(1))[:, None] * wq
    zero = ~(lp_norm(w, q) > 0)
    return torch.where(zero[:, None], torch.full_like(r, float("nan")), r)
