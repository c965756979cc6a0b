"""Verification, once for every method: a boundary point counts only when a float64 bracket proves it.

A candidate point z for a sample x of predicted class i is verified on the ray from x through z: the root
finder brackets the first change of the decision along ``x + t (z - x)`` with two points,

* ``x + t_lo (z - x)``, still classified i (f_i strictly above every other logit), and
* ``x + t_hi (z - x)``, classified j != i (f_j >= f_i; j is the winning other class there),

no farther apart than ``tol`` relative to the distance, ``t_hi - t_lo <= tol * t_hi``. Then the decision
changes between the two, and ``||t_hi (z - x)||_p`` is the distance to a point that is not classified i: an
upper bound on the margin (seed 000 Eq. 1), within ``tol`` of the boundary crossing on that ray.

The criterion depends on the classifier only through which class wins at two points, so it is invariant to
adding a constant to every logit, to scaling them, and to extra classes that never win; it is stated in
input space, and the same test stops the root finder and verifies its result. The network is evaluated in
float64 (a float32 model's weights are exact in float64), with TF32 off on GPUs.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Float64Net", "no_tf32", "Verified", "verify_rays", "EXTEND"]

# factors by which the end point is pushed outward until the decision has changed (a bracket)
EXTEND = (1.0, 1.0 + 1e-4, 1.001, 1.01, 1.1, 1.5, 2.0)
# the root finder stops well inside the verification tolerance, so that rounding differences (an offset
# added to every logit, a float32 model) cannot move a result across the threshold
_STOP = 0.125


@contextlib.contextmanager
def no_tf32():
    """TF32 matmuls have ~1e-3 relative error, the order of boundary tolerances: keep them off."""
    if not torch.cuda.is_available():
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class Float64Net:
    """A problem's network in float64 (on the same device, except MPS which lacks float64)."""

    def __init__(self, prob):
        self.shape = prob.shape
        dev = prob.device if prob.device.type != "mps" else torch.device("cpu")
        self.device = dev
        self.net = copy.deepcopy(prob.net).to(dev, torch.float64).eval()

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        with no_tf32():
            return self.net(z.to(self.device, torch.float64).reshape((-1,) + self.shape))


@dataclass
class Verified:
    """Per candidate (P rows): the verified point and what proves it.

    ``point`` the bracket end not classified i (float64); ``dist`` its l_p distance to x (NaN unless ``ok``);
    ``cls`` the class winning there (-1 where no bracket); ``residual`` ``f_cls - f_i >= 0`` there; ``width``
    the bracket's relative width ``(t_hi - t_lo) / t_hi``; ``top_two`` whether i is second there; ``ok``
    the bracket holds and ``width <= tol``; ``across`` the ray had already left class i's region at the
    probe ``t = 1 - 2e-4`` and was not bracketed because that point lies beyond ``skip_beyond`` (``point``
    and ``dist_across`` are then that probe point, a point not classified i: an upper bound, not a verified
    crossing); ``evals`` forward passes spent."""

    point: torch.Tensor
    dist: torch.Tensor
    cls: torch.Tensor
    residual: torch.Tensor
    width: torch.Tensor
    top_two: torch.Tensor
    ok: torch.Tensor
    evals: torch.Tensor
    across: torch.Tensor
    dist_across: torch.Tensor

    def numpy(self) -> dict:
        return {k: getattr(self, k).detach().cpu().numpy() for k in self.__dataclass_fields__}


def _gap(logits: torch.Tensor, i: torch.Tensor):
    """``h = f_i - max_{k != i} f_k`` and the winning other class, per row."""
    r = torch.arange(logits.shape[0], device=logits.device)
    other = logits.clone()
    other[r, i] = -torch.inf
    best, k = other.max(1)
    return logits[r, i] - best, k


