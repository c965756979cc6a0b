"""``MipSolver``: the proved global margin of ReLU / leaky-ReLU networks (mixed-integer programming).

For a sample x of class i and each other class j, the nearest point where j is not beaten,

    min ||z - x||_p   s.t.   f_j(z) >= f_i(z)            (seed 000 Eq. 1-2; the margin is the min over j)

is a mixed-integer program once every unstable ReLU h = max(y, a y) is written with one binary (big-M,
Tjeng et al. 2019): p = 2 gives an MIQP (convex quadratic objective), p = inf and p = 1 an MILP. It is
solved to proved optimality by SCIP (through ``pyscipopt``). The big-M constants are the pre-activation
bounds of :mod:`.linear_bounds` inside the ball whose radius is an upper bound on the margin (the batched
solver's verified distance; DeepFool's for p != 2 or with a box): there most neurons are stable, so few
binaries remain. Classes whose linear bound already proves f_i > f_j in that ball need no MIP; the others
are solved in order with the best distance so far as objective limit, the first warm-started from the upper
bound's point.

For p = 2 without a box the input never needs to appear: the least-norm input change d with B d = w costs
w^T (B B^T)^-1 w, so the program is written in w = B d only, with B the rows of the first layer that matter:
its unstable neurons, plus the few combined rows through which its stable neurons reach the next layer
(one row, f_j - f_i, for a one-hidden-layer net); or all first-layer rows where that is not fewer. On a
784-100-10 MNIST MLP this is ~50 variables instead of 784 (the input-space MIQP is an order of magnitude
slower); the point is recovered as the least-norm preimage. The stable neurons' bounds are dropped there,
which is exact below the objective limit (every such point lies in the ball where the bounds hold). Further:
in the last hidden layer a neuron with a negative weight in f_j - f_i needs no binary (h >= relu(y)
suffices, the constraint prefers h small), and the squared distance is disaggregated into one-dimensional
terms with fixed tangents, so SCIP's outer approximation stays sparse. Each optimum is then polished (its
activation pattern fixed, f_j - f_i >= a tiny eps) into a point strictly on j's side, because the optimum
can be the tip of a wedge of j's region that the ray from x only touches.

``lower`` is SCIP's proved bound (minimum over classes; at least the linear-bound certificate), ``certified``
means ``lower >= margin (1 - 1e-4)``. The returned points are projected onto the boundary along the ray from x
and verified in float64 like every other method's; ``margin`` is the best verified distance (the MIP's or
the upper bound's). SCIP proves optimality up to its feasibility tolerance (1e-6 on constraints).
A ``time_limit`` per sample returns the best bracket with ``status = "time limit"``. Seed 000's margin is
unconstrained l2; ``bounds=(lo, hi)`` gives the margin inside an input box instead.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .._validation import check_float, check_int
from ._chain import leaves, to_chain
from ._core import assemble
from .base import MarginMethod
from .box import box_for, check_bounds
from .certify import CERTIFIED_RTOL, certified_radius, check_certifiable
from .linear_bounds import as_box, chunk_rows, layer_relaxations, output_lower
from .relax import act_of
from .verify import Float64Net, verify_rays

__all__ = ["MipSolver"]


class MipSolver(MarginMethod):
    """Proved global margins of ReLU / leaky-ReLU networks (MIQP for p = 2, MILP for p = inf and 1).

    Parameters
    ----------
    time_limit : float > 0 or None
        Seconds of SCIP time per sample (None: no limit). On timeout the sample keeps its best verified
        point and proved bound, with ``certified=False`` and ``status="time limit"``.
    bounds : (lo, hi) or None
        Input box (scalars or arrays broadcastable to the input shape, lo <= hi): the margin inside it.
    gap : float
        Relative gap at which SCIP stops (on the objective: squared distance for p = 2).
    space : "auto" or "input"
        Formulation: "auto" uses the reduced space (see the module docstring) for p = 2 without a box
        where B has full row rank, else the input space; "input" always uses the input space.
    n_jobs : int
        Processes over samples (joblib; 1 solves in this process).
    restarts : int
        Starts of the batched solver that gives the upper bound and the warm start (p = 2, no box).
    tol, chunk_size
        See :class:`MarginMethod`.
    """

    name = "mip"
    kind = "exact"
    interactive = False  # milliseconds in 2-D, seconds per sample on MNIST MLPs
    supported_p = (1.0, 2.0, math.inf)

    def __init__(self, *, time_limit: float | None = 60.0, bounds=None, gap: float = 1e-5,
                 space: str = "auto", n_jobs: int = 1, restarts: int = 4, tol: float = 1e-6,
                 chunk_size: int = 64):
        super().__init__(tol=tol, chunk_size=chunk_size)
        if time_limit is not None:
            time_limit = check_float(time_limit, "time_limit", min_value=0.0, min_inclusive=False)
        self.time_limit = time_limit
        self.bounds = check_bounds(bounds)
        self.gap = check_float(gap, "gap", min_value=0.0, max_value=0.01)
        if space not in ("auto", "input"):
            raise ValueError(f"space must be 'auto' or 'input', got {space!r}")
        self.space = space
        self.n_jobs = check_int(n_jobs, "n_jobs", min_value=-1)
        self.restarts = check_int(restarts, "restarts", min_value=1)

    # ------------------------------------------------------------------------------------------------
    def _solve(self, prob, rows, p, skipped, signed):
        _check_piecewise_linear(prob.net)
        box = box_for(self.bounds, prob)
        t0 = time.perf_counter()
        chain = to_chain(prob.net, prob.shape, torch.device("cpu"))
        up = _upper(prob, rows, p, box, self.tol, self.restarts)
        x = prob.x0[torch.as_tensor(rows, device=prob.device)].detach().cpu().double()
        pred = prob.pred[rows]
        ub = up["margin"]
        # neuron bounds in a ball slightly larger than the upper bound: every point the MIP must see
        # (closer than the objective limit) lies inside it
        R = torch.as_tensor(np.where(np.isfinite(ub), ub, up["radius"]) * (1 + 1e-3))
        bt = None if box is None else as_box(box, len(rows), chain.dim, torch.device("cpu"))
        lin = _linear_stage(chain, x, pred, prob, R, p, bt, ub)
        jobs = _jobs(x, pred, up, R, lin, box)
        opts = dict(p=p, gap=self.gap, time_limit=self.time_limit,
                    reduced=p == 2 and box is None and self.space != "input",
                    W=[w.numpy() for w in chain.weights], b=[c.numpy() for c in chain.biases],
                    acts=list(chain.acts))
        out = _run_jobs(jobs, opts, self.n_jobs)
        res = _finish(self, prob, rows, p, skipped, signed, up, out, lin["lower"], R, box)
        res.info.update({
            "upper_margin": [float(v) for v in ub],
            "reduced_space": [bool(all(o.get("reduced", [True]))) for o in out],
            "unstable": [int(sum(((l[k] < 0) & (u[k] > 0)).sum() for l, u in lin["bounds"]))
                         for k in range(len(rows))],
            "mip_pairs": [len(j["pairs"]) for j in jobs],
            "mip_seconds": [o["seconds"] for o in out], "seconds_total": time.perf_counter() - t0})
        return res


def _jobs(x, pred, up, R, lin, box):
    """One job per sample: the classes still to solve (those the linear bound could not exclude from the
    ball, none if the linear certificate already reaches the upper bound), the upper bound's class first."""
    ub, jobs = up["margin"], []
    for k in range(x.shape[0]):
        lbk = lin["pair_lower"][k]
        todo = [j for j, v in lbk.items() if v <= 0 and np.isfinite(float(R[k]))]
        if np.isfinite(ub[k]) and lin["lower"][k] >= ub[k] * (1 - CERTIFIED_RTOL):
            todo = []
        todo.sort(key=lambda j, k=k, lbk=lbk: (j != up["bclass"][k], lbk[j]))
        jobs.append(dict(
            x=x[k].numpy(), pred=int(pred[k]), pairs=todo, R=float(R[k]),
            best=float(ub[k]) if np.isfinite(ub[k]) else float(R[k]),
            warm=up["point"][k] if np.isfinite(ub[k]) else None, warm_j=int(up["bclass"][k]),
            bounds=[(l[k].numpy(), u[k].numpy()) for l, u in lin["bounds"]], box=box))
    return jobs


