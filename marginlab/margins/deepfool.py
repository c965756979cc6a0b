"""``DeepFool``: batched multi-class DeepFool (Moosavi-Dezfooli et al. 2016) for any l_p, followed by the same
float64 projection onto the boundary and verification as the exact solvers.

Each step linearises every f_i - f_k at the current point, moves to the nearest linearised boundary
(l_p step, dual norm q) and stops once the predicted class changes. The crossing is then pulled back onto
the boundary along the segment from x. DeepFool is untargeted, so it finds one boundary (its class is
``boundary_class``); the result is an upper bound on the margin, often a few percent above it.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import assemble, dual_norm, lp_norm, lp_step
from .base import MarginMethod
from .verify import Float64Net, verify_rays

__all__ = ["DeepFool"]


class DeepFool(MarginMethod):
    """Parameters: ``max_iter`` (steps), ``overshoot`` (relative push past each linearised boundary)."""

    name = "deepfool"
    kind = "upper"

    def __init__(self, *, max_iter: int = 50, overshoot: float = 0.02, tol: float = 1e-6,
                 chunk_size: int = 512):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.max_iter = check_int(max_iter, "max_iter", min_value=1)
        self.overshoot = check_float(overshoot, "overshoot", min_value=0.0, max_value=1.0)

    def _solve(self, prob, rows, p, skipped, signed):
        dev = prob.device
        K = prob.n_classes
        n = len(rows)
        R = torch.as_tensor(rows, device=dev, dtype=torch.long)
        x = prob.x0[R]
        I = torch.as_tensor(prob.pred[rows], device=dev)
        allowed = torch.zeros(K, dtype=torch.bool, device=dev)
        allowed[torch.as_tensor(prob.classes, device=dev)] = True
        r_tot = torch.zeros_like(x)
        active = torch.ones(n, dtype=torch.bool, device=dev)
        iters = torch.zeros(n, dtype=torch.int64, device=dev)
        q = dual_norm(p)
        for _ in range(self.max_iter):
            A = torch.nonzero(active).flatten()
            if A.numel() == 0:
                break
            z = (x[A] + (1 + self.overshoot) * r_tot[A]).detach().requires_grad_(True)
            with torch.enable_grad():
                lg = prob.f(z)
                # jacobian of all logits for the active rows: K backward passes over the batch
                jac = torch.stack([torch.autograd.grad(lg[:, k].sum(), z, retain_graph=k < K - 1)[0]
                                   for k in range(K)], 1)
            lg = lg.detach()
            iters[A] += 1
            cur = lg.argmax(1)
            crossed = (cur != I[A]) & allowed[cur]
            active[A[crossed]] = False
            keep = ~crossed
            if not bool(keep.any()):
                break
            A2 = A[keep]
            lg2, jac2, i2 = lg[keep], jac[keep], I[A2]
            r = torch.arange(len(A2), device=dev)
            g = lg2[r, i2][:, None] - lg2                     # (m, K): f_i - f_k
            w = jac2[r, i2][:, None, :] - jac2                # (m, K, D)
            wn = lp_norm(w.reshape(-1, w.shape[-1]), q).reshape(g.shape)
            ratio = g.abs() / wn
            bad = ~allowed[None, :] | (torch.arange(K, device=dev)[None, :] == i2[:, None]) | ~(wn > 0)
            ratio = torch.where(bad, torch.full_like(ratio, float("inf")), ratio)
            l = ratio.argmin(1)
            stuck = ~torch.isfinite(ratio.gather(1, l[:, None]).squeeze(1))  # zero gradients everywhere
            step = lp_step(w[r, l], g[r, l], p)
            r_tot[A2] = torch.where(stuck[:, None], r_tot[A2], r_tot[A2] + step * (1 + 1e-4))
            active[A2[stuck]] = False
        end = x + (1 + self.overshoot) * r_tot
        with torch.no_grad():
            Jc = prob.f(end).argmax(1)
        f64 = Float64Net(prob)
        S = np.asarray(rows)
        J = Jc.cpu().numpy()
        valid = (J != prob.pred[rows])
        v = verify_rays(f64, x, end, I, tol=self.tol, p=p)
        ok = v.ok & torch.as_tensor(valid, device=v.ok.device)
        dist = torch.where(ok, v.dist, torch.full_like(v.dist, float("nan")))
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=prob.pred[rows], J=J,
                        cls=v.cls.cpu().numpy(), kind=self.kind,
                        dist=dist.cpu().numpy(), points=v.point.cpu().numpy(),
                        residual=v.residual.cpu().numpy(),
                        top2=v.top_two.cpu().numpy(), ok=ok.cpu().numpy(), iters=iters.cpu().numpy(),
                        evals=(iters * (K + 1) + v.evals.to(iters.device)).cpu().numpy(), seconds=0.0,
                        skipped=skipped, signed=signed)
