"""``Linearized``: the first-order distance to each i/j boundary (seeds 003 §2, 004 §3),

    d_j(x) = (f_i(x) - f_j(x)) / ||grad_x f_i(x) - grad_x f_j(x)||_q,   1/p + 1/q = 1,

at the input or any hidden layer. Exact for linear models (and inside one linear region of a ReLU net);
otherwise an estimate, so the result has ``estimate=True``: ``margin`` holds min_j d_j and ``converged`` only
says whether the linear step point happens to verify as an exact boundary point.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import assemble, dual_norm, lp_norm, lp_step, pair_index
from .base import MarginMethod
from .verify import Float64Net, verify_rays

__all__ = ["Linearized"]


class Linearized(MarginMethod):
    """First-order l_p margin for every (sample, class) pair; one forward+backward pass in total."""

    name = "linearized"
    kind = "estimate"
    estimate = True

    def _solve(self, prob, rows, p, skipped, signed):
        S, I, J = pair_index(prob, rows)
        dev = prob.device
        Ii, Ji = torch.as_tensor(I, device=dev), torch.as_tensor(J, device=dev)
        x = prob.x0[torch.as_tensor(S, device=dev)]
        if len(S):
            # float64 throughout: the gap f_i - f_j of near-boundary samples cancels badly in float32
            f64 = Float64Net(prob)
            x = x.to(f64.device, torch.float64)
            Ii, Ji = Ii.to(f64.device), Ji.to(f64.device)
            z = x.clone().requires_grad_(True)
            with torch.enable_grad():
                lg64 = f64.net(z.reshape((-1,) + prob.shape))
                r = torch.arange(len(S), device=z.device)
                g = lg64[r, Ii] - lg64[r, Ji]
                (w,) = torch.autograd.grad(g.sum(), z)
            g = g.detach()
            wn = lp_norm(w, dual_norm(p))
            # zero gradient (dead ReLU region, saturated unit): no finite first-order distance, flagged NaN
            est = torch.where(wn > 0, g / torch.where(wn > 0, wn, torch.ones_like(wn)),
                              torch.full_like(g, float("nan")))
            pts = x.double() + lp_step(w.double(), g.double(), p)
            # the step point is exact where it is itself (to tol) the verified crossing on its ray
            v = verify_rays(f64, x, torch.where(torch.isfinite(pts), pts, x), Ii, tol=self.tol, p=p)
            ok = v.ok & ((v.dist - est).abs() <= self.tol * est.abs())
            pts, res, top2 = v.point, v.residual, v.top_two
            n_zero = int((~(wn > 0)).sum())
        else:
            est = torch.zeros(0)
            pts = torch.zeros((0, prob.dim))
            res = top2 = ok = torch.zeros(0, dtype=torch.bool)
            n_zero = 0
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=I, J=J,
                        dist=est.double().cpu().numpy(), points=pts.cpu().numpy(),
                        residual=res.double().cpu().numpy(), top2=top2.cpu().numpy(),
                        ok=ok.cpu().numpy(), iters=np.ones(len(S)), evals=np.ones(len(S)), seconds=0.0,
                        skipped=skipped, signed=signed, estimate=True, info={"zero_gradient": n_zero})
