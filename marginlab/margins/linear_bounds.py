"""Sound linear bounds of a network over an l_p ball (optionally intersected with an input box).

CROWN-style back-substitution (Zhang et al. 2018, "Efficient neural network robustness certification with
general activation functions"): a linear function of the outputs is pushed back layer by layer, each
activation replaced by the lower or upper line of :func:`~marginlab.margins.relax.relax` according to the
sign of its coefficient, until it is a linear function ``A z + c`` of the input, whose minimum over the
input set is closed-form:

* ball only: ``A x + c - eps ||A||_q`` (q the dual norm);
* ball and box, p = inf: the intersection is a box, exact;
* ball and box, p = 2 or 1: the Lagrangian dual ``max_lambda min_{z in box} A z + lambda (||z - x||_p^(2 or 1)
  ...)`` is separable per coordinate; any lambda gives a valid bound (weak duality), lambda is chosen by
  golden-section search, and the plain ball and box bounds are kept where they are better.

Pre-activation bounds of every layer are computed the same way (layer by layer, intersected with interval
propagation). Everything runs in float64 on the network's device, batched over samples.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._chain import Chain, check_chain, supports, to_chain
from ._core import dual_norm
from .relax import relax

__all__ = ["pair_lower_bounds", "neuron_bounds", "supports", "concretize", "layer_relaxations",
           "output_lower", "as_box"]

_BUDGET = 1 << 24  # float64 elements of one back-substitution block (128 MiB)


def _qnorm(A, q):
    if math.isinf(q):
        return A.abs().amax(-1)
    if q == 1:
        return A.abs().sum(-1)
    return torch.linalg.vector_norm(A, ord=q, dim=-1)


def as_box(box, n, D, device):
    """``box`` = (lo, hi) (scalars or arrays broadcastable to (n, D)) as float64 (n, D) tensors, or None."""
    if box is None:
        return None
    lo, hi = (torch.as_tensor(np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b,
                                         dtype=np.float64)).to(device).reshape(-1) for b in box)
    lo = lo.expand(D) if lo.numel() == 1 else lo
    hi = hi.expand(D) if hi.numel() == 1 else hi
    lo = lo.reshape(-1, D).expand(n, D) if lo.numel() in (D, n * D) else None
    hi = hi.reshape(-1, D).expand(n, D) if hi is not None and hi.numel() in (D, n * D) else None
    if lo is None or hi is None:
        raise ValueError(f"box must be (lo, hi) with scalars or arrays of {D} values per sample")
    return lo, hi


def concretize(A, c, x, eps, p, box=None):
    """Lower bound of ``min A z + c`` over ``{||z - x||_p <= eps} (n {lo <= z <= hi})``.

    A (n, m, D), c (n, m), x (n, D), eps (n,), box None or (lo, hi) (n, D)."""
    q = dual_norm(p)
    ball = (A @ x[:, :, None]).squeeze(2) - eps[:, None] * _qnorm(A, q) + c
    if box is None:
        return ball
    # the ball lies in the l-inf box x +- eps: intersecting keeps every bound finite and tighter
    lo = torch.maximum(box[0], x - eps[:, None])
    hi = torch.minimum(box[1], x + eps[:, None])
    Ap, An = A.clamp(min=0), A.clamp(max=0)
    if math.isinf(p):
        return (Ap @ lo[:, :, None] + An @ hi[:, :, None]).squeeze(2) + c
    best = torch.maximum(ball, (Ap @ lo[:, :, None] + An @ hi[:, :, None]).squeeze(2) + c)
    if p in (1, 2):
        dual = (_dual_l2 if p == 2 else _dual_l1)(A, x, eps, lo, hi) + c
        # every finite dual value is a valid bound; overflow (eps -> 0) must not poison the others
        best = torch.maximum(best, torch.nan_to_num(dual, nan=-math.inf))
    return best


def _golden(g, a, b, iters=30):
    """Golden-section search of a unimodal (concave) function of t on [a, b] (tensors); returns the best
    value seen (every value is a valid bound, so the best is)."""
    r = (math.sqrt(5.0) - 1.0) / 2.0
    t1, t2 = b - r * (b - a), a + r * (b - a)
    g1, g2 = g(t1), g(t2)
    best = torch.maximum(g1, g2)
    for _ in range(iters):
        left = g1 >= g2                       # the maximum lies in [a, t2]
        b = torch.where(left, t2, b)
        a = torch.where(left, a, t1)
        t1n = torch.where(left, b - r * (b - a), t2)
        t2n = torch.where(left, t1, a + r * (b - a))
        tn = torch.where(left, t1n, t2n)
        gn = g(tn)
        g1, g2 = torch.where(left, gn, g2), torch.where(left, g1, gn)
        t1, t2 = t1n, t2n
        best = torch.maximum(best, gn)
    return best


def _dual_l2(A, x, eps, lo, hi):
    """max over lambda > 0 of min_{z in box} A z + lambda/2 (||z - x||^2 - eps^2) (minus c)."""
    an = torch.linalg.vector_norm(A, dim=-1).clamp(min=1e-300)
    e = eps.clamp(min=1e-300)[:, None]
    s0 = torch.log(an / e)                     # the ball-only optimum lambda = ||a|| / eps
    xs, los, his = x[:, None, :], lo[:, None, :], hi[:, None, :]

    def g(s):
        lam = torch.exp(torch.clamp(s, max=700.0))[..., None]
        z = torch.minimum(torch.maximum(xs - A / lam, los), his)
        return (A * z).sum(-1) + 0.5 * lam[..., 0] * (((z - xs) ** 2).sum(-1) - e ** 2)

    return _golden(g, s0 - 12.0, s0 + 12.0)


def _dual_l1(A, x, eps, lo, hi):
    """max over lambda in [0, max|a|] of min_{z in box} A z + lambda (||z - x||_1 - eps) (minus c)."""
    xs, los, his = x[:, None, :], lo[:, None, :], hi[:, None, :]
    xc = torch.minimum(torch.maximum(xs, los), his)

    def g(lam):
        lm = lam[..., None]
        cand = torch.stack([A * los + lm * (xs - los).abs(), A * his + lm * (his - xs).abs(),
                            A * xc + lm * (xc - xs).abs()]).amin(0)
        return cand.sum(-1) - lam * eps[:, None]

    top = A.abs().amax(-1)
    return _golden(g, torch.zeros_like(top), top)


def _ibp(W, b, hl, hu):
    """Interval propagation of h in [hl, hu] through W h + b."""
    Wp, Wn = W.clamp(min=0), W.clamp(max=0)
    return hl @ Wp.T + hu @ Wn.T + b, hu @ Wp.T + hl @ Wn.T + b


def _lower_from(chain, rels, A, c, j, x, eps, p, box):
    """Lower bound of ``A h_j + c`` (A (n, m, d_j) on the input of affine map j) over the input set."""
    while j > 0:
        al, cl, au, cu = rels[j - 1]
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        c = c + (Ap @ cl[:, :, None] + An @ cu[:, :, None]).squeeze(2)
        A = Ap * al[:, None, :] + An * au[:, None, :]
        j -= 1
        c = c + A @ chain.biases[j]
        A = A @ chain.weights[j]
    return concretize(A, c, x, eps, p, box)


def layer_relaxations(chain: Chain, x, eps, p, box=None):
    """Pre-activation bounds ``[(l, u), ...]`` of every activation and its relaxation lines
    ``[(a_lo, c_lo, a_up, c_up), ...]`` (each (n, d)) over the input set of each row."""
    n = x.shape[0]
    bounds, rels = [], []
    for j in range(len(chain.acts)):
        W, b = chain.weights[j], chain.biases[j]
        d = W.shape[0]
        if j == 0 and box is None:
            rad = eps[:, None] * _qnorm(W, dual_norm(p))[None, :]
            mid = x @ W.T + b
            l, u = mid - rad, mid + rad
        else:
            A = torch.cat([W, -W])[None].expand(n, 2 * d, W.shape[1])
            c = torch.cat([b, -b])[None].expand(n, 2 * d)
            lb = _lower_from(chain, rels, A, c, j, x, eps, p, box)
            l, u = lb[:, :d], -lb[:, d:]
            if j > 0:
                al, cl, au, cu = rels[j - 1]
                pl, pu = bounds[j - 1]
                hl = torch.minimum(al * pl + cl, al * pu + cl)
                hu = torch.maximum(au * pl + cu, au * pu + cu)
                il, iu = _ibp(W, b, hl, hu)
                l, u = torch.maximum(l, il), torch.minimum(u, iu)
        l, u = torch.minimum(l, u), torch.maximum(l, u)
        bounds.append((l, u))
        rels.append(relax(chain.acts[j], l, u))
    return bounds, rels


def output_lower(chain: Chain, rels, C, x, eps, p, box=None):
    """Lower bounds of ``C f(z)`` (C (n, m, K)) given the relaxations of :func:`layer_relaxations`."""
    L = len(chain.weights) - 1
    return _lower_from(chain, rels, C @ chain.weights[L], C @ chain.biases[L], L, x, eps, p, box)


def chunk_rows(chain: Chain, m: int = 1) -> int:
    """Rows per block so that one back-substitution block stays within the memory budget."""
    widest = max(max(W.shape) for W in chain.weights)
    return max(1, _BUDGET // (max(2 * widest, m) * widest))


def _prepare(net, shape, x, radius, box):
    import copy

    chain = to_chain(net, shape)
    dev = chain.device
    x = torch.as_tensor(x).to(dev, torch.float64).reshape(-1, chain.dim)
    radius = torch.as_tensor(radius).to(dev, torch.float64).reshape(-1)
    if radius.shape[0] != x.shape[0] or bool((radius < 0).any()) or not bool(torch.isfinite(radius).all()):
        raise ValueError(f"radius must hold {x.shape[0]} finite values >= 0")
    if x.shape[0]:
        net64 = copy.deepcopy(net).to(dev, torch.float64).eval()
        check_chain(chain, lambda z: net64(z.reshape((-1,) + tuple(shape))), x[:2])
    return chain, x, radius, as_box(box, x.shape[0], chain.dim, dev)


@torch.no_grad()
def neuron_bounds(net, shape, x, radius, *, p=2.0, box=None):
    """Pre-activation bounds of every activation layer inside ``{||z - x||_p <= radius} (n box)`` for the
    flattened inputs x (n, D): a list of ``(l, u)`` float64 tensors (n, d_k) (sound: every z of the set has
    l <= pre-activation <= u)."""
    chain, x, radius, box = _prepare(net, shape, x, radius, box)
    out = [([], []) for _ in chain.acts]
    step = chunk_rows(chain)
    for s in range(0, x.shape[0], step):
        sl = slice(s, s + step)
        bx = None if box is None else (box[0][sl], box[1][sl])
        bounds, _ = layer_relaxations(chain, x[sl], radius[sl], float(p), bx)
        for k, (l, u) in enumerate(bounds):
            out[k][0].append(l)
            out[k][1].append(u)
    return [(torch.cat(l), torch.cat(u)) for l, u in out]


@torch.no_grad()
def pair_lower_bounds(net, shape, x, I, J, radius, *, p=2.0, box=None) -> torch.Tensor:
    """Sound lower bounds (P,) float64 of ``min f_I(z) - f_J(z)`` over ``{||z - x||_p <= radius}`` (and
    ``lo <= z <= hi`` if ``box=(lo, hi)``), f = net(z.reshape((-1,) + shape)), for flattened inputs x (P, D),
    classes I, J (P,) and radii (P,) >= 0. Rows sharing x and radius share their layer bounds. Raises
    :class:`~marginlab.margins._chain.UnsupportedLayer` (a ValueError) for networks :func:`supports` refuses.
    """
    chain, x, radius, box = _prepare(net, shape, x, radius, box)
    P = x.shape[0]
    dev = chain.device
    I = torch.as_tensor(I, device=dev).long().reshape(-1)
    J = torch.as_tensor(J, device=dev).long().reshape(-1)
    K = chain.n_classes
    if I.shape[0] != P or J.shape[0] != P or (P and (int(I.min()) < 0 or int(J.min()) < 0
                                                    or int(I.max()) >= K or int(J.max()) >= K)):
        raise ValueError(f"I and J must hold {P} class indices in [0, {K - 1}]")
    out = torch.empty(P, dtype=torch.float64, device=dev)
    if P == 0:
        return out
    key = torch.cat([x, radius[:, None]] + ([] if box is None else [box[0], box[1]]), 1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    step = chunk_rows(chain)
    for s in range(0, uniq.shape[0], step):
        g = torch.arange(s, min(s + step, uniq.shape[0]), device=dev)
        rows = torch.nonzero((inv >= s) & (inv < s + step)).flatten()
        xg, rg = uniq[g, :chain.dim], uniq[g, chain.dim]
        bg = None if box is None else (uniq[g, chain.dim + 1:2 * chain.dim + 1], uniq[g, 2 * chain.dim + 1:])
        _, rels = layer_relaxations(chain, xg, rg, float(p), bg)
        loc = inv[rows] - s
        rels_r = [tuple(t[loc] for t in r) for r in rels]
        C = torch.zeros((rows.numel(), 1, K), dtype=torch.float64, device=dev)
        ar = torch.arange(rows.numel(), device=dev)
        C[ar, 0, I[rows]] += 1.0
        C[ar, 0, J[rows]] -= 1.0
        br = None if box is None else (box[0][rows], box[1][rows])
        out[rows] = output_lower(chain, rels_r, C, x[rows], radius[rows], float(p), br)[:, 0]
    return out