def _finish(method, prob, rows, p, skipped, signed, up, out, lower_lin, R, box):
    """Verify the MIP points together with the upper bound's point, keep the nearest verified one, and
    set the proved lower bound, ``certified`` and the status."""
    S, I, J, Z = [], [], [], []
    for k, o in enumerate(out):
        cand = list(o["points"].items())
        if np.isfinite(up["margin"][k]):  # the upper bound's point, verified again alike
            cand.append((int(up["bclass"][k]), up["point"][k]))
        for j, z in cand:
            S.append(rows[k])
            I.append(prob.pred[rows[k]])
            J.append(j)
            Z.append(np.asarray(z, np.float64).reshape(-1))
    S, I, J = np.asarray(S, np.int64), np.asarray(I, np.int64), np.asarray(J, np.int64)
    Z = np.asarray(Z, np.float64).reshape(len(S), prob.dim)
    dist, pts, resid, top2, ok, ev, J = _verify_points(prob, S, I, J, Z, method.tol, p, box)
    res = assemble(prob, method=method.name, p=p, tol=method.tol, S=S, I=I, J=J, dist=dist, points=pts,
                   residual=resid, top2=top2, ok=ok, iters=np.ones(len(S)), evals=ev, seconds=0.0,
                   skipped=skipped, signed=False, info={})
    # a class may have two verified points (the MIP's and the upper bound's): keep the nearer
    np.fmin.at(res.distances, (S[ok], J[ok]), dist[ok])
    # classes without a point here keep the upper bound's verified distance
    res.distances = np.where(np.isnan(res.distances), up["distances_full"], res.distances)
    lower = np.full(prob.n, np.nan)
    status = np.asarray(res.status, dtype=object).copy()
    for k, o in enumerate(out):
        s = rows[k]
        # classes the linear bound excluded from the ball of radius R are at least R away
        lower[s] = max(lower_lin[k], min(o["lower"].values(), default=float(R[k])))
        status[s] = ("time limit" if o["timeout"] else "no upper bound" if not np.isfinite(res.margin[s])
                     else "gap")
    # the verified distance is an upper bound on the margin: a proved bound above it is capped there
    res.lower = np.minimum(lower, np.where(np.isfinite(res.margin), res.margin, np.inf))
    res.certified = res.converged & np.isfinite(res.lower) & (res.lower >= res.margin * (1 - CERTIFIED_RTOL))
    status[res.certified] = "certified"
    # the MIP's word for "converged" is "proved": a verified point whose optimality is not proved (gap, time
    # limit) is not reported converged
    res.converged = res.certified.copy()
    status[skipped] = "skipped"
    res.status = status
    if signed and prob.label is not None:
        res.margin = np.where(prob.pred != prob.label, -res.margin, res.margin)
    return res