def verify_rays(f64: Float64Net, x: torch.Tensor, z: torch.Tensor, i: torch.Tensor, *, tol: float,
                p: float = 2.0, extend=EXTEND, max_iter: int = 100, skip_beyond=None, box=None) -> Verified:
    """Verify candidates ``z`` (P, D) of samples ``x`` (P, D) with predicted classes ``i`` (P,).

    The decision is probed at ``t = 1 - 2e-4`` and ``t = 1`` together (a candidate placed just across the
    boundary is bracketed at once), then the end point is pushed outward by the factors in ``extend`` until
    the decision has changed; a safeguarded regula falsi on ``h(t) = f_i - max_k f_k`` shrinks the bracket
    ``[t_lo, t_hi]`` until ``t_hi - t_lo <= tol * t_hi / 8``. Rows whose bracket is not found or not shrunk
    enough get ``ok=False``. ``skip_beyond`` (P,) distances: rays that already left class i at the probe
    point beyond that distance are not bracketed (``across``; a search aimed at one class that crossed
    another first, farther than a known boundary point, cannot give the margin). ``box=(lo, hi)`` (flat
    arrays): the ray stops at the box's faces, so every point evaluated and returned lies inside it."""
    ray = _Ray(f64, x, z, i, box)
    P, dev = ray.P, ray.dev
    lo = torch.zeros(P, dtype=torch.float64, device=dev)
    all_rows = torch.arange(P, device=dev)
    glo = ray.h(all_rows, lo)
    hi = torch.full_like(lo, float("nan"))
    ghi = torch.full_like(lo, float("nan"))
    todo = (glo > 0) & torch.isfinite(ray.d).all(1) & (ray.d.abs().amax(1) > 0)
    for group in [(1.0 - 2e-4, 1.0)] + [(s,) for s in extend if s > 1.0]:
        rows = torch.nonzero(todo & torch.isnan(hi)).flatten()
        if rows.numel() == 0:
            break
        k = len(group)
        t = torch.tensor(group, dtype=torch.float64, device=dev).repeat_interleave(rows.numel())
        t = torch.minimum(t, ray.t_max[rows.repeat(k)])
        g = ray.h(rows.repeat(k), t).reshape(k, -1)
        for q in range(k):  # in increasing t: the first end past the boundary closes the bracket
            open_ = torch.isnan(hi[rows])
            tq = t.reshape(k, -1)[q]
            hit, inside = open_ & (g[q] <= 0), open_ & (g[q] > 0) & (tq > lo[rows])
            hi[rows[hit]], ghi[rows[hit]] = tq[hit], g[q][hit]
            ray.keep_hi(rows[hit], q * rows.numel() + torch.nonzero(hit).flatten())
            lo[rows[inside]], glo[rows[inside]] = tq[inside], g[q][inside]
    found = torch.isfinite(hi)
    across = torch.zeros_like(found)
    if skip_beyond is not None:
        early = found & (hi < 1.0) & (lo == 0)
        far = _norm(hi[:, None] * ray.d, p) >= skip_beyond.to(ray.dev, torch.float64)
        across = early & far
    _shrink(ray, lo, hi, glo, ghi, found & ~across, tol * _STOP, max_iter)
    return _result(ray, lo, hi, found, tol, p, across)


def _norm(v, p):
    return v.abs().amax(1) if np.isinf(p) else torch.linalg.vector_norm(v, ord=p, dim=1)


class _Ray:
    """The rays x + t (z - x) of P candidates; evaluates h(t) = f_i - max_{k != i} f_k in float64 and keeps
    the logits at each row's current outer bracket end (so the result needs no extra pass)."""

    def __init__(self, f64, x, z, i, box=None):
        self.f64, self.dev = f64, f64.device
        self.x = x.to(self.dev, torch.float64)
        self.d = z.to(self.dev, torch.float64) - self.x
        self.i = i.to(self.dev)
        self.P = self.x.shape[0]
        self.box = None if box is None else tuple(
            torch.as_tensor(np.asarray(b, np.float64), device=self.dev) for b in box)
        self.t_max = _t_max(self.x, self.d, self.box)
        self.evals = torch.zeros(self.P, dtype=torch.int64, device=self.dev)
        self.lg_hi = None
        self._last = None

    def h(self, rows, t):
        self.evals.index_add_(0, rows, torch.ones_like(rows))
        lg = self.f64(self.at(rows, t))
        if self.lg_hi is None:
            self.lg_hi = torch.full((self.P, lg.shape[1]), float("nan"), dtype=lg.dtype, device=lg.device)
        self._last = lg
        return _gap(lg, self.i[rows])[0]

    def at(self, rows, t):
        """The points x + t d of ``rows``, clamped into the box (against rounding at its faces)."""
        z = self.x[rows] + t[:, None] * self.d[rows]
        return z if self.box is None else torch.minimum(torch.maximum(z, self.box[0]), self.box[1])

    def keep_hi(self, rows, which):
        """Rows ``rows`` took their new outer end from entries ``which`` of the last evaluation."""
        self.lg_hi[rows] = self._last[which]


def _t_max(x, d, box):
    """Largest t with x + t d inside the box (inf without a box)."""
    if box is None:
        return torch.full((x.shape[0],), float("inf"), dtype=torch.float64, device=x.device)
    lo, hi = box
    with np.errstate(divide="ignore", invalid="ignore"):
        up = torch.where(d > 0, (hi - x) / d, torch.full_like(d, float("inf")))
        down = torch.where(d < 0, (lo - x) / d, torch.full_like(d, float("inf")))
    return torch.minimum(up, down).amin(1).clamp(min=0.0)


