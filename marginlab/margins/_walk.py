"""The boundary walk of :class:`~marginlab.margins.batched.BatchedSolver`: many rows, one batch.

Each row solves seed 000's CMP for one (sample x, class pair i/j, start): min ||z - x||_2 s.t.
g(z) = f_i(z) - f_j(z) = 0. At the current point y (one forward+backward pass: g, w = grad g) the boundary is
estimated by a Newton step along the normal, ``z_b = y - g w / |w|^2``; its distance ``rho = ||z_b - x||``
is the merit (exact on the boundary, and exact in one step where g is linear). It is trusted only near the
boundary (``|g| / |w| <= near * rho``); rows without such a point yet take plain Newton steps (from x: the
targeted DeepFool step). The next point walks along the tangent plane at z_b towards x,
``y+ = z_b + alpha P_w(x - z_b)``; alpha = 1 is the SQP step whose fixed points are the KKT points
(z - x parallel to w). A step is accepted when the merit decreases (alpha doubles, up to 1), otherwise
alpha shrinks four-fold; a rejected step usually crossed a kink of a piecewise-linear (ReLU) boundary, so
the next proposal projects x onto the intersection of the accepted plane and the plane at the rejected
point (the kink itself), which tangent steps on either piece would only zig-zag towards.

Every row ends with a :class:`Stop` reason: stationary (on the boundary to ``xtol`` and z - x antiparallel
to w), no descent (alpha fell below ``min_step``: no step improves, as at the kink of a local minimum),
zero gradient, lost (non-finite), pruned (an extra start clearly not needed) or budget (``max_iter``).
Finished rows leave the batch, so they cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch

__all__ = ["Stop", "WalkConfig", "walk", "pair_grad"]


class Stop(IntEnum):
    STATIONARY = 0
    NO_DESCENT = 1
    BUDGET = 2
    ZERO_GRAD = 3
    LOST = 4
    PRUNED = 5


@dataclass(frozen=True)
class WalkConfig:
    max_iter: int
    xtol: float
    min_step: float
    near: float
    prune: float
    prune_after: int
    box: tuple | None = None  # (lo, hi) flat tensors: every point of the walk stays inside


def pair_grad(f, z, I, J):
    """g = f_i - f_j and its gradient at rows z (one forward+backward for the whole batch: rows are
    independent, so the gradient of the sum is the per-row gradient)."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        lg = f(z)
        r = torch.arange(z.shape[0], device=z.device)
        g = lg[r, I] - lg[r, J]
        (grad,) = torch.autograd.grad(g.sum(), z)
    return g.detach(), grad.detach()


class _Rows:
    """State of the active rows (compacted as rows finish)."""

    def __init__(self, x, y, I, J):
        P = x.shape[0]
        dev, dt = x.device, x.dtype
        self.idx = torch.arange(P, device=dev)
        self.x, self.y, self.I, self.J = x, y, I, J
        self.zb = torch.zeros_like(x)                       # accepted boundary estimate
        self.wb = torch.zeros_like(x)                       # gradient there
        self.wbn2 = torch.ones(P, device=dev, dtype=dt)
        self.rho = torch.full((P,), float("inf"), device=dev, dtype=dt)
        self.delta = torch.full((P,), float("inf"), device=dev, dtype=dt)  # Newton correction at zb
        self.alpha = torch.ones(P, device=dev, dtype=dt)
        self.wr = torch.zeros_like(x)                       # linearisation at the last rejected point
        self.rr = torch.zeros(P, device=dev, dtype=dt)      # its offset relative to x: g + wr . (x - y)
        self.last2 = torch.zeros(P, dtype=torch.bool, device=dev)  # last proposal was a two-plane step
        self.polish = torch.zeros(P, dtype=torch.bool, device=dev)  # the next point is zb itself

    _FIELDS = ("idx", "x", "y", "I", "J", "zb", "wb", "wbn2", "rho", "delta", "alpha", "wr", "rr", "last2",
               "polish")

    def keep(self, mask):
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[mask])


def walk(f, x, I, J, z0, S, R, cfg: WalkConfig, gw0=None):
    """Walk all rows (R starts x P pairs, start-major) from ``z0``. Returns per row the best merit rho (inf
    where none), its boundary estimate (NaN where none), the :class:`Stop` reason and the iterations.
    ``gw0`` (g, w) at x for the first P rows when they start at x (saves one pass)."""
    P, D = x.shape
    dev, dt = x.device, x.dtype
    out_rho = torch.full((P,), float("inf"), device=dev, dtype=dt)
    out_z = torch.full_like(x, float("nan"))
    reason = torch.full((P,), int(Stop.BUDGET), dtype=torch.int8, device=dev)
    iters = torch.zeros(P, dtype=torch.int64, device=dev)
    st = _Rows(x, z0.clone(), I, J)
    for it in range(cfg.max_iter):
        if st.idx.numel() == 0:
            break
        g, w = _first_grad(f, st, gw0, P // R) if it == 0 and gw0 is not None else pair_grad(f, st.y, st.I,
                                                                                            st.J)
        iters[st.idx] += 1
        why = _step(st, g, w, cfg)
        out_rho[st.idx] = st.rho
        if it + 1 == cfg.prune_after and R > 1:
            why = torch.where((why < 0) & _prunable(out_rho, S, R, cfg.prune)[st.idx],
                              torch.full_like(why, int(Stop.PRUNED)), why)
        done = why >= 0
        if bool(done.any()):
            fin = st.idx[done]
            out_z[fin] = st.zb[done]
            reason[fin] = why[done].to(torch.int8)
            st.keep(~done)
    out_z[st.idx] = st.zb
    out_z[~torch.isfinite(out_rho)] = float("nan")
    return out_rho, out_z, reason, iters


