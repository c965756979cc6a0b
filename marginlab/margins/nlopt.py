"""``NloptSolver``: seed 000's reference method (§3): per (sample, class j) pair, minimise ||z - x||^2
subject to f_i(z) = f_j(z) (Eq. 1-2) with NLopt's augmented Lagrangian (AUGLAG) around CCSAQ.

With ``bounds=(lo, hi)`` the search is restricted to the input box (NLopt bound constraints; the start is
clipped into the box and the segment from x to a point of the box stays inside it), giving the margin inside
the box; seed 000's margin is unconstrained (the default).

Known pitfalls handled here (see the field notes): AUGLAG only stops on explicit limits, so xtol/ftol,
``maxeval`` and ``maxtime`` are always set; the objective and its gradient vanish at x, so the start is x
plus a small random perturbation; the equality constraint can converge where a third class beats i and j,
so the top-two check is applied. The solution is then projected onto the boundary along the ray from x in
float64 (the same final step as every exact method, so all are verified alike). Samples run in parallel
processes with joblib; pairs of one sample run sequentially (this is the slow reference).
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import PairCode, assemble, pair_index
from .base import MarginMethod
from .box import box_for, check_bounds
from .verify import Float64Net, verify_rays

__all__ = ["NloptSolver"]


class NloptSolver(MarginMethod):
    """Reference l2 margins with NLopt AUGLAG + LD_CCSAQ.

    Parameters
    ----------
    maxeval : int
        Bound on objective evaluations of the outer AUGLAG loop (and of each inner CCSAQ solve).
    maxtime : float
        Seconds per pair (AUGLAG can otherwise run forever).
    xtol_rel, ftol_rel : float
        NLopt relative stopping tolerances (outer and inner).
    constraint_tol : float
        Tolerance handed to ``add_equality_constraint``.
    start_radius : float
        Norm of the random perturbation of the start (relative to max(1, ||x||)).
    n_jobs : int
        joblib processes over samples (1: in this process).
    seed : int
        Seed of the start perturbations.
    bounds : (lo, hi) or None
        Input box (scalars or arrays broadcastable to the input shape, lo <= hi): the margin inside it.
    """

    name = "nlopt"
    interactive = False  # ~0.5 s per (sample, class) pair
    supported_p = (2.0,)

    def __init__(self, *, maxeval: int = 2000, maxtime: float = 10.0, xtol_rel: float = 1e-8,
                 ftol_rel: float = 1e-10, constraint_tol: float = 1e-8, start_radius: float = 1e-3,
                 n_jobs: int = 1, seed: int = 0, tol: float = 1e-6, chunk_size: int = 512, bounds=None):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.maxeval = check_int(maxeval, "maxeval", min_value=1)
        self.maxtime = check_float(maxtime, "maxtime", min_value=0.0, min_inclusive=False)
        self.xtol_rel = check_float(xtol_rel, "xtol_rel", min_value=0.0, min_inclusive=False)
        self.ftol_rel = check_float(ftol_rel, "ftol_rel", min_value=0.0, min_inclusive=False)
        self.constraint_tol = check_float(constraint_tol, "constraint_tol", min_value=0.0,
                                          min_inclusive=False)
        self.start_radius = check_float(start_radius, "start_radius", min_value=0.0, min_inclusive=False)
        self.n_jobs = check_int(n_jobs, "n_jobs", min_value=-1)
        self.seed = check_int(seed, "seed", min_value=0)
        self.bounds = check_bounds(bounds)

    def _solve(self, prob, rows, p, skipped, signed):
        try:
            import nlopt  # noqa: F401
        except ImportError as exc:  # pragma: no cover - nlopt is a declared dependency
            raise ImportError("method='nlopt' needs the 'nlopt' package (pip install nlopt)") from exc
        box = box_for(self.bounds, prob)
        S, I, J = pair_index(prob, rows)
        x64 = prob.x0.detach().cpu().double().numpy()
        net64 = Float64Net(prob).net.cpu()
        jobs = [(int(s), x64[s], [int(j) for j in J[S == s]], int(prob.pred[s])) for s in rows]
        kw = dict(maxeval=self.maxeval, maxtime=self.maxtime, xtol_rel=self.xtol_rel, ftol_rel=self.ftol_rel,
                  ctol=self.constraint_tol, radius=self.start_radius, seed=self.seed, shape=prob.shape,
                  box=box)
        if self.n_jobs == 1 or len(jobs) <= 1:
            out = [_solve_sample(net64, *job, **kw) for job in jobs]
        else:
            from joblib import Parallel, delayed

            out = Parallel(n_jobs=self.n_jobs, backend="loky")(delayed(_solve_sample)(net64, *job, **kw)
                                                                for job in jobs)
        Z = np.zeros((len(S), prob.dim))
        iters = np.zeros(len(S), np.int64)
        evals = np.zeros(len(S), np.int64)
        budget = np.zeros(len(S), bool)
        k = 0
        for (_, _, js, _), (zs, ev, bud) in zip(jobs, out):
            Z[k:k + len(js)] = zs
            evals[k:k + len(js)] = ev
            budget[k:k + len(js)] = bud
            iters[k:k + len(js)] = ev
            k += len(js)
        info = {}
        if len(S) == 0:
            return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=I, J=J, dist=np.zeros(0),
                            points=np.zeros((0, prob.dim)), residual=np.zeros(0), top2=np.zeros(0, bool),
                            ok=np.zeros(0, bool), iters=iters, evals=evals, seconds=0.0, skipped=skipped,
                            signed=signed, info=info)
        f64 = Float64Net(prob)
        x = torch.as_tensor(x64[S])
        Zt = torch.as_tensor(Z)
        v = verify_rays(f64, x, torch.where(torch.isfinite(Zt), Zt, x), torch.as_tensor(I), tol=self.tol, p=p,
                        box=box)
        ok = v.ok.cpu().numpy()
        codes = np.where(ok, np.where(budget, PairCode.BUDGET, PairCode.LOCAL_MIN), PairCode.FAILED)
        return assemble(prob, method=self.name, p=p, tol=self.tol, S=S, I=I, J=J, cls=v.cls.cpu().numpy(),
                        dist=v.dist.cpu().numpy(), points=v.point.cpu().numpy(),
                        residual=v.residual.cpu().numpy(),
                        top2=v.top_two.cpu().numpy(), ok=ok, codes=codes, iters=iters,
                        evals=evals + v.evals.cpu().numpy(), seconds=0.0, skipped=skipped, signed=signed,
                        info=info)


def _solve_sample(net64, s, x, js, i, *, maxeval, maxtime, xtol_rel, ftol_rel, ctol, radius, seed, shape,
                  box=None):
    """Solve the CMPs of one sample against classes ``js``; returns (points (len(js), D), evaluations)."""
    import nlopt

    torch.set_num_threads(1)  # one process per core; nested BLAS threads only oversubscribe
    D = x.size
    rng = np.random.default_rng([seed, s])
    pts = np.full((len(js), D), np.nan)
    evs = np.zeros(len(js), np.int64)
    budget = np.zeros(len(js), bool)  # stopped by maxeval / maxtime rather than by its tolerances
    counter = [0]

    def gval(z, grad, j):
        zt = torch.tensor(z, dtype=torch.float64).reshape((1,) + tuple(shape)).requires_grad_(grad.size > 0)
        with torch.set_grad_enabled(grad.size > 0):
            lg = net64(zt)[0]
            g = lg[i] - lg[j]
            if grad.size > 0:
                (gz,) = torch.autograd.grad(g, zt)
                grad[:] = gz.reshape(-1).numpy()
        counter[0] += 1
        return float(g.detach())

    def objective(z, grad):
        diff = z - x
        if grad.size > 0:
            grad[:] = 2.0 * diff
        return float(diff @ diff)

    for k, j in enumerate(js):
        counter[0] = 0
        u = rng.standard_normal(D)
        x_start = x + radius * max(1.0, float(np.linalg.norm(x))) * u / np.linalg.norm(u)
        opt = nlopt.opt(nlopt.AUGLAG, D)
        if box is not None:
            x_start = np.clip(x_start, box[0], box[1])
            opt.set_lower_bounds(box[0])
            opt.set_upper_bounds(box[1])
        local = nlopt.opt(nlopt.LD_CCSAQ, D)
        local.set_xtol_rel(xtol_rel)
        local.set_ftol_rel(ftol_rel)
        local.set_maxeval(maxeval)
        opt.set_local_optimizer(local)
        opt.set_min_objective(objective)
        opt.add_equality_constraint(lambda z, grad, j=j: gval(z, grad, j), ctol)
        opt.set_xtol_rel(xtol_rel)
        opt.set_ftol_rel(ftol_rel)
        opt.set_maxeval(maxeval)
        opt.set_maxtime(maxtime)
        try:
            z = opt.optimize(x_start)
            budget[k] = opt.last_optimize_result() in (nlopt.MAXEVAL_REACHED, nlopt.MAXTIME_REACHED)
        except (nlopt.RoundoffLimited, RuntimeError, ValueError):
            z = None
        if z is not None and np.all(np.isfinite(z)):
            pts[k] = z
        evs[k] = counter[0]
    return pts, evs, budget