def _shrink(ray, lo, hi, glo, ghi, active, rtol, max_iter):
    """Shrink the brackets of the ``active`` rows in place. Each step evaluates a pair of points straddling
    the regula falsi estimate (Illinois variant; bisection where the last step kept more than half the
    bracket) at +-rtol/2 relative: where h is linear near its root (ReLU networks, and every network close
    enough) one step closes the bracket, otherwise it is never worse than bisection."""
    active = active & ((hi - lo) > rtol * hi)
    side = torch.zeros_like(lo, dtype=torch.int8)       # Illinois: which end was kept last time
    slow = torch.zeros_like(lo, dtype=torch.bool)       # last step shrank the bracket by less than half
    for _ in range(max_iter):
        rows = torch.nonzero(active).flatten()
        m = rows.numel()
        if m == 0:
            return
        a, b, ga, gb = lo[rows], hi[rows], glo[rows], ghi[rows]
        t = b - gb * (b - a) / (gb - ga)
        bad = ~torch.isfinite(t) | (t <= a) | (t >= b) | slow[rows]
        t = torch.where(bad, 0.5 * (a + b), t)
        ta = torch.maximum(t * (1 - 0.5 * rtol), 0.5 * (a + t))
        tb = torch.minimum(t * (1 + 0.5 * rtol), 0.5 * (t + b))
        g2 = ray.h(torch.cat([rows, rows]), torch.cat([ta, tb]))
        g_a, g_b = g2[:m], g2[m:]
        # the new bracket: [ta, tb] if h changes sign between them, else the side of the pair it lies on
        in_a, in_b = g_a > 0, g_b > 0
        ar = torch.arange(m, device=rows.device)
        moved = ~in_b
        ray.keep_hi(rows[moved], torch.where(in_a, m + ar, ar)[moved])
        lo[rows] = torch.where(in_b, tb, torch.where(in_a, ta, a))
        hi[rows] = torch.where(in_b, b, torch.where(in_a, tb, ta))
        glo[rows] = torch.where(in_b, g_b, torch.where(in_a, g_a, torch.where(side[rows] == 1, ga * 0.5, ga)))
        keep_b = torch.where(side[rows] == -1, gb * 0.5, gb)
        ghi[rows] = torch.where(in_b, keep_b, torch.where(in_a, g_b, g_a))
        side[rows] = torch.where(in_b, -1, torch.where(in_a, 0, 1)).to(torch.int8)
        slow[rows] = (hi[rows] - lo[rows]) > 0.5 * (b - a)
        active[rows] = (hi[rows] - lo[rows]) > rtol * hi[rows]


def _clear_outer_end(ray, hi, found, tol):
    """An outer end that ties (h = 0 up to rounding: a root hit exactly on a piecewise-linear boundary) could
    read as class i in another batch; such ends move out by tol/4 (the bracket stays within tol)."""
    lg = ray.lg_hi
    gap = _gap(torch.where(found[:, None], lg, torch.zeros_like(lg)), ray.i)[0]
    tie = found & (-gap <= 64 * torch.finfo(torch.float64).eps * lg.abs().amax(1))
    rows = torch.nonzero(tie).flatten()
    if rows.numel():
        t = torch.minimum(hi[rows] * (1 + 0.25 * tol), ray.t_max[rows])
        ray.h(rows, t)
        ray.keep_hi(rows, torch.arange(rows.numel(), device=rows.device))
        hi[rows] = t


def _result(ray, lo, hi, found, tol, p, across) -> Verified:
    """What the brackets prove, from the logits kept at each outer end."""
    _clear_outer_end(ray, hi, found, tol)
    t_hi = torch.where(found, hi, torch.zeros_like(hi))
    point = ray.at(torch.arange(ray.P, device=ray.dev), t_hi)
    lg = torch.where(found[:, None], ray.lg_hi, torch.zeros_like(ray.lg_hi))
    gap, cls = _gap(lg, ray.i)
    width = torch.where(found, (hi - lo) / hi.clamp(min=1e-300), torch.full_like(hi, float("inf")))
    ok = found & (gap <= 0) & (width <= tol) & (t_hi > 0) & ~across
    r = torch.arange(ray.P, device=lg.device)
    masked = lg.clone()
    masked[r, cls] = -torch.inf
    top_two = masked.argmax(1) == ray.i
    dist = _norm(point - ray.x, p)
    nan = torch.full_like(dist, float("nan"))
    return Verified(point=point, dist=torch.where(ok, dist, nan), cls=torch.where(found, cls, -1),
                    residual=torch.where(found, -gap, nan), width=width, top_two=top_two & found, ok=ok,
                    evals=ray.evals, across=across & (gap <= 0), dist_across=torch.where(across, dist, nan))
