"""``BatchedSolver``: the fast exact-margin solver (our default).

Every (sample, other class j) pair of a chunk, times a few starts, is one row of a single batch on the model's
device. Each row solves seed 000's CMP, min ||z - x||_2 s.t. g(z) = f_i(z) - f_j(z) = 0, by a boundary walk
with a merit function and per-row step control:

* at the current point y (one forward+backward pass: g, w = grad g), the boundary is estimated along the ray
  from x by a Newton step, ``z_b = x + t (y - x)`` with ``t = 1 - g / (w . (y - x))``; its distance
  ``rho = t ||y - x||`` is the merit (exact on the boundary, and exact in one step where g is linear);
* the next point walks along the tangent plane at z_b towards x, ``y+ = z_b + alpha P_w(x - z_b)`` (P_w the
  projection onto the tangent space); with ``alpha = 1`` this is the projection of x onto the linearised
  boundary (an SQP / targeted-DeepFool step), whose fixed points are the KKT points (z - x parallel to w);
* a step is accepted when its merit decreases (alpha doubles, up to 1), otherwise it is rejected and
  alpha shrinks four-fold: at kinks of piecewise-linear (ReLU) boundaries the walk therefore slides onto
  the kink instead of oscillating between linear pieces, and it converges to a local minimum.

A row stops when it is stationary (angle between z - x and -w below ~1e-3 rad, i.e. relative distance
error ~1e-6), when alpha falls below ``min_step``, on zero gradient (dead ReLU regions, saturated outputs:
flagged) or after ``max_iter`` passes; finished rows leave the batch. Starts per pair: x itself (the first
step is the targeted DeepFool step), ``restarts - 1`` random perturbations of x (half the first-order
distance), and in low dimension (``dim <= 16``) points spread over ``n_directions`` directions around x, so
that the global boundary is found where several local minima exist. Extra starts of pairs that are clearly
not the nearest boundary of their sample are dropped after a few iterations. The best start of each pair is
projected onto the boundary along the ray from x in float64 and verified (|f_i - f_j| <= tol, i/j top-two);
if it fails, the next-best start is tried. A point that does not verify is not converged.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import Float64Net, assemble, pair_index, ray_root, verify
from .base import MarginMethod

__all__ = ["BatchedSolver"]


class BatchedSolver(MarginMethod):
    """Exact l2 margins for all (sample, class) pairs in one batch.

    Parameters
    ----------
    max_iter : int
        Bound on passes (forward+backward) per start of a pair.
    xtol : float
        Stationarity: a row stops once ``1 - cos(z - x, -grad g) <= xtol`` (relative distance error ~xtol).
    min_step : float
        A row stops once its step factor alpha falls below this (it cannot improve further).
    restarts : int
        Starts per pair in high dimension: x itself plus ``restarts - 1`` random perturbations.
    n_directions : int
        Starts per pair in low dimension (``dim <= 16``): x plus points on evenly spread directions.
    prune : float
        After ``prune_after`` iterations, extra starts of a pair whose merit exceeds ``prune`` times the best
        merit of its sample are dropped (the pair's best start always continues).
    deepfool_start : bool
        Kept for compatibility; the start at x already takes the targeted DeepFool step for every pair.
    bundle, overshoot
        Ignored (kept for compatibility with the previous SQP solver).
    tol, chunk_size
        See :class:`MarginMethod`.
    """

    name = "batched"
    supported_p = (2.0,)

    def __init__(self, *, max_iter: int = 30, xtol: float = 1e-5, min_step: float = 0.02, tol: float = 1e-6,
                 chunk_size: int = 512, restarts: int = 2, n_directions: int = 8, prune: float = 1.1,
                 prune_after: int = 4, seed: int = 0, deepfool_start: bool = True, bundle: int = 4,
                 overshoot: float = 1e-5, near: float = 0.05):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.max_iter = check_int(max_iter, "max_iter", min_value=1)
        self.xtol = check_float(xtol, "xtol", min_value=0.0, min_inclusive=False)
        self.min_step = check_float(min_step, "min_step", min_value=0.0, min_inclusive=False, max_value=1.0)
        self.restarts = check_int(restarts, "restarts", min_value=1)
        self.n_directions = check_int(n_directions, "n_directions", min_value=0)
        self.prune = check_float(prune, "prune", min_value=1.0)
        self.prune_after = check_int(prune_after, "prune_after", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)
        self.deepfool_start = bool(deepfool_start)
        self.bundle = check_int(bundle, "bundle", min_value=1)
        self.near = check_float(near, "near", min_value=0.0, min_inclusive=False)
        self.overshoot = check_float(overshoot, "overshoot", min_value=0.0, max_value=1.0)

    # ------------------------------------------------------------------------------------------------
    def _starts(self, prob, x, g0, w0):
        """Start points (R, P, D) for the pairs' rows x (P, D); g0, w0: g and its gradient at x."""
        P, D = x.shape
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        wn = torch.linalg.vector_norm(w0, dim=1)
        d_lin = g0.abs() / wn.clamp(min=1e-30)
        # zero gradient at x (dead ReLU region): spread the starts on the scale of x instead
        fallback = torch.linalg.vector_norm(x, dim=1).clamp(min=1.0)
        d_lin = torch.where((wn > 1e-30) & torch.isfinite(d_lin) & (d_lin > 0), d_lin, fallback)
        starts = [x[None]]
        if D <= 16 and self.n_directions > 0:
            R = self.n_directions
            if D == 1:
                u = torch.tensor([[1.0], [-1.0]]).repeat((R + 1) // 2, 1)[:R]
                u = u[:, None, :].expand(R, P, 1)
            elif D == 2:
                phase = torch.rand((1, P), generator=gen) * (2 * math.pi / R)
                ang = torch.arange(R, dtype=torch.float64)[:, None] * (2 * math.pi / R) + phase
                u = torch.stack([ang.cos(), ang.sin()], -1)
            else:
                u = torch.randn((R, P, D), generator=gen, dtype=torch.float64)
                u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
            u = u.to(x.device, x.dtype)
            starts.append(x[None] + d_lin[None, :, None] * u)
        elif self.restarts > 1:
            u = torch.randn((self.restarts - 1, P, D), generator=gen).to(x.device, x.dtype)
            u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
            starts.append(x[None] + 0.5 * d_lin[None, :, None] * u)
        return torch.cat(starts, 0)

    def _solve(self, prob, rows, p, skipped, signed):
        S, I, J = pair_index(prob, rows)
        P = len(S)
        dev = prob.device
        info = {"zero_gradient": 0}
        if P == 0:
            return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=I, J=J, dist=np.zeros(0),
                            points=np.zeros((0, prob.dim)), residual=np.zeros(0), top2=np.zeros(0, bool),
                            ok=np.zeros(0, bool), iters=np.zeros(0), evals=np.zeros(0), seconds=0.0,
                            skipped=skipped, signed=signed, info=info)
        Si = torch.as_tensor(S, device=dev)
        Ii = torch.as_tensor(I, device=dev)
        Ji = torch.as_tensor(J, device=dev)
        x = prob.x0[Si]
        g0, w0 = _grad(prob, x, Ii, Ji)
        z0 = self._starts(prob, x, g0, w0)
        R = z0.shape[0]
        rho, pts, zero_grad, iters, evals = self._walk(prob, x.repeat(R, 1), Ii.repeat(R), Ji.repeat(R),
                                                        z0.reshape(R * P, -1), Si.repeat(R), R, (g0, w0))
        rho, pts = rho.reshape(R, P), pts.reshape(R, P, -1)
        info["zero_gradient"] = int(zero_grad.reshape(R, P).all(0).sum())
        iters = iters.reshape(R, P).amax(0)
        evals = evals.reshape(R, P).sum(0)
        # final projection onto the boundary along the ray from x in float64, and verification: the best
        # start first, the next-best for pairs whose point does not verify
        f64 = Float64Net(prob)
        order = torch.argsort(rho, dim=0)
        ar = torch.arange(P, device=dev)
        x64 = x.to(f64.device, torch.float64)
        out_pts = torch.full((P, x.shape[1]), float("nan"), dtype=torch.float64, device=f64.device)
        res = torch.full((P,), float("nan"), dtype=torch.float64, device=f64.device)
        top2 = torch.zeros(P, dtype=torch.bool, device=f64.device)
        ok = torch.zeros(P, dtype=torch.bool, device=f64.device)
        todo = torch.isfinite(rho[order[0], ar])
        for k in range(R):
            sel = torch.nonzero(todo & torch.isfinite(rho[order[k], ar])).flatten()
            if sel.numel() == 0:
                break
            cand = pts[order[k, sel], sel]
            # land the end point just across the boundary so the first bracket usually holds
            cand = x[sel] + (1 + 1e-4) * (cand - x[sel])
            pt, _, lg, ev2, found = ray_root(f64, x[sel], cand, Ii[sel], Ji[sel], self.tol)
            r_, t2, ok_ = verify(lg, Ii[sel].to(lg.device), Ji[sel].to(lg.device), self.tol)
            ok_ &= found
            evals[sel] += ev2.to(evals.device)
            first = k == 0
            upd = ok_ | first
            s2 = sel.to(f64.device)[upd]
            out_pts[s2], res[s2], top2[s2], ok[s2] = pt[upd], r_[upd], t2[upd], ok_[upd]
            todo[sel[ok_.to(sel.device)]] = False
            if not bool(todo.any()) or k >= 3:
                break
        dist = torch.linalg.vector_norm(out_pts - x64, dim=1)
        dist = torch.where(ok & torch.isfinite(dist), dist, torch.full_like(dist, float("nan")))
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=I, J=J, dist=dist.cpu().numpy(),
                        points=out_pts.cpu().numpy(), residual=res.cpu().numpy(), top2=top2.cpu().numpy(),
                        ok=ok.cpu().numpy(), iters=iters.cpu().numpy(), evals=evals.cpu().numpy(),
                        seconds=0.0, skipped=skipped, signed=signed, info=info)

    # ------------------------------------------------------------------------------------------------
    def _walk(self, prob, x, I, J, z0, S, R, gw0=None):
        """Boundary walk of all rows; returns per row the best merit rho (inf where none), its boundary
        estimate (P, D), zero-gradient flags and iterations. The state is kept for the active rows only
        (compacted when rows finish), so finished rows cost nothing."""
        P, D = x.shape
        dev, dt = x.device, x.dtype
        inf = float("inf")
        Pp = P // R
        n_samples = int(S.max()) + 1 if S.numel() else 0
        out_rho = torch.full((P,), inf, device=dev, dtype=dt)
        out_z = torch.full_like(x, float("nan"))
        zero_grad = torch.zeros(P, dtype=torch.bool, device=dev)
        iters = torch.zeros(P, dtype=torch.int64, device=dev)
        # state of the active rows
        idx = torch.arange(P, device=dev)
        xs, y, Is, Js = x, z0.clone(), I, J
        zb = torch.zeros_like(x)                         # accepted boundary estimate
        wb = torch.zeros_like(x)                         # gradient there
        wbn2 = torch.ones(P, device=dev, dtype=dt)
        rho = torch.full((P,), inf, device=dev, dtype=dt)
        alpha = torch.ones(P, device=dev, dtype=dt)
        for it in range(self.max_iter):
            if idx.numel() == 0:
                break
            if it == 0 and gw0 is not None:
                # rows starting at x (the first Pp) reuse the gradient computed for the starts
                if P > Pp:
                    g, w = _grad(prob, y[Pp:], Is[Pp:], Js[Pp:])
                    g, w = torch.cat([gw0[0], g]), torch.cat([gw0[1], w])
                else:
                    g, w = gw0
            else:
                g, w = _grad(prob, y, Is, Js)
            iters[idx] += 1
            wn2 = torch.linalg.vector_norm(w, dim=1).square()
            zg = ~(wn2 > 1e-30) | ~torch.isfinite(wn2) | ~torch.isfinite(g)
            # boundary estimate: Newton step along the normal (exact where g is linear); it is trusted as a
            # merit only near the boundary (Newton correction small against the distance)
            corr = torch.where(zg, torch.zeros_like(g), g / torch.where(zg, torch.ones_like(wn2), wn2))
            zb_new = torch.addcmul(y, corr[:, None], w, value=-1.0)
            dz_new = zb_new - xs
            r_new = torch.linalg.vector_norm(dz_new, dim=1)
            delta = corr.abs() * torch.sqrt(wn2)
            near = ~zg & (delta <= self.near * r_new) & torch.isfinite(r_new)
            fresh = torch.isinf(rho)
            acc = near & (r_new < rho * (1 - 1e-9))
            a2 = acc[:, None]
            zb = torch.where(a2, zb_new, zb)
            wb = torch.where(a2, w, wb)
            dz = torch.where(a2, dz_new, zb - xs)
            wbn2 = torch.where(acc, wn2, wbn2)
            rho = torch.where(acc, r_new, rho)
            out_rho[idx] = rho
            al = torch.where(acc, torch.clamp(alpha * 2, max=1.0), alpha * 0.25)
            al = torch.where(fresh, torch.ones_like(al), al)
            alpha = al
            # stationarity of the accepted point: on the boundary and z - x antiparallel to w
            wdz = (wb * dz).sum(1)
            dzn = torch.linalg.vector_norm(dz, dim=1)
            cosang = -wdz / (torch.sqrt(wbn2) * dzn).clamp(min=1e-30)
            stat = acc & (delta <= self.xtol * r_new) & (1 - cosang <= self.xtol)
            small = ~fresh & (al < self.min_step)
            zfresh = zg & fresh & ~acc
            # next point: rows without an accepted point restore feasibility (Newton along the normal; from
            # x this is the targeted DeepFool step), the others walk along the tangent plane towards x:
            # y = zb + al P(x - zb) = x + (1 - al) dz + al (w . dz / |w|^2) w
            restore = fresh & ~acc
            coef = al * wdz / wbn2
            y_walk = torch.addcmul(torch.addcmul(xs, dz, (1 - al)[:, None]), wb, coef[:, None])
            y = torch.where(restore[:, None], zb_new, y_walk)
            bad = ~torch.isfinite(coef) & ~restore
            done = stat | small | zfresh | bad
            # drop extra starts of pairs that are clearly not the nearest boundary of their sample
            if it + 1 == self.prune_after and R > 1:
                rr = out_rho.reshape(R, Pp)
                best_pair = rr.amin(0)
                smin = torch.full((n_samples,), inf, device=dev, dtype=dt)
                smin.scatter_reduce_(0, S[:Pp], best_pair, reduce="amin")
                first_best = torch.zeros_like(rr, dtype=torch.bool)
                first_best[rr.argmin(0), torch.arange(Pp, device=dev)] = True
                far = best_pair > self.prune * smin[S[:Pp]]
                drop = (far[None] | ~torch.isfinite(rr)) & ~first_best
                done |= drop.reshape(-1)[idx]
            if bool(done.any()):
                zero_grad[idx[zfresh]] = True
                fin = idx[done]
                out_z[fin] = zb[done]
                keep = ~done
                idx, xs, y, Is, Js = idx[keep], xs[keep], y[keep], Is[keep], Js[keep]
                zb, wb, wbn2, rho, alpha = zb[keep], wb[keep], wbn2[keep], rho[keep], alpha[keep]
        out_z[idx] = zb
        out_z[~torch.isfinite(out_rho)] = float("nan")
        return out_rho, out_z, zero_grad, iters, iters.clone()


def _grad(prob, z, I, J):
    """g = f_i - f_j and its gradient at rows z (one forward+backward for the batch)."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        lg = prob.f(z)
        r = torch.arange(z.shape[0], device=z.device)
        g = lg[r, I] - lg[r, J]
        (grad,) = torch.autograd.grad(g.sum(), z)
    return g.detach(), grad.detach()
