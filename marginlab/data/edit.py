"""Editing a dataset by hand (the playground's brush, shift-click delete and move): add, delete or move
samples, keeping the corruption record consistent and saying where every row came from.

Every edit returns an :class:`Edited`: the new :class:`~marginlab.data.Dataset`, ``source`` (the old row each
new row comes from, -1 for an added sample) and ``changed`` (rows whose input or label differ from their
source: added, moved or relabelled samples), which is what margin bookkeeping needs
(:mod:`marginlab.analysis.editing`). Edits chain with :meth:`Edited.then`.

The corruption record (see :mod:`marginlab.corruption`) after an edit:

- an added sample is clean: ``corrupted`` False, its own ``y_original`` / ``X_original``, ``index`` -1;
- a deleted sample takes its record with it;
- a moved sample is where the user put it: ``X_original`` becomes the new position too, so an input
  corruption of that sample ends; a label corruption stays (the label was not touched) unless the move also
  gives a new label, which becomes the sample's clean label (``y_original``).

Per-sample arrays in ``meta`` (any array whose length is the number of samples, such as the playground's
``label_corrupted`` / ``input_corrupted`` masks) follow the rows: subset on delete, extended on add (False,
-1, NaN or None by dtype), and the two masks above updated on a move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import Dataset

__all__ = ["Edited", "add_points", "delete_points", "move_points", "nearest_row", "corruption_masks"]

_LABEL_MASK, _INPUT_MASK = "label_corrupted", "input_corrupted"


@dataclass(frozen=True, eq=False)
class Edited:
    """An edited dataset with the row bookkeeping of the edit (see the module docstring): ``n_before`` rows
    before the edit; per new row, ``source`` (old row, -1 if added) and ``changed``."""

    dataset: Dataset
    source: np.ndarray
    changed: np.ndarray
    n_before: int

    def then(self, nxt: Edited) -> Edited:
        """The edit ``self`` followed by ``nxt`` (which was applied to ``self.dataset``), as one edit from the
        original dataset: sources are composed, a row changed by either edit is changed."""
        if not isinstance(nxt, Edited):
            raise TypeError(f"nxt must be an Edited, got {type(nxt).__name__}")
        if nxt.n_before != len(self.dataset):
            raise ValueError(f"nxt must be an edit of this edit's dataset ({len(self.dataset)} rows), "
                             f"it edited {nxt.n_before} rows")
        kept = nxt.source >= 0
        src = np.full(len(nxt.source), -1, np.int64)
        src[kept] = self.source[nxt.source[kept]]
        changed = nxt.changed.copy()
        changed[kept] |= self.changed[nxt.source[kept]]
        return Edited(nxt.dataset, src, changed | (src < 0), self.n_before)


def corruption_masks(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(label_corrupted, input_corrupted)`` per sample: the ``meta`` masks when the dataset has them (the
    playground's), else ``corrupted`` split by ``ds.corruption`` (``"label"``, ``"gaussian"``; for both kinds
    at once, by whether the label or the input differs from its original)."""
    n = len(ds)
    kinds = set(str(ds.corruption or "").split("+"))
    both = {"label", "gaussian"} <= kinds
    lab, inp = ds.meta.get(_LABEL_MASK), ds.meta.get(_INPUT_MASK)
    if lab is None:
        lab = ds.corrupted & ("label" in kinds) & ((ds.y != ds.y_original) if both else True)
    if inp is None:
        moved = (ds.X != ds.X_original).reshape(n, -1).any(1) if both else True
        inp = ds.corrupted & ("gaussian" in kinds) & moved
    return np.array(lab, bool).reshape(n), np.array(inp, bool).reshape(n)


def _per_sample(meta: dict, n: int):
    return [k for k, v in meta.items() if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n]


def _fill(v: np.ndarray, m: int) -> np.ndarray:
    shape = (m,) + v.shape[1:]
    if v.dtype == bool:
        return np.zeros(shape, bool)
    if np.issubdtype(v.dtype, np.integer):
        return np.full(shape, -1, v.dtype)
    if np.issubdtype(v.dtype, np.floating):
        return np.full(shape, np.nan, v.dtype)
    return np.full(shape, None, object)


def _provenance(ds: Dataset, meta: dict, what: str, count: int) -> tuple[str, dict]:
    edits = dict(meta.get("edits", {"added": 0, "deleted": 0, "moved": 0}))
    edits[what] += count
    source = ds.source if "edits" in ds.meta else f"{ds.source} | edited by hand"
    return source, {**meta, "edits": edits}


