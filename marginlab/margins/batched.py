"""``BatchedSolver``: the fast exact-margin solver (our default).

Every (sample, other class j) pair of a chunk is one row of a single batch on the model's device. Each row
solves seed 000's CMP, min ||z - x||_2 s.t. g(z) = f_i(z) - f_j(z) = 0, by a sequential-quadratic step:
project x onto the linearisation of {g = 0} at the current iterate z,

    z+ = x - (g(z) + grad g(z) . (x - z)) / ||grad g(z)||^2 * grad g(z),

whose fixed points are exactly the KKT points of the CMP (g = 0 and z - x parallel to grad g). From z = x the
first step is a targeted DeepFool step (the warm start); later steps slide along the boundary
(refinement). For ReLU nets g is piecewise linear, so inside one linear region a step is exact; across
kinks the step is damped per row. The closest crossed iterate (g <= 0) of each row is finally projected onto
the boundary along the ray from x by a float64 root search and verified (|f_i - f_j| <= tol, i/j top-two).
A row whose point does not verify is not converged. Finished rows leave the batch (per-row masks), the
iteration count is bounded, and rows with zero gradient (dead ReLU regions, saturated outputs) are flagged
and stopped.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import Float64Net, assemble, pair_grad, pair_index, ray_root, verify
from .base import MarginMethod

__all__ = ["BatchedSolver"]


class BatchedSolver(MarginMethod):
    """Exact l2 margins for all (sample, class) pairs in one batch.

    Parameters
    ----------
    max_iter : int
        Bound on boundary-refinement iterations per pair (each is one forward+backward pass).
    xtol : float
        A pair stops when its step is below ``xtol * ||z - x||`` on the crossed side.
    overshoot : float
        Relative overshoot of each projection so iterates land just across the boundary (the final root
        search removes it).
    bundle : int
        Number of recent linearisations kept for steps onto kinks of piecewise-linear boundaries.
    deepfool_start : bool
        Also run untargeted DeepFool and keep its verified crossing where it is closer.
    restarts : int
        Starts per pair: x itself plus ``restarts - 1`` random perturbations (half the first-order distance).
    tol, chunk_size
        See :class:`MarginMethod`.
    """

    name = "batched"
    supported_p = (2.0,)

    def __init__(self, *, max_iter: int = 100, xtol: float = 1e-7, overshoot: float = 1e-5, tol: float = 1e-6,
                 chunk_size: int = 512, bundle: int = 4, deepfool_start: bool = True,
                 restarts: int = 3, seed: int = 0):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.max_iter = check_int(max_iter, "max_iter", min_value=1)
        self.xtol = check_float(xtol, "xtol", min_value=0.0, min_inclusive=False)
        self.overshoot = check_float(overshoot, "overshoot", min_value=0.0, max_value=1.0)
        self.bundle = check_int(bundle, "bundle", min_value=1)
        self.deepfool_start = bool(deepfool_start)
        self.restarts = check_int(restarts, "restarts", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)

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
        R = self.restarts
        if R > 1:
            # extra starts: x pushed a random fraction of the way along random directions, scaled by the
            # first-order distance, so refinement can reach boundary pieces a single start misses
            g0, w0, _ = pair_grad(prob, x, Ii, Ji)
            d_lin = (g0 / torch.linalg.vector_norm(w0, dim=1).clamp(min=1e-30)).clamp(min=0)
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            u = torch.randn((R - 1, P, x.shape[1]), generator=gen).to(dev, x.dtype)
            u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
            starts = torch.cat([x[None], x[None] + 0.5 * d_lin[None, :, None] * u], 0).reshape(R * P, -1)
            xs = x.repeat(R, 1)
            z, best_z, zero_grad, iters, evals = self._refine(prob, xs, Ii.repeat(R), Ji.repeat(R), z0=starts)
            z, best_z = z.reshape(R, P, -1), best_z.reshape(R, P, -1)
            bd = torch.linalg.vector_norm(best_z - xs.reshape(R, P, -1), dim=2)
            bd = torch.where(torch.isfinite(bd), bd, torch.full_like(bd, float("inf")))
            k = bd.argmin(0)
            ar = torch.arange(P, device=dev)
            z, best_z = z[k, ar], best_z[k, ar]
            zero_grad = zero_grad.reshape(R, P).all(0)
            iters = iters.reshape(R, P).amax(0)
            evals = evals.reshape(R, P).sum(0)
        else:
            z, best_z, zero_grad, iters, evals = self._refine(prob, x, Ii, Ji)
        info["zero_gradient"] = int(zero_grad.sum())
        # final projection onto the boundary along the ray from x, in float64, and verification
        f64 = Float64Net(prob)
        cand = torch.where(torch.isfinite(best_z[:, :1]), best_z, z)
        pts, t, lg, ev2, found = ray_root(f64, x, cand, Ii, Ji, self.tol)
        res, top2, ok = verify(lg, Ii.to(lg.device), Ji.to(lg.device), self.tol)
        ok &= found
        dist = torch.linalg.vector_norm(pts - x.to(pts.device, torch.float64), dim=1)
        dist = torch.where(ok, dist, torch.full_like(dist, float("inf")))
        # untargeted DeepFool as a second start: its verified crossing replaces the pair's point where it
        # is closer (guards against a pair's refinement ending in a worse local minimum)
        if self.deepfool_start:
            from .deepfool import DeepFool

            df = DeepFool(tol=self.tol)._solve(prob, rows, p, skipped, False)
            key = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(S, J))}
            sel = [(key[(int(s), int(df.boundary_class[s]))], s) for s in rows
                   if df.converged[s] and (int(s), int(df.boundary_class[s])) in key]
            if sel:
                kk = torch.as_tensor([a for a, _ in sel], device=dist.device)
                ss = np.asarray([b for _, b in sel])
                d_df = torch.as_tensor(df.margin[ss], device=dist.device, dtype=dist.dtype)
                win = d_df < dist[kk]
                kk, ss = kk[win], ss[win.cpu().numpy()]
                dist[kk] = d_df[win]
                pts[kk] = torch.as_tensor(df.point[ss].reshape(len(ss), prob.dim), device=pts.device,
                                          dtype=pts.dtype)
                res[kk] = torch.as_tensor(df.residual[ss], device=res.device, dtype=res.dtype)
                top2[kk] = True
                ok[kk] = True
        dist = torch.where(ok & torch.isfinite(dist), dist, torch.full_like(dist, float("nan")))
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=I, J=J, dist=dist.cpu().numpy(),
                        points=pts.cpu().numpy(), residual=res.cpu().numpy(), top2=top2.cpu().numpy(),
                        ok=ok.cpu().numpy(), iters=iters.cpu().numpy(), evals=(evals + ev2.to(evals.device)).cpu().numpy(),
                        seconds=0.0, skipped=skipped, signed=signed, info=info)

    def _refine(self, prob, x, I, J, z0=None):
        """SQP iterations with a bundle of linearisations; returns (last iterate, closest crossed iterate
        or NaN, zero-grad flags, iterations, evaluations) per pair.

        Why a bundle: for ReLU nets the nearest boundary point often lies on a kink, where consecutive
        single-plane projections jump between two linear pieces. When a step lands where the network is no
        longer linear (the predicted g differs from the observed g), the new plane is kept together with
        the previous ones and x is projected onto the intersection of the last ``bundle`` planes: at a kink
        between pieces A and B, the intersection of their planes is exactly the kink, so the step lands on
        it. A consistent step (prediction matches) resets the bundle to the current plane.
        """
        P, D = x.shape
        dev, dt = x.device, x.dtype
        m = self.bundle
        z = x.clone() if z0 is None else z0.clone()
        best_z = torch.full_like(x, float("nan"))
        best_d = torch.full((P,), float("inf"), device=dev, dtype=dt)
        Gb = torch.zeros((P, m, D), device=dev, dtype=dt)  # plane normals (most recent last)
        Bb = torch.zeros((P, m), device=dev, dtype=dt)      # plane offsets: Gb . z = Bb
        nb = torch.zeros(P, dtype=torch.int64, device=dev)
        g0 = torch.zeros(P, device=dev, dtype=dt)
        pred_g = torch.full((P,), float("nan"), device=dev, dtype=dt)
        active = torch.ones(P, dtype=torch.bool, device=dev)
        zero_grad = torch.zeros(P, dtype=torch.bool, device=dev)
        iters = torch.zeros(P, dtype=torch.int64, device=dev)
        evals = torch.zeros(P, dtype=torch.int64, device=dev)
        eye = torch.eye(m, device=dev, dtype=dt)
        for it in range(self.max_iter):
            A = torch.nonzero(active).flatten()
            if A.numel() == 0:
                break
            zA = z[A].detach().requires_grad_(True)
            with torch.enable_grad():
                lg = prob.f(zA)
                r = torch.arange(A.numel(), device=dev)
                g = lg[r, I[A]] - lg[r, J[A]]
                (grad,) = torch.autograd.grad(g.sum(), zA)
            g = g.detach()
            zA = zA.detach()
            evals[A] += 1
            iters[A] += 1
            if it == 0:
                with torch.no_grad():
                    lx = prob.f(x)
                g0[A] = (lx[torch.arange(P, device=dev), I] - lx[torch.arange(P, device=dev), J])[A]
            xA = x[A]
            dA = torch.linalg.vector_norm(zA - xA, dim=1)
            crossed = g <= 0
            better = crossed & (dA < best_d[A])
            best_z[A[better]] = zA[better]
            best_d[A[better]] = dA[better]
            gn2 = (grad * grad).sum(1)
            zg = ~(gn2 > 1e-30) | ~torch.isfinite(gn2)
            zero_grad[A[zg]] = True
            # plane at z: grad . w = grad . z - g - eps  (target slightly across: g = -eps)
            eps = self.overshoot * g0[A].abs()
            b_new = (grad * zA).sum(1) - g - eps
            # consistency of the last step: did the network behave linearly between the two iterates?
            scale = torch.clamp(g0[A].abs(), min=1e-12)
            consistent = (it == 0) | ((g - pred_g[A]).abs() <= 1e-3 * scale)
            nbA = torch.where(consistent, torch.ones_like(nb[A]), torch.clamp(nb[A] + 1, max=m))
            GA = torch.roll(Gb[A], -1, dims=1)
            BA = torch.roll(Bb[A], -1, dims=1)
            GA[:, -1] = grad
            BA[:, -1] = b_new
            # rows older than the bundle size are masked out of the projection
            keep = (torch.arange(m, device=dev)[None, :] >= (m - nbA)[:, None]).to(dt)
            Gm = GA * keep[:, :, None]
            Bm = BA * keep
            # projection of x onto {Gm w = Bm}: w = x - Gm^T (Gm Gm^T)^-1 (Gm x - Bm)
            lam = self._project(Gm, Bm, keep, xA, eye)
            # active set: a plane with a negative multiplier would hold the point back towards x; in the
            # local model {all planes <= -eps} it is inactive, so drop it (the newest plane always stays)
            neg = (lam < 0) & (keep > 0)
            neg[:, -1] = False
            if bool(neg.any()):
                keep = keep * (~neg).to(dt)
                Gm = GA * keep[:, :, None]
                Bm = BA * keep
                lam = self._project(Gm, Bm, keep, xA, eye)
                nbA = torch.where(neg.any(1), keep.sum(1).to(torch.int64), nbA)
            z_new = xA - (lam[:, :, None] * Gm).sum(1)
            # fall back to the single-plane step where the bundle system is degenerate
            single = xA - ((((grad * xA).sum(1) - b_new) / torch.where(zg, torch.ones_like(gn2), gn2))[:, None]) * grad
            bad = ~torch.isfinite(z_new).all(1)
            z_new = torch.where(bad[:, None], single, z_new)
            nbA = torch.where(bad, torch.ones_like(nbA), nbA)
            Gb[A], Bb[A], nb[A] = GA, BA, nbA
            pred_g[A] = -eps
            step = torch.linalg.vector_norm(z_new - zA, dim=1)
            small = step <= self.xtol * torch.clamp(dA, min=1e-12)
            done = zg | (small & crossed) | ~torch.isfinite(z_new).all(1)
            z[A] = torch.where(done[:, None], zA, z_new)
            active[A[done]] = False
        return z, best_z, zero_grad, iters, evals

    @staticmethod
    def _project(Gm, Bm, keep, xA, eye):
        """Multipliers of the projection of x onto {Gm w = Bm} (masked rows contribute nothing)."""
        gram = Gm @ Gm.transpose(1, 2)
        diag_scale = torch.clamp(gram.diagonal(dim1=1, dim2=2).amax(1), min=1e-30)[:, None, None]
        gram = gram + eye * ((1 - keep)[:, :, None] * diag_scale + 1e-10 * diag_scale)
        rhs = (Gm * xA[:, None, :]).sum(2) - Bm
        return torch.linalg.solve_ex(gram, rhs.unsqueeze(-1))[0].squeeze(-1)