def _first_grad(f, st, gw0, Pp):
    """Rows starting at x (the first Pp) reuse the gradient computed for the starts."""
    if st.y.shape[0] > Pp:
        g, w = pair_grad(f, st.y[Pp:], st.I[Pp:], st.J[Pp:])
        return torch.cat([gw0[0], g]), torch.cat([gw0[1], w])
    return gw0


def _step(st: _Rows, g, w, cfg: WalkConfig):
    """One iteration for every active row: accept or reject the boundary estimate at y, test stationarity,
    propose the next point. Returns per row the :class:`Stop` reason (-1: continue)."""
    xs = st.x
    wn2 = torch.linalg.vector_norm(w, dim=1).square()
    zg = ~(wn2 > 1e-30) | ~torch.isfinite(wn2) | ~torch.isfinite(g)
    corr = torch.where(zg, torch.zeros_like(g), g / torch.where(zg, torch.ones_like(wn2), wn2))
    if cfg.box is None:
        zb_new = torch.addcmul(st.y, corr[:, None], w, value=-1.0)
        delta = corr.abs() * torch.sqrt(wn2)
    else:  # the nearest point of the linearised boundary inside the box
        zb_new = plane_box(st.y, w, (w * st.y).sum(1) - g, cfg.box)
        delta = torch.linalg.vector_norm(zb_new - st.y, dim=1)
    dz_new = zb_new - xs
    r_new = torch.linalg.vector_norm(dz_new, dim=1)
    near = ~zg & (delta <= cfg.near * r_new) & torch.isfinite(r_new)
    fresh = torch.isinf(st.rho)
    # an improvement smaller than the estimate's own correction, from an estimate ten times less exact than
    # the accepted one, is not evidence of descent (it is how a walk cycles between the two sides of a kink):
    # it counts as a rejection, so alpha shrinks and the kink step is tried
    dubious = (delta > 10 * st.delta) & (r_new > st.rho - delta)
    better = near & (r_new < st.rho * (1 - 1e-9)) & ~dubious
    # a merit from a Newton estimate off the boundary can be optimistic, by up to about its correction
    # delta (a curved boundary, or a kink between the point and the estimate): an estimate ten times nearer
    # the boundary that is worse by less than that replaces it without counting as a rejection (each
    # replacement divides delta by ten, so this ends; exact estimates, delta ~ 0, never trigger it)
    anchor = near & ~better & ~fresh & (delta < 0.1 * st.delta) & (r_new < st.rho + st.delta)
    acc = better | anchor
    a2 = acc[:, None]
    st.zb = torch.where(a2, zb_new, st.zb)
    st.wb = torch.where(a2, w, st.wb)
    dz = torch.where(a2, dz_new, st.zb - xs)
    st.wbn2 = torch.where(acc, wn2, st.wbn2)
    st.rho = torch.where(acc, r_new, st.rho)
    st.delta = torch.where(acc, delta, st.delta)
    shrunk = torch.where(anchor, st.alpha, st.alpha * 0.25)
    al = torch.where(better, torch.clamp(st.alpha * 2, max=1.0), shrunk)
    st.alpha = torch.where(fresh, torch.ones_like(al), al)
    # stationarity of the accepted point: on the boundary and z - x antiparallel to w
    wdz = (st.wb * dz).sum(1)
    dzn = torch.linalg.vector_norm(dz, dim=1)
    cosang = -wdz / (torch.sqrt(st.wbn2) * dzn).clamp(min=1e-30)
    small = ~fresh & (st.alpha < cfg.min_step)
    # no step descends any more, but the accepted point is a Newton estimate off the boundary (its merit
    # uncertain by ~delta): evaluate at the point itself once, so that a nearly exact estimate replaces it
    # (the anchor rule) before the row stops
    polish = small & ~st.polish & (st.delta > cfg.xtol * st.rho)
    small = small & ~polish
    st.polish = polish
    zfresh = zg & fresh & ~acc
    restore = fresh & ~acc
    coef = st.alpha * wdz / st.wbn2
    if cfg.box is None:
        stat = acc & (delta <= cfg.xtol * r_new) & (1 - cosang <= cfg.xtol)
        # y = zb + al P(x - zb) = x + (1 - al) dz + al (w . dz / |w|^2) w
        y_walk = torch.addcmul(torch.addcmul(xs, dz, (1 - st.alpha)[:, None]), st.wb, coef[:, None])
        y_walk = _kink_step(st, g, w, wn2, acc, fresh, zg, wdz, y_walk)
    else:  # towards the projection of x onto the tangent plane inside the box (KKT with the box)
        target = plane_box(xs, st.wb, (st.wb * st.zb).sum(1), cfg.box)
        step = target - st.zb
        stat = acc & (delta <= cfg.xtol * r_new) & (
            torch.linalg.vector_norm(step, dim=1) <= (2 * cfg.xtol) ** 0.5 * r_new)
        y_walk = torch.addcmul(st.zb, step, st.alpha[:, None])
    st.y = torch.where(restore[:, None], zb_new, torch.where(polish[:, None], st.zb, y_walk))
    lost = ~torch.isfinite(coef) & ~restore
    why = torch.full_like(g, -1, dtype=torch.int64)
    for mask, code in ((lost, Stop.LOST), (zfresh, Stop.ZERO_GRAD), (small, Stop.NO_DESCENT),
                       (stat, Stop.STATIONARY)):
        why = torch.where(mask, torch.full_like(why, int(code)), why)
    return why


