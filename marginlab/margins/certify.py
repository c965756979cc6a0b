"""Certified lower bounds on the margin: the largest radius at which the linear bounds prove that no other
class can win anywhere in the ball.

For a sample x predicted i, phi(r) = min_j LB_j(r), where LB_j(r) is the sound lower bound of
f_i - f_j over the l_p ball of radius r (intersected with the input box, if any) from
:mod:`.linear_bounds`. phi(r) > 0 proves that every point within distance r is still classified i, so
the margin (seed 000 Eq. 1-3) is at least r. The search keeps a bracket [lo, hi] with phi(lo) > 0 and
phi(hi) <= 0 and shrinks it by regula falsi (two probes straddling the predicted root, so a linear
phi is bracketed to ``rtol`` in one step) with a bisection fallback; the reported bound is always a radius
at which phi > 0 was actually proved, so it is sound whatever the shape of phi.
"""

from __future__ import annotations

import numpy as np
import torch

from ._chain import UnsupportedLayer, check_supported, to_chain
from .box import box_for
from .linear_bounds import as_box, chunk_rows, layer_relaxations, output_lower

__all__ = ["certified_radius", "certify_result", "check_certifiable", "CERTIFIED_RTOL"]

CERTIFIED_RTOL = 1e-4  # certified = lower >= margin * (1 - CERTIFIED_RTOL)


def check_certifiable(net) -> None:
    """Raise ``ValueError`` naming the first layer the linear bounds cannot read."""
    try:
        check_supported(net)
    except UnsupportedLayer as exc:
        raise ValueError(f"certify=True: {exc}") from None


@torch.no_grad()
def _phi(chain, x, I, mask, r, p, box):
    """min over the masked classes j of the lower bound of f_I - f_j over the ball of radius r (n,)."""
    n, K = mask.shape
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    step = chunk_rows(chain, K)
    eye = torch.eye(K, dtype=torch.float64, device=x.device)
    for s in range(0, n, step):
        sl = slice(s, s + step)
        bx = None if box is None else (box[0][sl], box[1][sl])
        _, rels = layer_relaxations(chain, x[sl], r[sl], p, bx)
        C = eye[I[sl]][:, None, :] - eye[None]                   # rows e_i - e_j
        lb = output_lower(chain, rels, C, x[sl], r[sl], p, bx)
        out[sl] = torch.where(mask[sl], lb, torch.full_like(lb, float("inf"))).amin(1)
    return out


