"""``BatchedSolver``: the fast exact-margin solver (our default).

Every (sample, other class j) pair of a chunk, times a few starts, is one row of a single batch on the model's
device, and each row runs the boundary walk of :mod:`marginlab.margins._walk` on seed 000's CMP
(min ||z - x||_2 s.t. f_i(z) = f_j(z)). Starts per pair: x itself (the first step is the targeted DeepFool
step) and ``restarts - 1`` random perturbations of x; in low dimension (``dim <= 3``, the playground)
instead ``n_directions`` evenly spread rays, each started at its first class change found by a forward-only
scan, plus half as many points at the first-order distance.

Each pair's best start is then verified in float64 (:func:`marginlab.margins.verify.verify_rays`: a bracket
on the ray from x, scale-free), and the sample's margin is the minimum over its verified pairs. What the
result claims is stated per sample in ``status``:

* ``converged`` — every searched pair has a verified point (or is shown farther), the nearest one is a local
  minimum of the walk (stationary, or no descent), and at least ``min_agree`` independent starts reached the
  same distance (within ``agree_tol``): evidence, not proof, that it is the global one (``method="mip"``
  proves it for ReLU nets);
* otherwise the reason: ``budget exhausted``, ``unresolved pair j``, ``starts disagree``, ``no boundary
  point``. Samples in any of these states are solved again with more starts and iterations (``escalations``
  rounds, each with 4x the random starts, up to ``max_restarts``, and 2x ``max_iter``); their best point so
  far is one of the new starts, so a round never loses what the last one found.

Starts are drawn from per-sample random streams (:func:`~marginlab.margins._core.sample_streams`), so the
result does not depend on the chunk size or on running in Dask.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .._validation import check_float, check_int
from ._core import PairCode, assemble, pair_index, sample_streams
from ._walk import Stop, WalkConfig, pair_grad, walk
from .base import MarginMethod
from .box import box_for, check_bounds
from .verify import Float64Net, no_tf32, verify_rays

__all__ = ["BatchedSolver"]

_ESCALATE = ("budget exhausted", "starts disagree", "no boundary point")


class BatchedSolver(MarginMethod):
    """Exact l2 margins for all (sample, class) pairs in one batch, with an honest per-sample status.

    Parameters
    ----------
    max_iter : int >= 1
        Passes (forward+backward) per start in the first round (doubled in each escalation round).
    xtol : float > 0
        Stationarity: a row stops once ``1 - cos(z - x, -grad g) <= xtol`` (relative distance error ~xtol).
    min_step : float in (0, 1]
        A row stops (no descent) once its step factor alpha falls below this.
    restarts : int >= 1
        Starts per pair in the first round in high dimension: x itself plus ``restarts - 1`` random
        perturbations of x at ``spread`` times the first-order distance.
    n_directions : int >= 0
        Ray directions per pair in low dimension (``dim <= 3``); 0 uses ``restarts`` there too.
    spread : float > 0
        Distance of the random starts from x, in first-order distances: far starts walk into other basins
        where several local minima exist (random ReLU nets), and agree with the start at x where there is
        one (trained nets). Escalation rounds spread their starts over [spread / 4, 2 spread].
    prune : float >= 1
        Extra starts of pairs whose merit exceeds ``prune`` times the best merit of their sample are dropped
        after ``prune_after`` iterations, and escalation rounds restart only pairs within ``prune`` of the
        margin or without a verified point.
    near : float > 0
        A point is near the boundary (its merit is trusted) when its Newton correction is at most ``near``
        times its distance.
    min_agree : int >= 1
        Independent starts that must reach the sample's best distance for ``converged``.
    agree_tol : float > 0
        Relative distance within which two starts agree.
    escalations : int >= 0
        Extra rounds for samples that are not converged, each with 4x the random starts of the last (up to
        ``max_restarts``) and 2x ``max_iter``, plus the best point so far as a continuation.
    max_restarts : int >= 1
        Cap on the random starts per pair in one round.
    seed : int >= 0
        Seed of the random starts.
    bounds : (lo, hi) or None
        Input box (scalars or arrays broadcastable to the input shape): the nearest boundary point inside
        it. Starts are clipped into the box, the walk's tangent steps project onto it, and verification rays
        stop at its faces. Seed 000's margin is unconstrained (the default).
    tol, chunk_size
        See :class:`MarginMethod` (``tol``: relative width of the verified bracket).
    """

    name = "batched"
    supported_p = (2.0,)

    def __init__(self, *, max_iter: int = 30, xtol: float = 1e-5, min_step: float = 0.02, tol: float = 1e-6,
                 chunk_size: int = 512, restarts: int = 2, n_directions: int = 16, spread: float = 4.0,
                 prune: float = 1.1, prune_after: int = 4, seed: int = 0, near: float = 0.05,
                 min_agree: int = 2, agree_tol: float = 1e-3, escalations: int = 2, max_restarts: int = 32,
                 bounds=None):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.max_iter = check_int(max_iter, "max_iter", min_value=1)
        self.xtol = check_float(xtol, "xtol", min_value=0.0, min_inclusive=False)
        self.min_step = check_float(min_step, "min_step", min_value=0.0, min_inclusive=False, max_value=1.0)
        self.restarts = check_int(restarts, "restarts", min_value=1)
        self.n_directions = check_int(n_directions, "n_directions", min_value=0)
        self.spread = check_float(spread, "spread", min_value=0.0, min_inclusive=False)
        self.prune = check_float(prune, "prune", min_value=1.0)
        self.prune_after = check_int(prune_after, "prune_after", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)
        self.near = check_float(near, "near", min_value=0.0, min_inclusive=False)
        self.min_agree = check_int(min_agree, "min_agree", min_value=1)
        self.agree_tol = check_float(agree_tol, "agree_tol", min_value=0.0, min_inclusive=False)
        self.escalations = check_int(escalations, "escalations", min_value=0)
        self.max_restarts = check_int(max_restarts, "max_restarts", min_value=1)
        self.bounds = check_bounds(bounds)

    # ------------------------------------------------------------------------------------------------
    def _solve(self, prob, rows, p, skipped, signed):
        S, I, J = pair_index(prob, rows)
        book = _Book(prob, S, I, J)
        if len(S):
            f64 = Float64Net(prob)
            box = box_for(self.bounds, prob)
            prob = _precise(prob, f64)
            book.set_box(box, prob)
            todo = np.arange(len(S))
            cont = np.zeros(len(S), bool)
            for rnd in range(1 + self.escalations):
                self._round(prob, f64, book, todo[~cont[todo]], rnd)
                self._round(prob, f64, book, todo[cont[todo]], rnd, fresh=False)
                self._bracket_across(f64, book)
                _resolve_by_bounds(prob, book)
                status = self._result(book, p, skipped, False).status.astype(str)
                redo = np.isin(status, _ESCALATE) | np.char.startswith(status, "unresolved")
                todo = self._pairs_to_redo(book, redo)
                # a sample whose nearest point only ran out of iterations continues from it with twice as
                # many; new random starts are for samples whose starts disagree or that lack a point
                cont = (status == "budget exhausted")[book.S]
                if todo.size == 0:
                    break
        return self._result(book, p, skipped, signed)

    def _pairs_to_redo(self, book, redo):
        """Pairs of the samples ``redo`` that a new round can help: those within ``prune`` of the sample's
        margin, and those without a verified point."""
        margin = book.margins()
        resolved = book.ok | book.farther | (book.across & (book.across_dist >= margin[book.S]))
        want = ~resolved | (book.dist <= self.prune * margin[book.S])
        return np.nonzero(want & redo[book.S])[0]

    def _round(self, prob, f64, book, todo, rnd, fresh=True):
        """Walk the pairs ``todo`` (indices into the book's pairs) from this round's starts, verify each
        pair's best start, and merge into the book. ``fresh=False``: in dimension > 3, continue from each
        pair's best point only (no new random starts)."""
        if todo.size == 0:
            return
        dev = prob.device
        Si = torch.as_tensor(book.S[todo], device=dev)
        Ii = torch.as_tensor(book.I[todo], device=dev)
        Ji = torch.as_tensor(book.J[todo], device=dev)
        x = prob.x0[Si]
        g0, w0 = pair_grad(prob.f, x, Ii, Ji)
        z0, independent, crossings = self._starts(prob, x, g0, w0, book, todo, rnd, fresh)
        R, P = z0.shape[0], len(todo)
        cfg = WalkConfig(max_iter=self.max_iter * 2 ** rnd, xtol=self.xtol, min_step=self.min_step,
                         near=self.near, prune=self.prune, prune_after=self.prune_after, box=book.box_t)
        rho, pts, why, iters = walk(prob.f, x.repeat(R, 1), Ii.repeat(R), Ji.repeat(R), z0.reshape(R * P, -1),
                                    Si.repeat(R), R, cfg, gw0=(g0, w0) if rnd == 0 else None)
        rho, pts, why = rho.reshape(R, P), pts.reshape(R, P, -1), why.reshape(R, P)
        book.add_starts(todo, rho.cpu().numpy(), why.cpu().numpy(), independent)
        book.iters[todo] += iters.reshape(R, P).amax(0).cpu().numpy()
        book.evals[todo] += iters.reshape(R, P).sum(0).cpu().numpy() + 1
        self._verify_best(prob, f64, book, todo, x, Ii, rho, pts, why)
        if crossings is not None:
            self._verify_crossings(prob, f64, book, *crossings)

    def _verify_crossings(self, prob, f64, book, samples, ends):
        """Low dimension: each sample's nearest class change seen by the scan is bracketed on its ray and
        kept for the pair of the class across it (not a local minimum: the next round continues from it).
        So the margin is never worse than the scan's nearest crossing."""
        ok = torch.isfinite(ends).all(1)
        if not bool(ok.any()):
            return
        samples, ends = samples[ok.cpu().numpy()], ends[ok]
        x = prob.x0[torch.as_tensor(samples, device=ends.device)]
        v = verify_rays(f64, x, ends, torch.as_tensor(prob.pred[samples]), tol=self.tol, box=book.box)
        res = v.numpy()
        key = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(book.S, book.J))}
        rows = np.array([key.get((int(a), int(c)), -1) for a, c in zip(samples, res["cls"])], np.int64)
        use = (rows >= 0) & res["ok"]
        if use.any():
            sub = {k: val[use] for k, val in res.items()}
            book.merge(rows[use], sub, np.full(int(use.sum()), int(PairCode.BUDGET)), 10 * self.tol)

    def _verify_best(self, prob, f64, book, todo, x, Ii, rho, pts, why):
        """Verify each pair's best start in float64; where it fails, the next-best (up to four). Rays that
        leave class i early, beyond the sample's best merit, are not bracketed (``across``)."""
        P = len(todo)
        best = np.fmin(book.margins(), _sample_min(book.S[todo], rho.amin(0).cpu().numpy(), book.prob.n))
        skip = torch.as_tensor(best[book.S[todo]] * (1 + self.agree_tol), device=x.device)
        order = torch.argsort(rho, dim=0)
        ar = torch.arange(P, device=rho.device)
        srt = rho[order, ar[None]]
        # starts that ended at the same point as the previous one in rho order are not tried again
        distinct = torch.ones_like(srt, dtype=torch.bool)
        distinct[1:] = (srt[1:] - srt[:-1]) > 1e-6 * srt[1:]
        rank = torch.cumsum(distinct.to(torch.int64), 0) - 1
        left = torch.isfinite(srt[0])
        for k in range(min(4, rho.shape[0])):
            # the k-th distinct candidate of each pair (its first start in rho order)
            pick = (rank == k) & distinct & torch.isfinite(srt)
            sel = torch.nonzero(left & pick.any(0)).flatten()
            if sel.numel() == 0:
                break
            start = order[pick[:, sel].to(torch.int8).argmax(0), sel]
            # land the end point just across the boundary so the first bracket usually holds
            cand = x[sel] + (1 + 1e-4) * (pts[start, sel] - x[sel])
            v = verify_rays(f64, x[sel], cand, Ii[sel], tol=self.tol, skip_beyond=skip[sel], box=book.box)
            v = _refine_tiny(f64, x[sel], Ii[sel], book.J[todo][sel.cpu().numpy()], v, self.tol, book.box)
            codes = _codes(why[start, sel].cpu().numpy())
            book.merge(todo[sel.cpu().numpy()], v.numpy(), codes, 10 * self.tol)
            left[sel[(v.ok | v.across).to(sel.device)]] = False

    def _bracket_across(self, f64, book):
        """Pairs whose search crossed another class's region nearer than the sample's margin (or in a sample
        without a margin yet) are bracketed after all: they hold a nearer boundary point."""
        margin = book.margins()
        rows = np.nonzero(book.across & ~book.ok & ~(book.across_dist >= margin[book.S]))[0]
        if rows.size == 0:
            return
        dev = book.prob.device
        x = book.prob.x0[torch.as_tensor(book.S[rows], device=dev)]
        z, i = torch.as_tensor(book.point[rows]), torch.as_tensor(book.I[rows])
        v = verify_rays(f64, x, z, i, tol=self.tol, box=book.box)
        codes = np.full(rows.size, int(PairCode.BUDGET))  # a crossing on the way, not the walk's minimum
        book.merge(rows, v.numpy(), codes, 10 * self.tol)

    # ------------------------------------------------------------------------------------------------
    def _starts(self, prob, x, g0, w0, book, todo, rnd, fresh=True):
        """Start points (R, P, D) for the pairs' rows x (P, D), and which starts are independent (R,).
        Round 0: x and random perturbations of x (low dimension: rays). Later rounds: each pair's best point
        so far (a continuation, not independent; x where none) and more random perturbations of x."""
        P, D = x.shape
        wn = torch.linalg.vector_norm(w0, dim=1)
        d_lin = g0.abs() / wn.clamp(min=1e-30)
        # zero gradient at x (dead ReLU region): spread the starts on the scale of x instead
        fallback = torch.linalg.vector_norm(x, dim=1).clamp(min=1.0)
        d_lin = torch.where((wn > 1e-30) & torch.isfinite(d_lin) & (d_lin > 0), d_lin, fallback)
        low = D <= 3 and self.n_directions > 0
        n_random = self._n_random(D, rnd) if (fresh or low or rnd == 0) else 0
        noise = _noise(prob, book.S[todo], book.J[todo], rnd, n_random, D, self.seed)
        noise = noise.to(x.device, x.dtype)
        crossings = None
        if low:
            # rays evenly spread (more of them, at a new phase, in each escalation round): each pair starts at
            # the nearest class changes to its class, the rest at the first-order distance on its own rays
            u = _directions(noise, D, noise.shape[0])
            scan, crossings = self._scan(prob, book.S[todo], book.J[todo], x, d_lin, u, rnd,
                                         None if rnd == 0 else book.margins(), box=book.box_t)
            random = [scan, x[None] + d_lin[None, :, None] * u[::2]]
        else:
            radius = self.spread * (1.0 if rnd == 0 else
                                    0.25 + 1.75 * torch.arange(noise.shape[0], device=x.device, dtype=x.dtype)
                                    / max(1, noise.shape[0] - 1))
            random = [x[None] + (torch.as_tensor(radius, device=x.device, dtype=x.dtype).reshape(-1, 1)
                                 * d_lin[None])[:, :, None] * noise]
        if book.box_t is not None:  # every start inside the box (x is)
            random = [torch.minimum(torch.maximum(r, book.box_t[0]), book.box_t[1]) for r in random]
        if rnd == 0:
            z0 = torch.cat([x[None]] + random, 0)
            return z0, np.ones(z0.shape[0], bool), crossings
        have = torch.as_tensor(book.ok[todo], device=x.device)
        best = torch.as_tensor(np.nan_to_num(book.point[todo]), device=x.device, dtype=x.dtype)
        best = torch.where(have[:, None], best, x)
        z0 = torch.cat([best[None]] + random, 0)
        return z0, np.r_[False, np.ones(z0.shape[0] - 1, bool)], crossings

    def _n_random(self, D, rnd):
        """Random directions per pair: round 0 the rays (low dimension) or ``restarts - 1`` perturbations;
        round r >= 1 4**r times as many (at least 2 * 4**r), capped by ``max_restarts``."""
        base = self.n_directions if (D <= 3 and self.n_directions > 0) else self.restarts - 1
        if rnd == 0:
            return base
        return min(self.max_restarts, max(base, 2) * 4 ** rnd)

    @torch.no_grad()
    def _scan(self, prob, S, J, x, d_lin, u, rnd, margin=None, n_radii: int = 32, box=None):
        """Low dimension: one forward-only scan per sample along ``2 n_directions`` evenly spread rays, at
        ``n_radii`` geometric radii up to 8 times the sample's largest first-order distance (in escalation
        rounds: up to the sample's margin so far, where any change is a nearer boundary); each pair
        (sample, j) starts at the nearest first class changes *to class j* (so that its walk begins next to
        the boundary pieces of j seen from x, however narrow), the rest on its own rays ``u`` at the
        first-order distance. Returns the starts (R, P, D) and each sample's nearest crossing (samples,
        ray end points (n_s, D), inf where none) for :meth:`_verify_crossings`."""
        samples, inv = np.unique(S, return_inverse=True)
        D, R = x.shape[1], u.shape[0]
        M = 2 * R
        si = torch.as_tensor(inv, device=x.device)
        zeros = torch.zeros(len(samples), dtype=x.dtype, device=x.device)
        # the reach follows the pairs within 4x of the sample's nearest first-order distance: a class that
        # never wins (first-order distance ~ its logit deficit) must not stretch the scan of the others
        dmin = torch.full_like(zeros, float("inf")).scatter_reduce(0, si, d_lin, reduce="amin")
        reach = 8 * zeros.scatter_reduce(0, si, torch.minimum(d_lin, 4 * dmin[si]), reduce="amax")
        if margin is not None:  # escalation: any change nearer than the margin found so far is news
            m = torch.as_tensor(margin[samples], device=x.device, dtype=x.dtype)
            reach = torch.where(torch.isfinite(m), m, reach)
        xs = prob.x0[torch.as_tensor(samples, device=x.device)]
        rays = _sample_rays(prob, samples, M, D, self.seed, rnd).to(x.device, x.dtype)  # (n_s, M, D)
        rad = reach[:, None] * torch.logspace(-3, 0, n_radii, device=x.device, dtype=x.dtype)[None]
        pts = xs[:, None, None] + rad[:, None, :, None] * rays[:, :, None, :]
        pred = torch.as_tensor(prob.pred[samples], device=x.device)
        cls = prob.f(pts.reshape(-1, D)).argmax(1).reshape(len(samples), M, n_radii)
        hit = cls != pred[:, None, None]
        if box is not None:  # a class change outside the box is not a boundary point of the problem
            hit &= ((pts >= box[0]) & (pts <= box[1])).all(-1)
        k = hit.to(torch.int8).argmax(2)                                                  # first change
        first = torch.gather(cls, 2, k[..., None]).squeeze(2)
        r_prev = torch.gather(rad, 1, (k - 1).clamp(min=0).reshape(len(samples), -1)).reshape(k.shape)
        r_hit = torch.sqrt(r_prev * torch.gather(rad, 1, k.reshape(len(samples), -1)).reshape(k.shape))
        r_hit = torch.where(hit.any(2), r_hit, torch.full_like(r_hit, float("inf")))
        si = torch.as_tensor(inv, device=x.device)
        key = torch.where(first[si] == torch.as_tensor(J, device=x.device)[:, None], r_hit[si],
                          torch.full_like(r_hit[si], float("inf")))                      # (P, M)
        order = torch.argsort(key, dim=1)[:, :R]
        r_pick = torch.gather(key, 1, order)                                              # (P, R)
        u_pick = torch.gather(rays[si], 1, order[..., None].expand(-1, -1, D))            # (P, R, D)
        from_scan = x[:, None] + r_pick[..., None] * u_pick
        own = x[:, None] + d_lin[:, None, None] * u.transpose(0, 1)
        starts = torch.where(torch.isfinite(r_pick)[..., None], from_scan, own).transpose(0, 1)
        # the outer end of each sample's nearest crossing: a point of another class
        r_out = torch.where(hit.any(2), torch.gather(rad, 1, k.reshape(len(samples), -1)).reshape(k.shape),
                            torch.full_like(r_hit, float("inf")))
        m = r_out.argmin(1)
        ar = torch.arange(len(samples), device=x.device)
        ends = xs + r_out[ar, m][:, None] * rays[ar, m]
        return starts, (samples, ends)

    def _result(self, book, p, skipped, signed):
        return book.result(name=self.name, tol=self.tol, min_agree=self.min_agree, agree_tol=self.agree_tol,
                           p=p, skipped=skipped, signed=signed)