def plane_box(p0, w, c, box, iters: int = 40):
    """Rows: the point nearest to p0 on the plane ``w . z = c`` inside the box (lo, hi): ``clip(p0 - lam w)``
    with ``w . clip(p0 - lam w) = c``, found by bisection on lam (the left side does not increase with lam).
    Where the plane misses the box, the box point nearest to it."""
    lo, hi = box
    nz = w != 0
    safe = torch.where(nz, w, torch.ones_like(w))
    b1 = torch.where(nz, (p0 - lo) / safe, torch.zeros_like(w))
    b2 = torch.where(nz, (p0 - hi) / safe, torch.zeros_like(w))
    lam_lo = torch.minimum(b1, b2).amin(1).clamp(max=0.0)
    lam_hi = torch.maximum(b1, b2).amax(1).clamp(min=0.0)
    for _ in range(iters):
        mid = 0.5 * (lam_lo + lam_hi)
        f = (w * torch.minimum(torch.maximum(p0 - mid[:, None] * w, lo), hi)).sum(1)
        up = f > c
        lam_lo, lam_hi = torch.where(up, mid, lam_lo), torch.where(up, lam_hi, mid)
    lam = 0.5 * (lam_lo + lam_hi)
    return torch.minimum(torch.maximum(p0 - lam[:, None] * w, lo), hi)


def _kink_step(st: _Rows, g, w, wn2, acc, fresh, zg, wdz, y_walk):
    """After a rejected step, project x onto the intersection of the accepted plane and the plane at the
    rejected point (the kink), unless the last proposal already was such a step."""
    xs = st.x
    rej = ~acc & ~fresh & ~zg
    st.wr = torch.where(rej[:, None], w, st.wr)
    st.rr = torch.where(rej, g - (w * (st.y - xs)).sum(1), st.rr)
    ab = (st.wb * st.wr).sum(1)
    bb = torch.where(rej, wn2, (st.wr * st.wr).sum(1))
    det = st.wbn2 * bb - ab * ab
    ra = -wdz
    use2 = rej & ~st.last2 & (det > 1e-4 * st.wbn2 * bb)
    lam1 = (bb * ra - ab * st.rr) / det
    lam2 = (st.wbn2 * st.rr - ab * ra) / det
    use2 &= torch.isfinite(lam1) & torch.isfinite(lam2)
    st.last2 = use2
    if not bool(use2.any()):
        return y_walk
    y2 = xs - lam1[:, None] * st.wb - lam2[:, None] * st.wr
    st.alpha = torch.where(use2, st.alpha * 4, st.alpha)  # the two-plane step does not consume a reduction
    return torch.where(use2[:, None], y2, y_walk)


def _prunable(out_rho, S, R, prune):
    """Extra starts (R > 1) that need not continue: of pairs clearly farther than their sample's nearest
    boundary (merit > ``prune`` times the sample's best), or far behind their own pair's best start.
    A pair's best start always continues."""
    Pp = out_rho.numel() // R
    rr = out_rho.reshape(R, Pp)
    best_pair = rr.amin(0)
    n_samples = int(S.max()) + 1 if S.numel() else 0
    smin = torch.full((n_samples,), float("inf"), device=rr.device, dtype=rr.dtype)
    smin.scatter_reduce_(0, S[:Pp], best_pair, reduce="amin")
    first_best = torch.zeros_like(rr, dtype=torch.bool)
    first_best[rr.argmin(0), torch.arange(Pp, device=rr.device)] = True
    far = best_pair > prune * smin[S[:Pp]]
    behind = rr > 1.5 * best_pair[None]
    return ((far[None] | behind | ~torch.isfinite(rr)) & ~first_best).reshape(-1)