def _check_piecewise_linear(net):
    """ValueError naming the first layer the MIP cannot encode (any non-ReLU activation)."""
    check_certifiable(net)
    for m in leaves(net):
        a = act_of(m)
        if a is not None and not (a.kind == "relu" or a.kind == "leaky_relu" and a.param < 1):
            raise ValueError(f"method='mip' encodes ReLU and LeakyReLU (slope < 1) networks only; found "
                             f"{type(m).__name__}: use certify=True for a lower bound on other networks")


def _upper(prob, rows, p, box, tol, restarts):
    """Verified upper bounds (distance, point, class per sample; the full per-class distances) from the
    batched solver (p = 2, no box) or DeepFool; with a box, points are clipped into it and re-projected
    along the ray (a valid point inside the box), or dropped."""
    from .batched import BatchedSolver
    from .deepfool import DeepFool

    n = len(rows)
    sk = np.ones(prob.n, bool)
    sk[rows] = False
    r = DeepFool(tol=tol)._solve(prob, rows, p, sk, False)
    if p == 2 and box is None:  # the better of batched and DeepFool (batched can miss, or fail)
        rb = BatchedSolver(tol=tol, restarts=restarts)._solve(prob, rows, p, sk, False)
        take = np.isfinite(rb.margin) & ~(rb.margin > r.margin)
        r.margin = np.where(take, rb.margin, r.margin)
        r.point = np.where(take.reshape((-1,) + (1,) * (r.point.ndim - 1)), rb.point, r.point)
        r.boundary_class = np.where(take, rb.boundary_class, r.boundary_class)
        r.distances = np.fmin(rb.distances, r.distances)
    m = r.margin[rows].copy()
    pts = r.point[rows].reshape(n, -1).copy()
    bcl = r.boundary_class[rows].copy()
    full = r.distances.copy()
    if box is not None:
        x = prob.x0[torch.as_tensor(rows, device=prob.device)].detach().cpu().double().numpy()
        good = np.isfinite(m)
        cand = np.clip(x + 1.05 * (pts - x), box[0], box[1])
        cand = np.where(good[:, None], cand, x)
        S = np.asarray(rows, np.int64)
        d, pt, _, _, ok, _, bcl = _verify_points(prob, S, prob.pred[rows], np.where(good, bcl, 0), cand, tol,
                                                 p, box)
        ok &= good
        m = np.where(ok, d, np.nan)
        pts = np.where(ok[:, None], pt, np.nan)
        full = np.full_like(full, np.nan)
        full[S[ok], bcl[ok]] = d[ok]
    # without any upper bound, the MIP searches the box (or gives up: no finite radius)
    x = prob.x0[torch.as_tensor(rows, device=prob.device)].detach().cpu().double().numpy()
    if box is not None:
        far = np.maximum(np.abs(x - box[0]), np.abs(box[1] - x))
        radius = np.linalg.norm(far, ord=p, axis=1)
    else:
        radius = np.full(n, np.nan)
    return dict(margin=m, point=pts, bclass=bcl, distances_full=full, radius=radius)