def _precise(prob, f64):
    """The problem to walk on: as given, or in float64 where float32 logits lose more than two of their
    seven digits to a common offset (|f| > 100 x the typical gap between the top logit and the others: f_i -
    f_j would be rounding noise), so that adding a constant to every logit changes nothing."""
    if prob.dtype == torch.float64:
        return prob
    lg = torch.sort(prob.logits.double(), dim=1, descending=True).values
    gap = (lg[:, :1] - lg[:, 1:]).median().clamp(min=1e-300)  # over the chunk: an offset is the model's
    if not bool(lg.abs().amax() > 100 * gap):
        return prob
    return dataclasses.replace(prob, net=f64.net, x0=prob.x0.to(f64.device, torch.float64), device=f64.device,
                               dtype=torch.float64)


def _resolve_by_bounds(prob, book):
    """Pairs without a verified point are resolved where a sound linear bound proves f_i - f_j > 0 on the
    whole ball of the sample's margin (inside the input box, if any): no point of class j lies nearer, so
    the margin stands (a class that never wins, a boundary far away). Networks the bounds do not support
    keep such pairs unresolved."""
    margin = book.margins()
    m = margin[book.S]
    across = book.across & (book.across_dist >= m)  # resolved already: another class lies nearer on its way
    # a bound that failed on a ball fails on a larger one too (the relaxation only loosens): not retried
    rows = np.nonzero(~book.ok & ~book.farther & ~across & np.isfinite(m) & (m < book.bound_tried))[0]
    if rows.size == 0:
        return
    try:
        from .linear_bounds import pair_lower_bounds, supports
    except ImportError:  # pragma: no cover - the bounds module ships with marginlab
        return
    if not supports(prob.net):
        return
    dev = prob.device
    S, I, J = (torch.as_tensor(a[rows], device=dev) for a in (book.S, book.I, book.J))
    radius = torch.as_tensor(margin[book.S[rows]], device=dev, dtype=torch.float64)
    lb = pair_lower_bounds(prob.net, prob.shape, prob.x0[S].double(), I, J, radius, p=2.0, box=book.box)
    book.farther[rows] = (lb > 0).cpu().numpy()
    book.bound_tried[rows] = m[rows]


