"""``MarginResult``: the one per-sample result every margin method returns (plain numpy arrays)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MarginResult", "default_status", "merge_info"]

_ROW_FIELDS = ("margin", "point", "pred", "boundary_class", "residual", "top_two", "converged", "distances",
               "label", "skipped", "iterations", "evaluations", "seconds", "status", "verified", "agree",
               "lower", "certified")


@dataclass(eq=False)
class MarginResult:
    """Per-sample margins (seed 000 Eq. 1-3) with the boundary points that certify them.

    Attributes (n samples, K classes)
    ---------------------------------
    margin : (n,) float64
        Distance (in the ``p``-norm) from the sample to the nearest decision boundary. NaN where the
        sample was skipped or no boundary point verified. With ``signed=True`` misclassified samples
        (``pred != label``) get a negative margin (seed 002's signed distance).
    point : (n, *input_shape) float64
        The boundary point achieving ``margin`` (NaN rows where none).
    pred : (n,) int64
        Predicted class i at the sample.
    boundary_class : (n,) int64
        Class j on the other side of the boundary at ``point`` (-1 where none).
    residual : (n,) float64
        ``|f_i - f_j|`` at ``point`` in float64 (NaN where none).
    top_two : (n,) bool
        Whether i and j are the two largest logits at ``point`` (float64).
    converged : (n,) bool
        The point verified: ``residual <= tol * max(1, |f_i|, |f_j|)`` and ``top_two``. For exact methods a
        sample that does not verify has ``margin = NaN``. For estimates (``estimate=True``: linearized,
        random-direction interpolation, Lipschitz bounds) ``margin`` holds the estimate and ``converged``
        only says whether its point happened to be an exact boundary point.
    distances : (n, K) float64
        Distance to the verified i/j boundary for every class j (NaN for i itself, for classes not
        searched and for pairs that did not verify).
    label : (n,) int64 or None
        Labels given by the caller.
    skipped : (n,) bool
        Samples not solved (``skip_misclassified=True`` and misclassified).
    iterations, evaluations : (n,) int64
        Solver iterations (max over the sample's pairs) and model evaluations (forward or forward+backward
        passes per sample, summed over its pairs).
    seconds : (n,) float64
        Wall-clock seconds attributed to the sample (batched methods share the batch time evenly).
    status : (n,) str
        Why a sample is or is not converged, in words: ``"converged"``, ``"certified"`` (mip: converged and
        proved globally optimal), ``"skipped"``, ``"unresolved pair 7"``, ``"budget exhausted"``, ``"starts
        disagree"``, ``"no boundary point"``, ``"gap"`` / ``"time limit"`` (mip) ...
    verified : (n,) bool
        ``margin`` is the distance to a verified point of the decision boundary (an upper bound on the true
        margin), whether or not the search is known to have found the nearest one.
    agree : (n,) int64
        Number of independent starts that reached the sample's best distance (evidence of optimality).
    lower : (n,) float64
        A proved lower bound on the margin (NaN unless computed: ``certify=True`` or ``method="mip"``).
    certified : (n,) bool
        ``lower >= margin * (1 - 1e-4)``: the margin is the proved global optimum.
    method, p, layer, tol, estimate, info
        The method name, norm, representation index, verification tolerance, whether ``margin`` is an
        estimate rather than a verified distance, and free-form solver details.
    """

    margin: np.ndarray
    point: np.ndarray
    pred: np.ndarray
    boundary_class: np.ndarray
    residual: np.ndarray
    top_two: np.ndarray
    converged: np.ndarray
    distances: np.ndarray
    label: np.ndarray | None = None
    skipped: np.ndarray | None = None
    iterations: np.ndarray | None = None
    evaluations: np.ndarray | None = None
    seconds: np.ndarray | None = None
    status: np.ndarray | None = None
    verified: np.ndarray | None = None
    agree: np.ndarray | None = None
    lower: np.ndarray | None = None
    certified: np.ndarray | None = None
    method: str = ""
    p: float = 2.0
    layer: int = 0
    tol: float = 1e-6
    estimate: bool = False
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(np.asarray(self.margin))
        self.margin = np.asarray(self.margin, dtype=np.float64)
        self.point = np.asarray(self.point, dtype=np.float64)
        self.pred = np.asarray(self.pred, dtype=np.int64)
        self.boundary_class = np.asarray(self.boundary_class, dtype=np.int64)
        self.residual = np.asarray(self.residual, dtype=np.float64)
        self.top_two = np.asarray(self.top_two, dtype=bool)
        self.converged = np.asarray(self.converged, dtype=bool)
        self.distances = np.asarray(self.distances, dtype=np.float64)
        if self.label is not None:
            self.label = np.asarray(self.label, dtype=np.int64)
        self.skipped = np.zeros(n, bool) if self.skipped is None else np.asarray(self.skipped, dtype=bool)
        self.iterations = (np.zeros(n, np.int64) if self.iterations is None
                           else np.asarray(self.iterations, dtype=np.int64))
        self.evaluations = (np.zeros(n, np.int64) if self.evaluations is None
                            else np.asarray(self.evaluations, dtype=np.int64))
        self.seconds = np.zeros(n) if self.seconds is None else np.asarray(self.seconds, dtype=np.float64)
        if self.verified is None:
            self.verified = (np.zeros(n, bool) if self.estimate
                             else self.converged & np.isfinite(self.margin))
        self.verified = np.asarray(self.verified, dtype=bool)
        if self.status is None:
            self.status = default_status(self.converged, self.skipped, self.margin)
        self.status = np.asarray(self.status, dtype=object)
        self.agree = np.zeros(n, np.int64) if self.agree is None else np.asarray(self.agree, dtype=np.int64)
        self.lower = np.full(n, np.nan) if self.lower is None else np.asarray(self.lower, dtype=np.float64)
        self.certified = (np.zeros(n, bool) if self.certified is None
                          else np.asarray(self.certified, dtype=bool))
        for name in _ROW_FIELDS:
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"MarginResult.{name} has {len(value)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.margin)

    @property
    def correct(self) -> np.ndarray | None:
        """``pred == label`` (None without labels)."""
        return None if self.label is None else self.pred == self.label

    def subset(self, rows) -> MarginResult:
        """The result restricted to ``rows`` (indices or a boolean mask)."""
        rows = np.asarray(rows)
        kw = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v[rows] if f.name in _ROW_FIELDS and v is not None else v
        return MarginResult(**kw)

    @classmethod
    def concat(cls, results) -> MarginResult:
        """Stack results of the same method computed on consecutive chunks."""
        results = list(results)
        if not results:
            raise ValueError("results must not be empty")
        first = results[0]
        kw = {}
        for f in dataclasses.fields(first):
            vals = [getattr(r, f.name) for r in results]
            if f.name in _ROW_FIELDS:
                kw[f.name] = None if any(v is None for v in vals) else np.concatenate(vals, axis=0)
            else:
                kw[f.name] = vals[0]
        kw["info"] = merge_info([r.info for r in results])
        return cls(**kw)

    def to_frame(self):
        """A tidy pandas DataFrame, one row per sample (the point and per-class distances as columns
        ``dist_0 ... dist_{K-1}``; the point itself is left out, it is ``self.point``)."""
        import pandas as pd

        cols = {
            "margin": self.margin, "pred": self.pred, "boundary_class": self.boundary_class,
            "residual": self.residual, "top_two": self.top_two, "converged": self.converged,
            "skipped": self.skipped, "iterations": self.iterations, "evaluations": self.evaluations,
            "seconds": self.seconds, "status": self.status, "verified": self.verified, "agree": self.agree,
            "lower": self.lower, "certified": self.certified,
        }
        if self.label is not None:
            cols["label"] = self.label
        for k in range(self.distances.shape[1] if self.distances.ndim == 2 else 0):
            cols[f"dist_{k}"] = self.distances[:, k]
        df = pd.DataFrame(cols)
        df.attrs.update(method=self.method, p=self.p, layer=self.layer, tol=self.tol, estimate=self.estimate)
        return df

    def __repr__(self) -> str:
        n = len(self)
        ok = int(self.converged.sum())
        med = np.nanmedian(self.margin) if np.isfinite(self.margin).any() else float("nan")
        return (f"MarginResult(method={self.method!r}, n={n}, converged={ok}/{n}, p={self.p:g}, "
                f"layer={self.layer}, median_margin={med:.4g})")


def default_status(converged, skipped, margin) -> np.ndarray:
    """Status words when a method gives no finer reason: converged / skipped / not converged."""
    out = np.where(np.asarray(converged, bool), "converged",
                   np.where(np.isfinite(np.asarray(margin, float)), "not converged", "no boundary point"))
    out = np.where(np.asarray(skipped, bool), "skipped", out)
    return out.astype(object)


def merge_info(infos) -> dict:
    """Solver details of consecutive chunks as one dict: counts (ints) add up, lists concatenate, anything
    else keeps the first chunk's value."""
    infos = [dict(i or {}) for i in infos]
    out = dict(infos[0]) if infos else {}
    for info in infos[1:]:
        for k, v in info.items():
            if k not in out:
                out[k] = v
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool) and isinstance(
                    out[k], (int, np.integer)):
                out[k] = out[k] + v
            elif isinstance(v, list) and isinstance(out[k], list):
                out[k] = out[k] + v
    return out
