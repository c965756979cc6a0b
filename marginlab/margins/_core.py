"""Shared machinery of the margin methods: input checks, the sub-network to solve on, and the reduction of
pair-level results to per-sample margins with an honest status (verification itself is in ``verify.py``)."""

from __future__ import annotations

import copy
import time
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
from torch import nn

from .._validation import check_float
from .result import MarginResult

__all__ = ["Problem", "prepare", "check_p", "check_tol", "assemble", "pair_index", "dual_norm", "lp_norm",
           "lp_step", "skip_mask", "Timer", "PairCode", "sample_status", "sample_streams"]


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
    if X.shape[0] == 0:
        raise ValueError(f"X holds no samples (shape {tuple(X.shape)}); pass at least one")
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
            logits = _logits64(net, Z)
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


def _logits64(net, Z):
    """Logits at the samples in float64: the classifier every method verifies against is the network
    evaluated in float64, so the predicted class is taken there too (a float32 tie cannot disagree)."""
    from .verify import no_tf32

    dev = Z.device if Z.device.type != "mps" else torch.device("cpu")
    with no_tf32():
        return copy.deepcopy(net).to(dev, torch.float64)(Z.to(dev, torch.float64))


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


def pair_index(prob: Problem, rows: np.ndarray):
    """All (sample, j) pairs with j in ``prob.classes`` and j != pred, for samples ``rows``."""
    pred = prob.pred[rows]
    S = np.repeat(rows, len(prob.classes))
    J = np.tile(prob.classes, len(rows))
    I = np.repeat(pred, len(prob.classes))
    keep = J != I
    return S[keep], I[keep], J[keep]


class PairCode(IntEnum):
    """How the search of one (sample, class) pair ended."""

    LOCAL_MIN = 0   # verified point where the search stopped at a local minimum (stationary, or no descent)
    BUDGET = 1      # verified point, but the search ran out of iterations before it was stationary
    VERIFIED = 2    # verified point of a method that does not test local optimality
    FAILED = 3      # no verified point
    ZERO_GRAD = 4   # zero gradient at every start: no direction to search
    FARTHER = 5     # no point needed: a sound lower bound shows this boundary lies beyond the margin
    ACROSS = 6      # the search crossed into another class's region beyond the margin (an upper bound there)


_UNRESOLVED = (PairCode.FAILED, PairCode.ZERO_GRAD)


def assemble(prob: Problem, *, method, p, tol, S, I, J, dist, points, residual, top2, ok, iters, evals,
             seconds, skipped, signed=False, estimate=False, info=None, cls=None, codes=None, agree=None,
             min_agree=1, kind="exact") -> MarginResult:
    """Reduce pair-level results (one row per searched (sample S, class J)) to the per-sample
    :class:`MarginResult`: margin = min over the verified pairs (seed 000: search every j != i and keep the
    smallest distance). ``cls`` is the class across the boundary at each pair's point (default J; a search
    aimed at j can verify a boundary with another class), ``codes`` how each pair's search ended
    (:class:`PairCode`), ``agree`` per sample how many independent starts reached its best distance."""
    n, K = prob.n, prob.n_classes
    S = np.asarray(S, np.int64)
    dist = np.asarray(dist, np.float64)
    ok = np.asarray(ok, bool)
    cls = np.asarray(J if cls is None else cls, np.int64)
    codes = np.where(ok, PairCode.VERIFIED, PairCode.FAILED) if codes is None else np.asarray(codes)
    use = ok if not estimate else np.isfinite(dist)
    distances = np.full((n, K), np.nan)
    if use.any():
        flat = np.full(n * K, np.inf)
        np.minimum.at(flat, S[use] * K + cls[use], dist[use])
        distances = np.where(np.isfinite(flat), flat, np.nan).reshape(n, K)
    key = np.where(use, dist, np.inf)
    best = _best_rows(S, key)
    margin = np.full(n, np.nan)
    point = np.full((n,) + tuple(prob.shape), np.nan)
    bclass = np.full(n, -1, np.int64)
    res = np.full(n, np.nan)
    t2 = np.zeros(n, bool)
    ok_s = np.zeros(n, bool)
    best_code = np.full(n, int(PairCode.FAILED))
    s = S[best]
    margin[s] = dist[best]
    point[s] = np.asarray(points)[best].reshape((len(best),) + tuple(prob.shape))
    bclass[s], res[s], t2[s], ok_s[s], best_code[s] = cls[best], np.asarray(residual)[best], \
        np.asarray(top2)[best], ok[best], codes[best]
    it = np.zeros(n, np.int64)
    ev = np.zeros(n, np.int64)
    np.maximum.at(it, S, np.asarray(iters, np.int64))
    np.add.at(ev, S, np.asarray(evals, np.int64))
    agree = np.where(ok_s, 1, 0) if agree is None else np.asarray(agree, np.int64)
    found = np.isfinite(margin) if estimate else ok_s
    status = sample_status(n, S, J, codes, best_code, found, agree, min_agree, skipped, kind, estimate)
    if signed and prob.label is not None:
        margin = np.where(prob.pred != prob.label, -margin, margin)
    secs = np.full(n, seconds / max(1, int((~skipped).sum())))
    secs[skipped] = 0.0
    return MarginResult(margin=margin, point=point, pred=prob.pred, boundary_class=bclass, residual=res,
                        top_two=t2, converged=(status == "converged") if not estimate else ok_s,
                        distances=distances, label=prob.label, skipped=skipped, iterations=it, evaluations=ev,
                        seconds=secs, method=method, p=p, layer=prob.layer, tol=tol, estimate=estimate,
                        info=dict(info or {}), status=status, verified=ok_s & (not estimate), agree=agree)