def _sample_min(S, values, n):
    """Per sample the smallest of ``values`` (one per row of S; NaN where none is finite)."""
    out = np.full(n, np.inf)
    np.minimum.at(out, S, np.where(np.isfinite(values), values, np.inf))
    return np.where(np.isfinite(out), out, np.nan)


def _noise(prob, S, J, rnd, R, D, seed):
    """(R, P, D) unit random directions, one stream per (sample, round) (:func:`sample_streams`)."""
    out = np.zeros((R, len(S), D), np.float32)
    if R == 0:
        return torch.as_tensor(out)
    samples = np.unique(S)
    for s, rng in zip(samples, sample_streams(prob, samples, seed, rnd)):
        z = rng.standard_normal((prob.n_classes, R, D), dtype=np.float32)
        cols = np.nonzero(S == s)[0]
        out[:, cols] = z[J[cols]].transpose(1, 0, 2)
    out /= np.linalg.norm(out, axis=2, keepdims=True).clip(min=1e-30)
    return torch.as_tensor(out)


def _sample_rays(prob, samples, M, D, seed, rnd):
    """(n_s, M, D) unit rays per sample for the low-dimensional scan: evenly spread with a random phase in
    2-D, +-1 in 1-D, random in 3-D (per-sample streams, a new phase each round)."""
    streams = sample_streams(prob, samples, seed, 10**6 + rnd)
    if D == 2:
        ang = np.stack([g.random() * 2 * math.pi / M + np.arange(M) * 2 * math.pi / M for g in streams])
        return torch.as_tensor(np.stack([np.cos(ang), np.sin(ang)], -1))
    if D == 1:
        return torch.as_tensor(np.tile(np.where(np.arange(M) % 2 == 0, 1.0, -1.0)[None, :, None],
                                       (len(samples), 1, 1)))
    z = np.stack([g.standard_normal((M, D)) for g in streams])
    return torch.as_tensor(z / np.linalg.norm(z, axis=2, keepdims=True))


