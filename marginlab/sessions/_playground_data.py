"""The playground's data: toy datasets or the user's own 2-D points, corruption, points added by clicks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import SessionError

__all__ = ["own_dataset", "combine_corruption", "corruption_kind", "append_point", "MAX_CLASSES"]

MAX_CLASSES = 20  # colours repeat after 10 classes; beyond 20 the regions are no longer readable


def _read_csv(path) -> tuple[np.ndarray, np.ndarray]:
    """Two feature columns and a label column (named ``label``/``class``/``y``, else the last one)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SessionError(f"data: no CSV file at {str(path)!r}")
    df = pd.read_csv(path)
    names = {str(c).strip().lower(): c for c in df.columns}
    label = next((names[k] for k in ("label", "class", "target", "y") if k in names), df.columns[-1])
    features = [c for c in df.columns if c != label]
    if len(features) != 2:
        raise SessionError(f"data: {path.name} must have two feature columns and one label column, got "
                           f"columns {list(map(str, df.columns))}")
    try:
        X = df[features].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise SessionError(f"data: the feature columns {features} of {path.name} must be numbers") from None
    return X, df[label].to_numpy()


def own_dataset(data):
    """A :class:`~marginlab.data.Dataset` from ``data = (X, y)`` (arrays, X of shape (n, 2)) or a CSV path.
    Labels may be any values (integers, strings); they become classes 0..K-1 in sorted order, their names
    kept as ``class_names``. Raises :class:`SessionError` naming ``data`` for anything else."""
    from ..data import Dataset

    if isinstance(data, (str, Path)):
        X, y = _read_csv(data)
        source = f"CSV file {Path(data).name}"
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
        source = "your arrays"
    else:
        raise SessionError("data must be a pair (X, y) of arrays or the path of a CSV file, got "
                           f"{type(data).__name__}")
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise SessionError("data: X must be numbers of shape (n, 2)") from None
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise SessionError(f"data: X must have shape (n, 2) (two coordinates per point), got {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise SessionError(f"data: y must be one label per point, shape ({len(X)},), got {y.shape}")
    if not np.isfinite(X).all():
        raise SessionError("data: X holds NaN or infinite coordinates")
    if len(X) < 4 or len(X) > 4000:
        raise SessionError(f"data: the playground takes 4 to 4000 points, got {len(X)}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise SessionError("data: y holds NaN labels")
    names, codes = np.unique(y, return_inverse=True)
    if not 2 <= len(names) <= MAX_CLASSES:
        raise SessionError(f"data: y must hold between 2 and {MAX_CLASSES} classes, got {len(names)}")
    return Dataset(X.astype(np.float32), codes.astype(np.int64), n_classes=len(names), name="your data",
                   source=source, class_names=tuple(str(n) for n in names))


def combine_corruption(train, label_percent: float, input_percent: float, seed: int):
    """``train`` with ``label_percent`` % of labels and ``input_percent`` % of inputs corrupted
    (independently drawn subsets, which may overlap). ``meta["label_corrupted"]`` and
    ``meta["input_corrupted"]`` keep the two masks; ``corrupted`` is their union."""
    from ..corruption import corrupt

    lab = corrupt(train, "label", label_percent / 100.0, seed=seed)
    inp = corrupt(train, "gaussian", input_percent / 100.0, seed=seed + 1)
    lab_mask, inp_mask = lab.corrupted.copy(), inp.corrupted.copy()
    kinds = [k for k, m in (("label", lab_mask), ("gaussian", inp_mask)) if m.any()]
    return train.replace(
        X=inp.X, y=lab.y, corrupted=lab_mask | inp_mask, y_original=train.y.copy(), X_original=train.X,
        corruption="+".join(kinds) or None,
        meta={**train.meta, "label_corrupted": lab_mask, "input_corrupted": inp_mask},
    )


def corruption_kind(ds) -> np.ndarray:
    """Per sample: 0 clean, 1 label-corrupted, 2 input-corrupted, 3 both."""
    n = len(ds)
    lab, inp = ds.meta.get("label_corrupted"), ds.meta.get("input_corrupted")
    lab = np.zeros(n, bool) if lab is None else np.asarray(lab, bool)
    inp = np.zeros(n, bool) if inp is None else np.asarray(inp, bool)
    if ds.corrupted.any() and not (lab.any() or inp.any()):
        (inp if ds.corruption == "gaussian" else lab)[:] = ds.corrupted
    return lab.astype(np.int8) + 2 * inp.astype(np.int8)


def append_point(ds, x: float, y: float, cls: int):
    """``ds`` with one clean sample at (x, y) of class ``cls`` appended (row index -1 marks it as added)."""
    X = np.concatenate([ds.X, np.array([[x, y]], np.float32)])
    meta = dict(ds.meta)
    for key in ("label_corrupted", "input_corrupted"):
        if key in meta:
            meta[key] = np.concatenate([meta[key], [False]])
    return ds.replace(
        X=X, y=np.concatenate([ds.y, [cls]]), corrupted=np.concatenate([ds.corrupted, [False]]),
        y_original=np.concatenate([ds.y_original, [cls]]), X_original=np.concatenate([ds.X_original, X[-1:]]),
        index=np.concatenate([ds.index, [-1]]), meta=meta,
    )