def _best_rows(S, key):
    """Per sample, the row with the smallest finite key (rows without one are left out)."""
    if not len(S):
        return np.zeros(0, np.int64)
    order = np.lexsort((key, S))
    first = np.ones(len(order), bool)
    first[1:] = S[order][1:] != S[order][:-1]
    best = order[first]
    return best[np.isfinite(key[best])]


def sample_status(n, S, J, codes, best_code, found, agree, min_agree, skipped, kind="exact",
                  estimate=False) -> np.ndarray:
    """Status words per sample, the first that applies: ``skipped``, ``no boundary point``, ``budget
    exhausted`` (the nearest point is not stationary), ``unresolved pair j`` (class j's search found no
    verified point and nothing shows it farther), ``starts disagree`` (fewer than ``min_agree`` independent
    starts reached the best distance), ``converged``. Methods that do not search the nearest point say
    ``upper bound`` (verified point) or ``estimate``."""
    status = np.full(n, "converged", dtype=object)
    if estimate:
        status[:] = "estimate"
    elif kind != "exact":
        status[:] = "upper bound"
    else:
        status[np.asarray(agree) < min_agree] = "starts disagree"
        bad = np.isin(np.asarray(codes), [int(c) for c in _UNRESOLVED])
        if bad.any():
            first = _best_rows(np.asarray(S)[bad], np.asarray(J, np.float64)[bad])
            words = [f"unresolved pair {int(j)}" for j in np.asarray(J)[bad][first]]
            status[np.asarray(S)[bad][first]] = words
        status[np.asarray(best_code) == PairCode.BUDGET] = "budget exhausted"
    status[~np.asarray(found, bool)] = "no estimate" if estimate else "no boundary point"
    status[np.asarray(skipped, bool)] = "skipped"
    return status

def sample_streams(prob: Problem, rows, seed: int, *tags: int) -> list:
    """One numpy random generator per sample in ``rows``, seeded by ``seed``, ``tags`` and the sample's
    float32 bytes: a sample gets the same draws in any chunk, process (Dask) or model dtype."""
    x32 = prob.x0[torch.as_tensor(np.asarray(rows), device=prob.x0.device, dtype=torch.long)]
    x32 = x32.detach().to("cpu", torch.float32).numpy()
    return [np.random.default_rng([seed, *tags, zlib.crc32(v.tobytes())]) for v in x32]


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