def _directions(noise, D, R):
    """Low dimension: R evenly spread unit directions per pair (2-D: a random phase; 1-D: +-1; 3-D: the
    random directions themselves)."""
    if D == 1:
        return torch.where(torch.arange(R, device=noise.device)[:, None, None] % 2 == 0, 1.0, -1.0).to(
            noise.dtype).expand(R, noise.shape[1], 1)
    if D == 2:
        phase = torch.atan2(noise[0, :, 1], noise[0, :, 0])[None] / R
        ang = torch.arange(R, device=noise.device, dtype=noise.dtype)[:, None] * (2 * math.pi / R) + phase
        return torch.stack([ang.cos(), ang.sin()], -1)
    return noise


def _codes(why):
    """Pair codes from the walk's stop reasons of the verified starts."""
    return np.where(np.isin(why, (int(Stop.STATIONARY), int(Stop.NO_DESCENT))), int(PairCode.LOCAL_MIN),
                    int(PairCode.BUDGET))


def _refine_tiny(f64, x, i, J, v, tol, box=None):
    """Tiny margins (relative to |x|): float32 iterates fix the direction only to ~eps32 |x| / dist, so take
    one float64 projection step from the verified point and keep it where it verifies closer."""
    x64 = x.to(f64.device, torch.float64)
    scale = torch.linalg.vector_norm(x64, dim=1).clamp(min=1.0)
    tiny = torch.nonzero(v.ok & (v.dist < 1e-2 * scale)).flatten()
    if tiny.numel() == 0:
        return v
    j = torch.as_tensor(J, device=f64.device)[tiny]
    zt = v.point[tiny].clone().requires_grad_(True)
    with torch.enable_grad(), no_tf32():
        lgt = f64.net(zt.reshape((-1,) + f64.shape))
        ar = torch.arange(tiny.numel(), device=f64.device)
        gt = lgt[ar, i[tiny].to(f64.device)] - lgt[ar, j]
        (wt,) = torch.autograd.grad(gt.sum(), zt)
    gt, zt, xt = gt.detach(), zt.detach(), x64[tiny]
    zq = xt - ((gt + (wt * (xt - zt)).sum(1)) / (wt * wt).sum(1).clamp(min=1e-300))[:, None] * wt
    cand = xt + (1 + 1e-10) * (zq - xt)
    cand = torch.where(torch.isfinite(cand).all(1)[:, None], cand, v.point[tiny])
    v2 = verify_rays(f64, xt, cand, i[tiny], tol=tol, box=box)
    win = v2.ok & (v2.dist < v.dist[tiny])
    tw = tiny[win]
    for name in ("point", "dist", "cls", "residual", "width", "top_two", "ok"):
        getattr(v, name)[tw] = getattr(v2, name)[win]
    v.evals[tiny] += 1 + v2.evals
    return v