def _verify_points(prob, S, I, J, Z, tol, p, box=None):
    """Verify candidates with the shared float64 bracket on the ray from x (inside the box, if any):
    returns (dist, point, residual, top_two, ok, evaluations, class across); the class across replaces J
    where a candidate aimed at one class verified a boundary with another."""
    P = len(S)
    if P == 0:
        return (np.zeros(0), np.zeros((0, prob.dim)), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool),
                np.zeros(0, np.int64), np.zeros(0, np.int64))
    f64 = Float64Net(prob)
    x = prob.x0[torch.as_tensor(S, device=prob.device)].to(f64.device, torch.float64)
    z = torch.as_tensor(np.asarray(Z, np.float64), device=f64.device)
    finite = torch.isfinite(z).all(1)
    i = torch.as_tensor(I, device=f64.device)
    v = verify_rays(f64, x, torch.where(finite[:, None], z, x), i, tol=tol, p=p, box=box)
    r = v.numpy()
    ok = r["ok"] & finite.cpu().numpy()
    cls = np.where(ok, r["cls"], np.asarray(J, np.int64))
    return (np.where(ok, r["dist"], np.nan), r["point"], r["residual"], r["top_two"], ok, r["evals"], cls)


@torch.no_grad()
def _linear_stage(chain, x, pred, prob, R, p, box, ub):
    """Neuron bounds inside the ball of radius R, the linear lower bound of f_i - f_j there for every class
    (pairs it proves positive need no MIP) and the certified radius (a lower bound on the margin)."""
    n, K = x.shape[0], chain.n_classes
    cls = [int(j) for j in prob.classes]
    I = torch.as_tensor(pred)
    finite = torch.isfinite(R)
    Rf = torch.where(finite, R, torch.zeros_like(R))
    bounds = [([], []) for _ in chain.acts]
    lb = torch.zeros((n, K), dtype=torch.float64)
    eye = torch.eye(K, dtype=torch.float64)
    step = chunk_rows(chain, K)
    for s in range(0, n, step):
        sl = slice(s, s + step)
        bx = None if box is None else (box[0][sl], box[1][sl])
        bds, rels = layer_relaxations(chain, x[sl], Rf[sl], p, bx)
        for k, (l, u) in enumerate(bds):
            bounds[k][0].append(l)
            bounds[k][1].append(u)
        lb[sl] = output_lower(chain, rels, eye[I[sl]][:, None, :] - eye[None], x[sl], Rf[sl], p, bx)
    bounds = [(torch.cat(l), torch.cat(u)) for l, u in bounds]
    mask = torch.zeros((n, K), dtype=torch.bool)
    mask[:, cls] = True
    mask[torch.arange(n), I] = False
    hi = torch.as_tensor(np.where(np.isfinite(ub), ub, Rf.numpy()))
    lower = certified_radius(chain, x, I, mask, torch.where(hi > 0, hi, torch.ones_like(hi)), p=p, box=box,
                             grow=~torch.as_tensor(np.isfinite(ub)), rtol=1e-5).numpy()
    lbd = [{j: (float(lb[k, j]) if bool(finite[k]) else -math.inf) for j in cls if j != int(pred[k])}
           for k in range(n)]
    return {"pair_lower": lbd, "bounds": bounds, "lower": lower}


def _run_jobs(jobs, opts, n_jobs):
    from ._mip_model import solve_sample

    if n_jobs == 1 or len(jobs) <= 1:
        return [solve_sample(job, opts) for job in jobs]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs, backend="loky")(delayed(solve_sample)(job, opts) for job in jobs)
