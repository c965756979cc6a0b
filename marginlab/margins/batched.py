"""``BatchedSolver``: the fast exact-margin solver (our default).

Every (sample, other class j) pair of a chunk, times a few starts, is one row of a single batch on the model's
device. Each row solves seed 000's CMP, min ||z - x||_2 s.t. g(z) = f_i(z) - f_j(z) = 0, by a boundary walk
with a merit function and per-row step control:

* at the current point y (one forward+backward pass: g, w = grad g), the boundary is estimated by a Newton
  step along the normal, ``z_b = y - g w / |w|^2``; its distance ``rho = ||z_b - x||`` is the merit (exact
  on the boundary, and exact in one step where g is linear). It is trusted only near the boundary
  (``|g| / |w| <= near * rho``); rows without such a point yet take plain Newton steps (from x: the
  targeted DeepFool step);
* the next point walks along the tangent plane at z_b towards x, ``y+ = z_b + alpha P_w(x - z_b)`` (P_w the
  projection onto the tangent space); with ``alpha = 1`` this is the projection of x onto the linearised
  boundary (an SQP / targeted-DeepFool step), whose fixed points are the KKT points (z - x parallel to w);
* a step is accepted when its merit decreases (alpha doubles, up to 1), otherwise it is rejected and
  alpha shrinks four-fold: at kinks of piecewise-linear (ReLU) boundaries the walk therefore slides onto
  the kink instead of oscillating between linear pieces, and it converges to a local minimum.

A rejected walk step usually crossed a kink; the next proposal then projects x onto the intersection
of the accepted plane and the plane at the rejected point (the kink itself), which tangent steps on either
piece would only zig-zag towards.

A row stops when it is stationary (on the boundary to ``xtol`` and 1 - cos(z - x, -w) <= ``xtol``), when
alpha falls below ``min_step``, on zero gradient (dead ReLU regions, saturated outputs: flagged) or after
``max_iter`` passes; finished rows leave the batch (the state is compacted). Starts per pair: x itself (the
first step is the targeted DeepFool step) and ``restarts - 1`` random perturbations of x (half the
first-order distance); in low dimension (``dim <= 3``, the playground) instead ``n_directions`` evenly spread
rays, each started at its first class change found by a forward-only scan, plus half as many points at the
first-order distance, so that the global boundary is found where several local minima exist (likely, not
guaranteed). After ``prune_after`` iterations, extra starts of pairs that are clearly not the nearest
boundary of their sample, or far behind their pair's best start, are dropped. The best start of each pair
is projected onto the boundary along the ray from x in float64 and verified (|f_i - f_j| <= tol, i/j
top-two); if it fails, the next-best start is tried. A point that does not verify is not converged.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import Float64Net, assemble, no_tf32, pair_index, ray_root, verify
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
        Ray directions per pair in low dimension (``dim <= 3``); 0 uses ``restarts`` there too.
    prune : float
        After ``prune_after`` iterations, extra starts of a pair whose merit exceeds ``prune`` times the best
        merit of its sample are dropped (the pair's best start always continues).
    near : float
        A point is near the boundary (its merit is trusted) when its Newton correction is at most ``near``
        times its distance.
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
                 chunk_size: int = 512, restarts: int = 2, n_directions: int = 16, prune: float = 1.1,
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
        if D <= 3 and self.n_directions > 0:
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
            # each direction twice: at the first class change along the ray, and at the first-order distance
            starts.append(self._scan(prob, x, u, d_lin))
            starts.append(x[None] + d_lin[None, :, None] * u[::2])
        elif self.restarts > 1:
            u = torch.randn((self.restarts - 1, P, D), generator=gen).to(x.device, x.dtype)
            u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
            starts.append(x[None] + 0.5 * d_lin[None, :, None] * u)
        return torch.cat(starts, 0)

    @torch.no_grad()
    def _scan(self, prob, x, u, d_lin, n_radii: int = 24, reach: float = 4.0):
        """Low dimension: start points on rays x + r u (u: (R, P, D)) at the first radius (of ``n_radii`` up
        to ``reach`` times the first-order distance) where the predicted class changes (forward passes only),
        so that each direction starts next to the boundary piece it sees first; rays without a change start
        at the first-order distance."""
        R, P, D = u.shape
        rad = torch.linspace(reach / n_radii, reach, n_radii, device=x.device, dtype=x.dtype)
        # (n, R, P, D)
        pts = x[None, None] + (rad[:, None, None, None] * d_lin[None, None, :, None]) * u[None]
        pred = prob.f(x).argmax(1)
        cls = prob.f(pts.reshape(-1, D)).argmax(1).reshape(n_radii, R, P)
        hit = cls != pred[None, None, :]
        k = torch.where(hit.any(0), hit.to(torch.int8).argmax(0), torch.full((R, P), -1, device=x.device))
        # midpoint of the bracket [previous radius, first radius with another class]
        r_hit = torch.where(k >= 0, rad[k.clamp(min=0)] - 0.5 * rad[0], torch.ones_like(k, dtype=x.dtype))
        return x[None] + (r_hit * d_lin[None, :])[:, :, None] * u

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
        # tiny margins (relative to |x|): float32 iterates fix the direction only to ~eps32 |x| / dist, so
        # take one float64 projection step from the verified point and keep it where it verifies closer
        tiny = torch.nonzero(
            ok & (dist < 1e-2 * torch.linalg.vector_norm(x64, dim=1).clamp(min=1.0))).flatten()
        if tiny.numel():
            zt = out_pts[tiny].clone().requires_grad_(True)
            i64, j64 = Ii[tiny].to(f64.device), Ji[tiny].to(f64.device)
            with torch.enable_grad(), no_tf32():
                lgt = f64.net(zt.reshape((-1,) + f64.shape))
                ar_t = torch.arange(tiny.numel(), device=f64.device)
                gt = lgt[ar_t, i64] - lgt[ar_t, j64]
                (wt,) = torch.autograd.grad(gt.sum(), zt)
            gt, zt = gt.detach(), zt.detach()
            xt = x64[tiny]
            zq = xt - ((gt + (wt * (xt - zt)).sum(1)) / (wt * wt).sum(1).clamp(min=1e-300))[:, None] * wt
            cand = xt + (1 + 1e-10) * (zq - xt)
            fine = torch.isfinite(cand).all(1)
            cand = torch.where(fine[:, None], cand, out_pts[tiny])
            pt, _, lg, ev2, found = ray_root(f64, xt, cand, i64, j64, self.tol)
            r_, t2, ok_ = verify(lg, i64, j64, self.tol)
            d2 = torch.linalg.vector_norm(pt - xt, dim=1)
            win = ok_ & found & fine & (d2 < dist[tiny])
            tw = tiny[win]
            out_pts[tw], res[tw], top2[tw], dist[tw] = pt[win], r_[win], t2[win], d2[win]
            evals[tiny.to(evals.device)] += 1 + ev2.to(evals.device)
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
        wr = torch.zeros_like(x)                         # linearisation at the last rejected point
        rr_ = torch.zeros(P, device=dev, dtype=dt)       # its offset relative to x: g + wr . (x - y)
        last2 = torch.zeros(P, dtype=torch.bool, device=dev)   # last proposal was a two-plane step
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
            # a rejected walk step usually crossed a kink of the piecewise-linear boundary: next, project x
            # onto the intersection of the accepted plane and the plane at the rejected point (the kink),
            # which a tangent step on either piece would only zig-zag towards
            rej = ~acc & ~fresh & ~zg
            wr = torch.where(rej[:, None], w, wr)
            rr_ = torch.where(rej, g - (w * (y - xs)).sum(1), rr_)
            ab = (wb * wr).sum(1)
            bb = torch.where(rej, wn2, (wr * wr).sum(1))
            det = wbn2 * bb - ab * ab
            ra = -wdz
            use2 = rej & ~last2 & (det > 1e-4 * wbn2 * bb)
            lam1 = (bb * ra - ab * rr_) / det
            lam2 = (wbn2 * rr_ - ab * ra) / det
            use2 &= torch.isfinite(lam1) & torch.isfinite(lam2)
            if bool(use2.any()):
                y2 = xs - lam1[:, None] * wb - lam2[:, None] * wr
                y_walk = torch.where(use2[:, None], y2, y_walk)
                # the two-plane step does not consume a step reduction
                alpha = torch.where(use2, alpha * 4, alpha)
            last2 = use2
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
                # and starts of any pair that are far behind the pair's best start
                behind = rr > 1.5 * best_pair[None]
                drop = (far[None] | behind | ~torch.isfinite(rr)) & ~first_best
                done |= drop.reshape(-1)[idx]
            if bool(done.any()):
                zero_grad[idx[zfresh]] = True
                fin = idx[done]
                out_z[fin] = zb[done]
                keep = ~done
                idx, xs, y, Is, Js = idx[keep], xs[keep], y[keep], Is[keep], Js[keep]
                zb, wb, wbn2, rho, alpha = zb[keep], wb[keep], wbn2[keep], rho[keep], alpha[keep]
                wr, rr_, last2 = wr[keep], rr_[keep], last2[keep]
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