class _Book:
    """What the rounds found: per pair the best verified point and how its search ended; per start its
    final merit, for the agreement count."""

    def __init__(self, prob, S, I, J):
        self.prob = prob
        self.S, self.I, self.J = np.asarray(S), np.asarray(I), np.asarray(J)
        P, D = len(S), prob.dim
        self.dist = np.full(P, np.inf)
        self.point = np.full((P, D), np.nan)
        self.cls = np.full(P, -1, np.int64)
        self.residual = np.full(P, np.nan)
        self.top2 = np.zeros(P, bool)
        self.ok = np.zeros(P, bool)
        self.code = np.full(P, int(PairCode.FAILED))
        self.zero = np.ones(P, bool)                   # every start so far stopped on a zero gradient
        self.farther = np.zeros(P, bool)               # proved farther than the sample's margin
        self.across = np.zeros(P, bool)                # the search crossed another class first (see merge)
        self.across_dist = np.full(P, np.inf)
        self.bound_tried = np.full(P, np.inf)          # the radius at which a linear bound last failed
        self.box, self.box_t = None, None              # input box: flat float64 arrays / tensors
        self.iters = np.zeros(P, np.int64)
        self.evals = np.zeros(P, np.int64)
        self.start_sample, self.start_rho = [], []     # independent starts only

    def set_box(self, box, prob):
        if box is not None:
            self.box = box
            self.box_t = tuple(torch.as_tensor(b, device=prob.device, dtype=prob.dtype) for b in box)

    def add_starts(self, todo, rho, why, independent):
        self.zero[todo] &= (why == int(Stop.ZERO_GRAD)).all(0)
        ind = np.asarray(independent, bool)
        self.start_sample.append(np.broadcast_to(self.S[todo][None], rho.shape)[ind].ravel())
        self.start_rho.append(rho[ind].ravel())

    def merge(self, rows, v, codes, same):
        """Keep each pair's smaller verified distance, where "smaller" allows for the precision ``same`` of
        the points: a local minimum replaces a budget-stopped point at the same place (a continuation that
        became stationary), and a point that is not a local minimum must be clearly nearer to replace one."""
        self.evals[rows] += v["evals"]
        acr = v["across"] & ~self.ok[rows] & (v["dist_across"] < self.across_dist[rows])
        r = rows[acr]
        self.across[r], self.across_dist[r], self.point[r] = True, v["dist_across"][acr], v["point"][acr]
        self.cls[r], self.code[r] = v["cls"][acr], codes[acr]
        old_min, new_min = self.code[rows] == PairCode.LOCAL_MIN, codes == PairCode.LOCAL_MIN
        factor = np.where(new_min & ~old_min, 1 + same, np.where(old_min & ~new_min, 1 - same, 1.0))
        new = v["ok"] & (v["dist"] < self.dist[rows] * factor)
        r = rows[new]
        self.dist[r], self.point[r], self.cls[r] = v["dist"][new], v["point"][new], v["cls"][new]
        self.residual[r], self.top2[r], self.ok[r], self.code[r] = v["residual"][new], v["top_two"][new], \
            True, codes[new]

    def margins(self):
        """Per sample the smallest verified distance (NaN where none)."""
        return _sample_min(self.S, np.where(self.ok, self.dist, np.nan), self.prob.n)

    def agreement(self, margin, agree_tol):
        """Independent starts per sample whose final merit lies within ``agree_tol`` of its margin."""
        s = np.concatenate(self.start_sample) if self.start_sample else np.zeros(0, np.int64)
        rho = np.concatenate(self.start_rho) if self.start_rho else np.zeros(0)
        m = margin[s]
        hit = np.isfinite(m) & (np.abs(rho - m) <= agree_tol * m)
        return np.bincount(s[hit], minlength=self.prob.n)

    def codes(self):
        margin = self.margins()[self.S]
        failed = np.select([self.farther, self.across & (self.across_dist >= margin), self.zero],
                           [int(PairCode.FARTHER), int(PairCode.ACROSS), int(PairCode.ZERO_GRAD)],
                           int(PairCode.FAILED))
        return np.where(self.ok, self.code, failed)

    def result(self, *, name, tol, min_agree, agree_tol, p, skipped, signed):
        dist = np.where(self.ok, self.dist, np.nan)
        margin = self.margins()
        return assemble(self.prob, method=name, p=p, tol=tol, S=self.S, I=self.I, J=self.J,
                        cls=np.where(self.ok, self.cls, self.J), dist=dist, points=self.point,
                        residual=self.residual, top2=self.top2, ok=self.ok, codes=self.codes(),
                        iters=self.iters, evals=self.evals, seconds=0.0, skipped=skipped, signed=signed,
                        agree=self.agreement(margin, agree_tol), min_agree=min_agree,
                        info={"zero_gradient": int((self.zero & ~self.ok).sum())})
