"""Statistics behind the findings: effect sizes with bootstrap confidence intervals, one-sided tests and
Holm's correction.

Every claim of a paper is oriented so that it says "this effect is > 0". An :class:`Estimate` holds the
effect measured on the tables, its bootstrap replicates' percentile interval and the one-sided bootstrap
p-value P*(effect <= 0); the claim holds at level ``ALPHA`` when p < ALPHA, which is the same as the lower
end of the two-sided (1 - 2·ALPHA) interval lying above 0. The interval reported is that 90 % one.

Resampling follows what was measured: the same samples measured under two conditions are resampled
together (:func:`paired_rows`), independent samples group by group (:func:`resample_groups`), accuracies
whose per-sample outcomes were not stored are redrawn from their binomial (:func:`binomial_draws`), seeds are
resampled when there are several. Trends (over capacity or epochs) are slopes of least squares fits with the
slope's bootstrap interval (:func:`slope`, :func:`slope_replicates`), or Theil-Sen slopes with their own
interval where the quantity has no sampling noise to resample (:func:`theil_sen`, e.g. a minimum over every
training sample). Where a claim holds if any of several variants / eps / alpha shows it, the p-values are
Holm-adjusted (:func:`holm`) before the smallest is compared with ALPHA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALPHA",
    "N_BOOT",
    "Estimate",
    "estimate",
    "holm",
    "slope",
    "slope_replicates",
    "theil_sen",
    "paired_rows",
    "resample_groups",
    "binomial_draws",
    "rng",
]

#: one-sided significance level of every claim
ALPHA = 0.05
#: bootstrap replicates per statistic
N_BOOT = 2000


def rng(seed: int = 0) -> np.random.Generator:
    """The bootstrap's generator: fixed, so a report is the same every time it is computed."""
    return np.random.default_rng(seed)


@dataclass(frozen=True)
class Estimate:
    """An effect (> 0 means the claim's direction), its (1 - 2·alpha) interval ``lo, hi`` and the one-sided
    p-value of "effect <= 0" (``p_adj``: after Holm's correction where several were tried)."""

    value: float
    lo: float
    hi: float
    p: float
    p_adj: float | None = None
    label: str = ""

    @property
    def p_used(self) -> float:
        return self.p if self.p_adj is None else self.p_adj

    def holds(self, alpha: float = ALPHA) -> bool:
        return bool(np.isfinite(self.value) and self.p_used < alpha)

    def text(self, fmt: str = ".3g") -> str:
        adj = "" if self.p_adj is None else f", Holm p {self.p_adj:.3g}"
        return f"{self.value:{fmt}} [{self.lo:{fmt}}, {self.hi:{fmt}}] (p {self.p:.3g}{adj})"

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "value": self.value,
            "lo": self.lo,
            "hi": self.hi,
            "p": self.p,
            "p_adj": self.p_adj,
        }


def estimate(value: float, replicates, *, alpha: float = ALPHA, label: str = "") -> Estimate:
    """An :class:`Estimate` from the effect on the data and its bootstrap replicates (NaN replicates, e.g. a
    resample with an empty group, are dropped)."""
    r = np.asarray(replicates, float)
    r = r[np.isfinite(r)]
    if not np.isfinite(value) or len(r) == 0:
        return Estimate(float(value), np.nan, np.nan, 1.0, label=label)
    lo, hi = np.quantile(r, [alpha, 1 - alpha])
    p = (1 + np.sum(r <= 0)) / (len(r) + 1)
    return Estimate(float(value), float(lo), float(hi), float(p), label=label)


def holm(estimates: list[Estimate]) -> list[Estimate]:
    """The estimates with Holm-adjusted p-values (step-down, monotone, capped at 1)."""
    from dataclasses import replace

    m = len(estimates)
    order = np.argsort([e.p for e in estimates], kind="stable")
    adj, running = [0.0] * m, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * estimates[i].p))
        adj[i] = running
    return [replace(e, p_adj=float(a)) for e, a in zip(estimates, adj)]


def slope(x, y) -> float:
    """Least squares slope of ``y`` on ``x`` (NaN pairs dropped; NaN with fewer than two distinct x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(np.unique(x)) < 2:
        return np.nan
    xc = x - x.mean()
    return float(xc @ (y - y.mean()) / (xc @ xc))


def slope_replicates(x, Y) -> np.ndarray:
    """Slopes of every row of ``Y`` (replicates × len(x)) on ``x``, vectorised."""
    x, Y = np.asarray(x, float), np.asarray(Y, float)
    xc = x - x.mean()
    return (Y - Y.mean(1, keepdims=True)) @ xc / (xc @ xc)


def theil_sen(x, y, *, sign: float = 1.0, alpha: float = ALPHA, label: str = "") -> Estimate:
    """Theil-Sen slope of ``y`` on ``x`` times ``sign`` with its (1 - 2·alpha) interval (Sen 1968); the
    p-value is Kendall's tau one-sided test of ``sign``·trend <= 0. For quantities without sampling noise to
    resample (an exact minimum over a whole training set): the noise is epoch to epoch."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3:
        return Estimate(np.nan, np.nan, np.nan, 1.0, label=label)
    s, _, lo, hi = stats.theilslopes(y, x, alpha=1 - 2 * alpha)
    tau = stats.kendalltau(x, sign * y, alternative="greater")
    lo, hi = sorted((sign * lo, sign * hi))
    return Estimate(float(sign * s), float(lo), float(hi), float(tau.pvalue), label=label)


def paired_rows(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Resampled row indices (n_boot × n): one draw used for every condition measured on these rows."""
    return rng(seed).integers(0, n, size=(n_boot, n))


def resample_groups(values: dict, stat, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Replicates of ``stat({key: resampled values})``: each group of independent samples resampled on
    its own (groups of different sizes, e.g. clean and corrupted samples)."""
    g = rng(seed)
    arrays = {k: np.asarray(v, float) for k, v in values.items()}
    out = np.empty(n_boot)
    for b in range(n_boot):
        out[b] = stat({k: a[g.integers(0, len(a), len(a))] if len(a) else a for k, a in arrays.items()})
    return out


def binomial_draws(p, n, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Replicates of accuracies ``p`` measured on ``n`` samples each (n_boot × len(p)): the parametric
    bootstrap of proportions whose per-sample outcomes were not stored."""
    p, n = np.broadcast_arrays(np.asarray(p, float), np.asarray(n, float))
    k = rng(seed).binomial(n.astype(int), np.clip(p, 0, 1), size=(n_boot, *p.shape))
    return k / np.where(n > 0, n, np.nan)