def _check_X(ds: Dataset, X, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.shape == ds.input_shape:
        X = X[None]
    if X.ndim < 2 or X.shape[1:] != ds.input_shape:
        raise ValueError(f"{name} must have shape (m, {', '.join(map(str, ds.input_shape))}), got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return X.astype(np.float32)


def _check_labels(ds: Dataset, y, m: int, name: str) -> np.ndarray:
    y = np.atleast_1d(np.asarray(y))
    if y.shape == (1,) and m > 1:
        y = np.repeat(y, m)
    if y.shape != (m,) or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"{name} must be {m} integer class label(s), got {y!r}")
    if y.size and (y.min() < 0 or y.max() >= ds.n_classes):
        raise ValueError(f"{name} must lie in [0, {ds.n_classes - 1}], got {y.tolist()}")
    return y.astype(np.int64)


def _check_rows(ds: Dataset, rows, name: str = "rows") -> np.ndarray:
    rows = np.atleast_1d(np.asarray(rows))
    if rows.dtype == bool:
        if rows.shape != (len(ds),):
            raise ValueError(f"{name} as a mask must have length {len(ds)}, got {rows.shape}")
        rows = np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"{name} must be row indices or a boolean mask, got {rows!r}")
    if rows.size and (rows.min() < 0 or rows.max() >= len(ds)):
        raise ValueError(f"{name} must lie in [0, {len(ds) - 1}], got {rows.tolist()}")
    if len(np.unique(rows)) != len(rows):
        raise ValueError(f"{name} lists a row more than once: {rows.tolist()}")
    return rows.astype(np.int64)


def add_points(ds: Dataset, X, y) -> Edited:
    """``ds`` with clean samples ``X`` (m, *input_shape) of classes ``y`` (m,) (one label for all allowed)
    appended at the end."""
    X = _check_X(ds, X, "X")
    y = _check_labels(ds, y, len(X), "y")
    m, n = len(X), len(ds)
    meta = dict(ds.meta)
    for k in _per_sample(meta, n):
        meta[k] = np.concatenate([meta[k], _fill(meta[k], m)])
    source, meta = _provenance(ds, meta, "added", m)
    new = ds.replace(X=np.concatenate([ds.X, X]), y=np.concatenate([ds.y, y]),
                     corrupted=np.concatenate([ds.corrupted, np.zeros(m, bool)]),
                     y_original=np.concatenate([ds.y_original, y]),
                     X_original=np.concatenate([ds.X_original, X]),
                     index=np.concatenate([ds.index, np.full(m, -1, ds.index.dtype)]), source=source,
                     meta=meta)
    src = np.concatenate([np.arange(n), np.full(m, -1)])
    return Edited(new, src, src < 0, n)


def delete_points(ds: Dataset, rows) -> Edited:
    """``ds`` without ``rows`` (indices or a boolean mask); the other rows keep their order."""
    rows = _check_rows(ds, rows)
    keep = np.setdiff1d(np.arange(len(ds)), rows)
    meta = dict(ds.meta)
    for k in _per_sample(meta, len(ds)):
        meta[k] = meta[k][keep]
    source, meta = _provenance(ds, meta, "deleted", len(rows))
    new = ds.subset(keep).replace(source=source, meta=meta)
    return Edited(new, keep.astype(np.int64), np.zeros(len(keep), bool), len(ds))


def move_points(ds: Dataset, rows, X, *, y=None) -> Edited:
    """``ds`` with samples ``rows`` moved to ``X`` (m, *input_shape), optionally relabelled ``y``; see the
    module docstring for what happens to their corruption record."""
    rows = _check_rows(ds, rows)
    X = _check_X(ds, X, "X")
    if len(X) != len(rows):
        raise ValueError(f"X must hold one position per row: {len(rows)} rows, {len(X)} positions")
    lab, inp = corruption_masks(ds)
    Xn, Xo = ds.X.copy(), ds.X_original.copy()
    Xn[rows], Xo[rows] = X, X
    yn, yo = ds.y.copy(), ds.y_original.copy()
    if y is not None:
        y = _check_labels(ds, y, len(rows), "y")
        yn[rows], yo[rows] = y, y
        lab[rows] = False
    inp[rows] = False
    meta = dict(ds.meta)
    for key, mask in ((_LABEL_MASK, lab), (_INPUT_MASK, inp)):
        if key in meta:
            meta[key] = mask
    source, meta = _provenance(ds, meta, "moved", len(rows))
    corrupted = ds.corrupted.copy()
    corrupted[rows] &= lab[rows] | inp[rows]
    new = ds.replace(X=Xn, X_original=Xo, y=yn, y_original=yo, corrupted=corrupted, source=source, meta=meta)
    changed = np.zeros(len(ds), bool)
    changed[rows] = True
    return Edited(new, np.arange(len(ds)), changed, len(ds))


def nearest_row(ds: Dataset, point, *, max_distance: float | None = None) -> int | None:
    """The row of the sample nearest (Euclidean) to ``point`` (a shift-click), or None when the dataset is
    empty or the nearest sample is farther than ``max_distance``."""
    from .._validation import check_float

    p = _check_X(ds, point, "point")[0].astype(np.float64)
    if max_distance is not None:
        max_distance = check_float(max_distance, "max_distance", min_value=0.0)
    if len(ds) == 0:
        return None
    d = np.linalg.norm(ds.X.reshape(len(ds), -1).astype(np.float64) - p.reshape(1, -1), axis=1)
    r = int(np.argmin(d))
    return None if max_distance is not None and d[r] > max_distance else r