@torch.no_grad()
def certified_radius(chain, x, I, mask, hi, *, p=2.0, box=None, grow=None, rtol=1e-5, max_steps=40):
    """Largest proved radius per sample (n,) float64.

    x (n, D) float64, I (n,) predicted classes, mask (n, K) the classes j to beat, hi (n,) > 0 the radius
    to start from: a verified upper bound on the margin, or (rows with ``grow`` True) only a guess that
    is doubled while it is still certified. Stops when ``hi - lo <= rtol * hi``."""
    n = x.shape[0]
    dev = x.device
    grow = torch.zeros(n, dtype=torch.bool, device=dev) if grow is None else grow.to(dev)
    lo = torch.zeros(n, dtype=torch.float64, device=dev)
    hi = hi.to(dev, torch.float64).clone()
    if n == 0:
        return lo

    def phi(rows, r):
        bx = None if box is None else (box[0][rows], box[1][rows])
        return _phi(chain, x[rows], I[rows], mask[rows], r, p, bx)

    all_rows = torch.arange(n, device=dev)
    f_lo = phi(all_rows, lo)
    f_hi = phi(all_rows, hi)
    for _ in range(60):  # rows whose start is still certified: accept it, and double it where allowed
        up = (f_lo > 0) & (f_hi > 0)
        lo = torch.where(up, hi, lo)
        f_lo = torch.where(up, f_hi, f_lo)
        more = torch.nonzero(up & grow).flatten()
        if more.numel() == 0:
            break
        hi[more] = 2 * hi[more]
        f_hi[more] = phi(more, hi[more])
    active = (f_lo > 0) & (f_hi <= 0) & (hi - lo > rtol * hi)
    bisect = torch.zeros(n, dtype=torch.bool, device=dev)
    for _ in range(max_steps):
        rows = torch.nonzero(active).flatten()
        if rows.numel() == 0:
            break
        a, b, fa, fb = lo[rows], hi[rows], f_lo[rows], f_hi[rows]
        w = b - a
        t = torch.where(bisect[rows], a + 0.5 * w, a + w * fa / (fa - fb))
        t = torch.where(torch.isfinite(t), t, a + 0.5 * w)
        delta = 0.25 * rtol * b
        r1 = torch.clamp(t - delta, min=a + 1e-3 * w, max=b - 1e-3 * w)
        r2 = torch.clamp(t + delta, min=a + 1e-3 * w, max=b - 1e-3 * w)
        f = phi(torch.cat([rows, rows]), torch.cat([r1, r2]))
        f1, f2 = f[:rows.numel()], f[rows.numel():]
        # new lo: the largest proved radius; new hi: the smallest unproved one above it
        a2 = torch.where(f2 > 0, r2, torch.where(f1 > 0, r1, a))
        fa2 = torch.where(f2 > 0, f2, torch.where(f1 > 0, f1, fa))
        b2 = torch.where((f1 <= 0) & (r1 > a2), r1, torch.where((f2 <= 0) & (r2 > a2), r2, b))
        fb2 = torch.where((f1 <= 0) & (r1 > a2), f1, torch.where((f2 <= 0) & (r2 > a2), f2, fb))
        bisect[rows] = (b2 - a2) > 0.5 * w
        lo[rows], hi[rows], f_lo[rows], f_hi[rows] = a2, b2, fa2, fb2
        active[rows] = (b2 - a2) > rtol * b2
    return lo


def certify_result(prob, res, p, *, box=None, rtol=1e-5):
    """Fill ``res.lower`` (a proved lower bound on each sample's distance to the boundary, NaN where
    skipped; the larger one where the method already proved one) and ``res.certified`` (``verified and
    lower >= |margin| (1 - 1e-4)``) in place; returns res.

    The search runs in [0, |margin|] where the margin is verified (an upper bound), so there
    ``lower <= |margin|``; elsewhere (estimates, unverified samples) it starts from the estimate and grows.
    ``box`` = (lo, hi) restricts the inputs (the margin inside the box)."""
    chain = to_chain(prob.net, prob.shape, prob.device)
    dev = chain.device
    rows = np.nonzero(~res.skipped)[0]
    lower = np.full(len(res), np.nan)
    if len(rows):
        R = torch.as_tensor(rows, device=prob.x0.device)
        x = prob.x0[R].to(dev, torch.float64)
        I = torch.as_tensor(prob.pred[rows], device=dev)
        K = prob.n_classes
        mask = torch.zeros((len(rows), K), dtype=torch.bool, device=dev)
        mask[:, torch.as_tensor(prob.classes, device=dev)] = True
        mask[torch.arange(len(rows), device=dev), I] = False
        m = np.abs(res.margin[rows])
        ver = res.verified[rows] & np.isfinite(m) & (m > 0)
        scale = 1e-3 * (1.0 + torch.linalg.vector_norm(x, dim=1)).cpu().numpy()
        guess = np.where(np.isfinite(m) & (m > 0), m, scale)
        flat = box_for(box, prob)  # (D,) arrays, checked against the input shape and the samples
        bx = as_box(flat, len(rows), chain.dim, dev) if flat is not None else None
        lo = certified_radius(chain, x, I, mask, torch.as_tensor(guess), p=p, box=bx,
                              grow=torch.as_tensor(~ver), rtol=rtol)
        lower[rows] = lo.cpu().numpy()
    # a method that proves its own bound (mip) keeps the better of the two (both are sound)
    res.lower = np.fmax(lower, res.lower) if res.lower is not None else lower
    res.certified = res.verified & np.isfinite(lower) & (lower >= np.abs(res.margin) * (1 - CERTIFIED_RTOL))
    return res
