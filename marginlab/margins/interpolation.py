"""Cheap boundary estimates cited by seed 000 §2.

* :class:`Interpolation` — the boundary point on the segment from each sample to its nearest reference
  sample with a different predicted class (float64 root search, verified like the exact methods; an upper
  bound on the margin).
* :class:`RandomDirections` — Somepalli et al.: the mean, over ``n_directions`` random unit directions, of the
  distance to the first class change found by doubling + bisection along each direction (an estimate).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import _as_tensor, assemble, sample_streams
from .base import MarginMethod
from .verify import Float64Net, verify_rays

__all__ = ["Interpolation", "RandomDirections"]


class Interpolation(MarginMethod):
    """Needs ``reference`` inputs (e.g. the training set); their predicted classes define the targets."""

    name = "interpolation"
    kind = "upper"
    needs = ("reference",)

    def __init__(self, reference=None, *, tol: float = 1e-6, chunk_size: int = 512):
        super().__init__(tol=tol, chunk_size=chunk_size)
        if reference is None:
            raise ValueError("reference must be given: inputs whose nearest different-class sample is used")
        self.reference = _as_tensor(reference)

    def _solve(self, prob, rows, p, skipped, signed):
        dev = prob.device
        R = self.reference.to(dev, prob.dtype)
        with torch.no_grad():
            ref = R.reshape((-1,) + prob.shape) if prob.layer == 0 else None
            if ref is None:
                raise ValueError("Interpolation works at the input layer (layer=0)")
            ref_pred = prob.f(ref.reshape(len(ref), -1)).argmax(1)
            x = prob.x0[torch.as_tensor(rows, dtype=torch.long, device=dev)]
            Dm = torch.cdist(x, ref.reshape(len(ref), -1))
            pred = torch.as_tensor(prob.pred[rows], device=dev)
            Dm = Dm.masked_fill(ref_pred[None, :] == pred[:, None], float("inf"))
            k = Dm.argmin(1)
        target = ref.reshape(len(ref), -1)[k]
        f64 = Float64Net(prob)
        # which class takes over along the segment is not known in advance: the bracket finds a change of
        # the decision on the segment and reports the class across it
        J = ref_pred[k]
        v = verify_rays(f64, x, target, pred, tol=self.tol, p=p, extend=(1.0,))
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=np.asarray(rows), I=prob.pred[rows],
                        J=J.cpu().numpy(), cls=v.cls.cpu().numpy(), kind=self.kind, dist=v.dist.cpu().numpy(),
                        points=v.point.cpu().numpy(), residual=v.residual.cpu().numpy(),
                        top2=v.top_two.cpu().numpy(), ok=v.ok.cpu().numpy(),
                        iters=np.ones(len(rows)), evals=v.evals.cpu().numpy(), seconds=0.0, skipped=skipped,
                        signed=signed)


class RandomDirections(MarginMethod):
    """Mean distance to a class change along ``n_directions`` random directions (estimate)."""

    name = "random_directions"
    kind = "estimate"
    estimate = True

    def __init__(self, *, n_directions: int = 5, max_radius: float = 100.0, steps: int = 40, seed: int = 0,
                 tol: float = 1e-6, chunk_size: int = 512):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.n_directions = check_int(n_directions, "n_directions", min_value=1)
        self.max_radius = check_float(max_radius, "max_radius", min_value=0.0, min_inclusive=False)
        self.steps = check_int(steps, "steps", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)

    @torch.no_grad()
    def _solve(self, prob, rows, p, skipped, signed):
        dev = prob.device
        n, D, m = len(rows), prob.dim, self.n_directions
        streams = sample_streams(prob, rows, self.seed)
        u = torch.as_tensor(np.stack([g.standard_normal((m, D)) for g in streams]))
        u = (u / lp_norm_rows(u, p)).to(dev)
        x = prob.x0[torch.as_tensor(rows, dtype=torch.long, device=dev)].double()
        pred = torch.as_tensor(prob.pred[rows], device=dev)[:, None].expand(n, m).reshape(-1)
        f64 = Float64Net(prob)
        xr = x[:, None, :].expand(n, m, D).reshape(-1, D)
        ur = u.reshape(-1, D)
        # doubling to bracket the first class change, then bisection on "still class i"
        hi = torch.full((n * m,), 1e-3 * self.max_radius, dtype=torch.float64, device=dev)
        while True:
            same = f64(xr + hi[:, None] * ur).argmax(1).to(dev) == pred
            grow = same & (hi < self.max_radius)
            if not bool(grow.any()):
                break
            hi = torch.where(grow, hi * 2, hi)
        lo = torch.zeros_like(hi)
        found = ~same
        for _ in range(self.steps):
            mid = 0.5 * (lo + hi)
            s = f64(xr + mid[:, None] * ur).argmax(1).to(dev) == pred
            lo, hi = torch.where(s, mid, lo), torch.where(s, hi, mid)
        d = torch.where(found, hi, torch.full_like(hi, float("nan"))).reshape(n, m)
        est = d.nanmean(1)
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=np.asarray(rows), I=prob.pred[rows],
                        J=f64(x + (hi.reshape(n, m)[:, :1] * u[:, 0])).argmax(1).cpu().numpy(),
                        dist=est.cpu().numpy(), points=np.full((n, D), np.nan), residual=np.full(n, np.nan),
                        top2=np.zeros(n, bool), ok=np.zeros(n, bool), iters=np.full(n, self.steps),
                        evals=np.full(n, m * self.steps), seconds=0.0, skipped=skipped, signed=signed,
                        estimate=True)


def lp_norm_rows(u, p):
    return torch.linalg.vector_norm(u, ord=p, dim=-1, keepdim=True)
