"""Sound linear relaxations of elementwise activations on an interval (for CROWN-style bounds).

For pre-activation bounds l <= z <= u, :func:`relax` returns lines with

    a_lo z + c_lo  <=  s(z)  <=  a_up z + c_up      for every z in [l, u].

Soundness does not rest on the choice of the slopes: for any slope a, the constants are the exact minimum
and maximum of psi(z) = s(z) - a z over [l, u], computed piece by piece. Each activation is split at its
inflection points/kinks into pieces on which s is linear, convex or concave, so psi is linear, convex or
concave there: its extremes lie at the piece ends, or (for the max of a concave / min of a convex piece) at
the root of s'(z) = a, found by bisection. The bisection's last bracket [z0, z1] is closed rigorously by
the tangent inequality (psi concave: psi(z*) <= psi(z0) + psi'(z0) (z1 - z0)), and a relative slack of 1e-12
covers float64 rounding. The slopes only decide tightness and follow the usual choices (Zhang et al. 2018,
CROWN): chord above / tangent at the midpoint below on convex pieces (for ReLU this is CROWN's adaptive
lower slope), the reverse on concave ones, and for S-shaped functions (tanh, sigmoid) across the inflection
point the tangent through the far end point (or the chord where it is already sound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Act", "act_of", "relax"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Act:
    """An elementwise activation: ``kind`` in relu, leaky_relu (``param`` = slope), elu (``param`` =
    alpha), tanh, sigmoid, gelu (erf form), softplus (``param`` = beta, ``threshold`` as in torch)."""

    kind: str
    param: float = 0.0
    threshold: float = math.inf

    # ---- values --------------------------------------------------------------------------------------
    def forward(self, z):
        """The value torch computes (softplus switches to the identity above its threshold)."""
        if self.kind == "softplus":
            return torch.nn.functional.softplus(z, beta=self.param, threshold=self.threshold)
        return self.f(z)

    def f(self, z):
        """The mathematical function (smooth softplus), used by the relaxations."""
        k = self.kind
        if k == "relu":
            return torch.clamp(z, min=0)
        if k == "leaky_relu":
            return torch.where(z > 0, z, self.param * z)
        if k == "elu":
            return torch.where(z > 0, z, self.param * torch.expm1(torch.clamp(z, max=0)))
        if k == "tanh":
            return torch.tanh(z)
        if k == "sigmoid":
            return torch.sigmoid(z)
        if k == "gelu":
            return 0.5 * z * (1.0 + torch.erf(z / _SQRT2))
        bz = self.param * z  # softplus
        return (torch.clamp(bz, min=0) + torch.log1p(torch.exp(-bz.abs()))) / self.param

    def df(self, z):
        k = self.kind
        if k == "relu":
            return (z > 0).to(z.dtype)
        if k == "leaky_relu":
            return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, self.param))
        if k == "elu":
            return torch.where(z > 0, torch.ones_like(z), self.param * torch.exp(torch.clamp(z, max=0)))
        if k == "tanh":
            return 1.0 - torch.tanh(z) ** 2
        if k == "sigmoid":
            s = torch.sigmoid(z)
            return s * (1.0 - s)
        if k == "gelu":
            return 0.5 * (1.0 + torch.erf(z / _SQRT2)) + z * _INV_SQRT_2PI * torch.exp(-0.5 * z * z)
        return torch.sigmoid(self.param * z)

    # ---- shape ---------------------------------------------------------------------------------------
    @property
    def breakpoints(self) -> tuple:
        if self.kind == "gelu":
            return (-_SQRT2, _SQRT2)
        return () if self.kind == "softplus" else (0.0,)

    @property
    def pieces(self) -> tuple:
        """Curvature of s on each piece between breakpoints."""
        k = self.kind
        if k in ("relu", "leaky_relu"):
            return ("linear", "linear")
        if k == "elu":
            return ("convex" if self.param > 0 else "concave" if self.param < 0 else "linear", "linear")
        if k in ("tanh", "sigmoid"):
            return ("convex", "concave")
        if k == "gelu":
            return ("concave", "convex", "concave")
        return ("convex",)

    @property
    def lower_slack(self) -> float:
        """How far torch's value may lie below s: softplus returns z above its threshold, which is
        below the smooth function by log1p(exp(-threshold)) / beta at most."""
        if self.kind == "softplus" and math.isfinite(self.threshold):
            return math.exp(-self.threshold) / self.param
        return 0.0


def act_of(m: nn.Module) -> Act | None:
    """The :class:`Act` of an activation module (None if it is not one the bounds support)."""
    if isinstance(m, nn.ReLU):
        return Act("relu")
    if isinstance(m, nn.LeakyReLU):
        return Act("leaky_relu", float(m.negative_slope))
    if isinstance(m, nn.ELU):
        return Act("elu", float(m.alpha))
    if isinstance(m, nn.Tanh):
        return Act("tanh")
    if isinstance(m, nn.Sigmoid):
        return Act("sigmoid")
    if isinstance(m, nn.GELU) and m.approximate == "none":
        return Act("gelu")
    if isinstance(m, nn.Softplus) and m.beta > 0:
        return Act("softplus", float(m.beta), float(m.threshold))
    return None


# ---- the relaxation ----------------------------------------------------------------------------------
def relax(act: Act, l: torch.Tensor, u: torch.Tensor, iters: int = 40):
    """``(a_lo, c_lo, a_up, c_up)``, each shaped like l, u: sound linear bounds of s on [l, u]."""
    l, u = torch.minimum(l, u), torch.maximum(l, u)
    a_lo, a_up = _slopes(act, l, u)
    c_lo = -_max_offset(act, a_lo, l, u, -1.0, iters)
    c_up = _max_offset(act, a_up, l, u, 1.0, iters)
    slack = 1e-12 * (1.0 + act.f(l).abs() + act.f(u).abs()
                     + torch.maximum(a_lo.abs(), a_up.abs()) * (l.abs() + u.abs()))
    return a_lo, c_lo - slack - act.lower_slack, a_up, c_up + slack


def _max_offset(act, a, l, u, sign, iters):
    """max over [l, u] of sign * (s(z) - a z), bounded from above (sign = -1 gives minus the minimum)."""
    def phi(z):
        return sign * (act.f(z) - a * z)

    def dphi(z):
        return sign * (act.df(z) - a)

    edges = [l] + [torch.clamp(torch.full_like(l, b), min=l, max=u) for b in act.breakpoints] + [u]
    best = torch.stack([phi(e) for e in edges]).amax(0)
    # interior maxima: where phi is concave on a piece (s concave for the max, convex for the min)
    want = "concave" if sign > 0 else "convex"
    for q, curv in enumerate(act.pieces):
        if curv != want:
            continue
        lo, hi = edges[q], edges[q + 1]
        root = (dphi(lo) > 0) & (dphi(hi) < 0)  # dphi decreases on the piece: a root inside
        if not bool(root.any()):
            continue
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            up = dphi(mid) > 0
            lo = torch.where(up, mid, lo)
            hi = torch.where(up, hi, mid)
        # concavity: phi(z*) <= phi(lo) + phi'(lo) (z* - lo) <= phi(lo) + max(phi'(lo), 0) (hi - lo)
        top = phi(lo) + torch.clamp(dphi(lo), min=0) * (hi - lo)
        best = torch.where(root, torch.maximum(best, top), best)
    return best


def _slopes(act, l, u):
    """Slopes (a_lo, a_up) of the lower and upper lines (tightness only; soundness does not depend on
    them)."""
    w = u - l
    m = 0.5 * (l + u)
    dm = act.df(m)
    tiny = w <= 1e-12 * (1.0 + m.abs())
    k = torch.where(tiny, dm, (act.f(u) - act.f(l)) / torch.where(tiny, torch.ones_like(w), w))
    kind = act.kind
    if kind in ("relu", "elu", "softplus") or kind == "leaky_relu" and act.param <= 1:
        return dm, k                                  # convex: tangent below, chord above
    if kind == "leaky_relu":
        return k, dm                                  # concave (slope > 1)
    if kind == "gelu":
        concave = (u <= -_SQRT2) | (l >= _SQRT2)
        return torch.where(concave, k, dm), torch.where(concave, dm, k)
    # tanh, sigmoid: convex left of 0, concave right of it
    a_lo = torch.where(u <= 0, dm, k)
    a_up = torch.where(l >= 0, dm, k)
    mixed = (l < 0) & (u > 0) & ~tiny
    if bool(mixed.any()):
        fl, fu = act.f(l), act.f(u)
        # upper: tangent at d in [0, u] through (l, s(l)), where the chord is not yet above s
        need = mixed & (act.df(u) < k)
        d = _bisect(lambda t: act.f(t) + act.df(t) * (l - t) - fl >= 0, torch.zeros_like(u), u, keep_hi=True)
        a_up = torch.where(need, act.df(d), a_up)
        # lower: tangent at d in [l, 0] through (u, s(u))
        need = mixed & (act.df(l) < k)
        d = _bisect(lambda t: act.f(t) + act.df(t) * (u - t) - fu > 0, l, torch.zeros_like(l), keep_hi=False)
        a_lo = torch.where(need, act.df(d), a_lo)
    return a_lo, a_up


def _bisect(pred, lo, hi, *, keep_hi, iters=30):
    """Bisection for the switch of a monotone predicate (False at lo, True at hi)."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        t = pred(mid)
        lo = torch.where(t, lo, mid)
        hi = torch.where(t, mid, hi)
    return hi if keep_hi else lo
