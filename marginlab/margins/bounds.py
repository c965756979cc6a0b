"""Lower bounds on the margin.

* :class:`LipschitzEstimate` — seed 002 §4.1, Thm 2 (Hein & Andriushchenko), Eq. 3:
  d(x) >= min{ min_k (f_i - f_k)(x) / L_k, r } with L_k the local Lipschitz constant of f_i - f_k on the
  ball B(x, r). L_k is *estimated* as the largest gradient dual norm over random points of the ball, so the
  result is an estimate, not a guarantee (seed 002 used r = 5 and 50 x 1024 samples).
* :class:`CrownBound` — a *certified* lower bound for MLP-like networks: linear relaxations of every
  activation (CROWN, Zhang et al. 2018; :mod:`.linear_bounds`) bound f_i - f_j over the l_p ball, and a
  search finds the largest radius at which every f_i - f_j stays positive. Computed in float64. The same
  machinery gives every method's ``certify=True`` lower bound (:mod:`.certify`).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_float, check_int
from ._chain import to_chain
from ._core import assemble, dual_norm, lp_norm, pair_index, sample_streams
from .base import MarginMethod

__all__ = ["LipschitzEstimate", "CrownBound"]


def _bound_result(prob, rows, p, skipped, signed, name, S, I, J, dist, tol, info=None):
    P = len(S)
    return assemble(prob, method=name, p=p, tol=tol, S=S, I=I, J=J, dist=dist,
                    points=np.full((P, prob.dim), np.nan),
                    residual=np.full(P, np.nan), top2=np.zeros(P, bool), ok=np.zeros(P, bool),
                    iters=np.ones(P), evals=np.ones(P), seconds=0.0, skipped=skipped, signed=signed,
                    estimate=True, info=info)


class LipschitzEstimate(MarginMethod):
    """Seed 002's sampled local-Lipschitz estimate (``radius`` r, ``n_samples`` points per sample)."""

    name = "lipschitz"
    kind = "estimate"
    estimate = True

    def __init__(self, *, radius: float = 5.0, n_samples: int = 1024, batch: int = 256, seed: int = 0,
                 tol: float = 1e-6, chunk_size: int = 64):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.radius = check_float(radius, "radius", min_value=0.0, min_inclusive=False)
        self.n_samples = check_int(n_samples, "n_samples", min_value=1)
        self.batch = check_int(batch, "batch", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)

    def _solve(self, prob, rows, p, skipped, signed):
        S, I, J = pair_index(prob, rows)
        K, D, n = prob.n_classes, prob.dim, len(rows)
        dev = prob.device
        q = dual_norm(p)
        streams = sample_streams(prob, rows, self.seed)
        x = prob.x0[torch.as_tensor(rows, device=dev, dtype=torch.long)]
        pred = torch.as_tensor(prob.pred[rows], device=dev)
        L = torch.zeros((n, K), device=dev, dtype=x.dtype)
        for start in range(0, self.n_samples, self.batch):
            m = min(self.batch, self.n_samples - start)
            u = torch.as_tensor(np.stack([g.standard_normal((m, D), dtype=np.float32) for g in streams]))
            u = u.to(dev, x.dtype)
            # uniform in the l2 ball (seed 002 samples the ball of radius r around x)
            r01 = np.stack([g.random((m, 1), dtype=np.float32) for g in streams])
            rad = self.radius * torch.as_tensor(r01).to(dev, x.dtype) ** (1.0 / D)
            z = (x[:, None, :] + rad * u / torch.linalg.vector_norm(u, dim=2, keepdim=True)).reshape(n * m, D)
            z.requires_grad_(True)
            with torch.enable_grad():
                lg = prob.f(z)
                jac = torch.stack([torch.autograd.grad(lg[:, k].sum(), z, retain_graph=k < K - 1)[0]
                                   for k in range(K)], 1).reshape(n, m, K, D)
            gi = jac[torch.arange(n, device=dev), :, pred]  # (n, m, D)
            w = gi[:, :, None, :] - jac
            L = torch.maximum(L, lp_norm(w.reshape(-1, D), q).reshape(n, m, K).amax(1))
        pos = {int(s): k for k, s in enumerate(rows)}
        ridx = np.asarray([pos[int(s)] for s in S], dtype=np.int64)
        lg0 = prob.logits.double().cpu().numpy()
        gap = lg0[S, I] - lg0[S, J]
        Lp = L.double().cpu().numpy()[ridx, J]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.minimum(np.where(Lp > 0, gap / Lp, np.inf), self.radius)
        return _bound_result(prob, rows, p, skipped, signed, self.name, S, I, J, d, self.tol,
                             {"radius": self.radius, "n_samples": self.n_samples})


class CrownBound(MarginMethod):
    """Certified l_p lower bound for MLP-like networks with any supported activation (ReLU, leaky ReLU, ELU,
    tanh, sigmoid, GELU, softplus; see :mod:`.linear_bounds`): the largest radius at which the linear bounds
    prove every f_i - f_j positive (:func:`.certify.certified_radius`), searched below a verified DeepFool
    upper bound to relative precision ``rtol``. ``margin`` and ``lower`` both hold the bound."""

    name = "crown"
    kind = "lower"
    estimate = True

    def __init__(self, *, rtol: float = 1e-5, steps: int | None = None, tol: float = 1e-6,
                 chunk_size: int = 64):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.rtol = check_float(rtol, "rtol", min_value=0.0, min_inclusive=False, max_value=1.0)
        # ``steps`` (bisection steps of the former ReLU-only version) sets the precision 2**-steps
        self.steps = None if steps is None else check_int(steps, "steps", min_value=1)

    def _solve(self, prob, rows, p, skipped, signed):
        from .certify import certified_radius, check_certifiable
        from .deepfool import DeepFool

        check_certifiable(prob.net)
        chain = to_chain(prob.net, prob.shape, prob.device)
        S, I, J = pair_index(prob, rows)
        K, dev = prob.n_classes, chain.device
        x = prob.x0[torch.as_tensor(rows, dtype=torch.long, device=prob.device)].to(dev, torch.float64)
        pred = torch.as_tensor(prob.pred[rows], device=dev)
        mask = torch.zeros((len(rows), K), dtype=torch.bool, device=dev)
        mask[:, torch.as_tensor(prob.classes, device=dev)] = True
        mask[torch.arange(len(rows), device=dev), pred] = False
        up = DeepFool(tol=self.tol)._solve(prob, rows, p, skipped, False).margin[rows]
        ok = np.isfinite(up) & (up > 0)
        guess = np.where(ok, up, 1e-3 * (1.0 + torch.linalg.vector_norm(x, dim=1).cpu().numpy()))
        rtol = self.rtol if self.steps is None else 2.0 ** -self.steps
        lo = certified_radius(chain, x, pred, mask, torch.as_tensor(guess), p=p, grow=torch.as_tensor(~ok),
                              rtol=rtol).cpu().numpy()
        d = lo[np.searchsorted(rows, S)]  # rows are sorted; every pair's sample is among them
        res = _bound_result(prob, rows, p, skipped, signed, self.name, S, I, J, d, self.tol,
                            {"certified": True})
        res.lower = np.where(skipped, np.nan, np.abs(res.margin))
        return res
