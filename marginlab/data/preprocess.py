"""Preprocessing: [0,1] scaling, standardisation, projection onto the sphere of radius sqrt(d), class
subsets and train/validation splits. Each function returns a new :class:`Dataset`."""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int
from .dataset import Dataset

__all__ = ["scale01", "standardize", "project_sphere", "class_subset", "binary_relabel",
           "train_test_split", "train_val_split", "flatten"]


def _apply(ds: Dataset, fn, tag: str) -> Dataset:
    X = fn(ds.X).astype(np.float32)
    X_orig = X if ds.X_original is ds.X else fn(ds.X_original).astype(np.float32)
    return ds.replace(X=X, X_original=X_orig, source=f"{ds.source} | {tag}")


def scale01(ds: Dataset, *, max_value: float | None = None) -> Dataset:
    """Divide by ``max_value`` (default: 255 for byte-valued data, else the data's maximum) to get [0, 1]."""
    if max_value is None:
        max_value = 255.0 if ds.X_original.max() > 1.0 else 1.0
    m = check_float(max_value, "max_value", min_value=0.0, min_inclusive=False)
    return _apply(ds, lambda X: X / m, f"scale01(/{m:g})")


def standardize(ds: Dataset, *, mean=None, std=None, eps: float = 1e-8):
    """Per-feature zero mean and unit variance. Statistics default to this dataset's (pass the training set's
    ``mean``/``std`` for a test set); returns ``(dataset, mean, std)``."""
    Xo = ds.X.reshape(len(ds), -1)
    mean = Xo.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float32).reshape(-1)
    std = Xo.std(axis=0) if std is None else np.asarray(std, dtype=np.float32).reshape(-1)
    std = np.where(std < eps, 1.0, std)
    shape = ds.X.shape[1:]

    def fn(X):
        return ((X.reshape(len(X), -1) - mean) / std).reshape((len(X),) + shape)

    return _apply(ds, fn, "standardize"), mean, std


def project_sphere(ds: Dataset) -> Dataset:
    """Project each input onto the sphere of radius sqrt(d) (seed 001, Recipe 1 step 1)."""
    d = ds.n_features

    def fn(X):
        flat = X.reshape(len(X), -1).astype(np.float64)
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (flat * (np.sqrt(d) / norms)).reshape(X.shape)

    return _apply(ds, fn, "project_sphere(sqrt(d))")


def flatten(ds: Dataset) -> Dataset:
    """Inputs as vectors of length d."""
    return _apply(ds, lambda X: X.reshape(len(X), -1), "flatten")


def class_subset(ds: Dataset, classes, *, relabel: bool = True) -> Dataset:
    """Keep only samples whose label is in ``classes``; relabel them 0..k-1 in the given order."""
    classes = [check_int(c, "classes[]", min_value=0, max_value=ds.n_classes - 1) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must name at least two distinct classes, got {classes}")
    keep = np.isin(ds.y, classes)
    sub = ds.subset(keep)
    if not relabel:
        return sub.replace(source=f"{ds.source} | classes {classes}")
    lut = np.full(ds.n_classes, -1, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    y_orig = lut[sub.y_original]
    # a label-corrupted original outside the subset keeps -1 -> mark with the corrupted label
    y_orig = np.where(y_orig < 0, lut[sub.y], y_orig)
    names = tuple(ds.class_names[c] for c in classes)
    return sub.replace(y=lut[sub.y], y_original=y_orig, n_classes=len(classes), class_names=names,
                       source=f"{ds.source} | classes {classes}")


def binary_relabel(ds: Dataset, positive, *, name: str = "binary") -> Dataset:
    """Two classes: 1 for labels in ``positive`` (e.g. the odd digits), 0 otherwise (even vs odd)."""
    positive = np.asarray([check_int(c, "positive[]", min_value=0, max_value=ds.n_classes - 1)
                           for c in positive])
    if positive.size == 0 or positive.size >= ds.n_classes:
        raise ValueError("positive must be a non-empty proper subset of the classes, "
                         f"got {positive.tolist()}")
    y = np.isin(ds.y, positive).astype(np.int64)
    y_orig = np.isin(ds.y_original, positive).astype(np.int64)
    return ds.replace(y=y, y_original=y_orig, n_classes=2, class_names=("rest", name),
                      source=f"{ds.source} | binary {positive.tolist()} vs rest")


def train_test_split(ds: Dataset, *, test_size: float = 0.2, seed: int = 0,
                     stratify: bool = True) -> tuple[Dataset, Dataset]:
    """Random (stratified) split into ``(train, test)``; ``test_size`` is a fraction in [0, 1)."""
    test_size = check_float(test_size, "test_size", min_value=0.0, max_value=1.0, max_inclusive=False)
    seed = check_int(seed, "seed", min_value=0)
    n = len(ds)
    n_test = int(round(test_size * n))
    rng = np.random.default_rng(seed)
    if n_test == 0:
        return ds.subset(np.arange(n)), ds.subset(np.arange(0))
    if stratify:
        test_rows = []
        for c in range(ds.n_classes):
            rows = np.flatnonzero(ds.y == c)
            k = int(round(test_size * len(rows)))
            test_rows.append(rng.permutation(rows)[:k])
        test = np.concatenate(test_rows)
    else:
        test = rng.permutation(n)[:n_test]
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    train_rows = np.flatnonzero(~mask)
    test_rows = np.flatnonzero(mask)
    return ds.subset(rng.permutation(train_rows)), ds.subset(rng.permutation(test_rows))


def train_val_split(ds: Dataset, *, val_size=0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``(train, validation)``; ``val_size`` is a fraction in [0, 1) or a count (e.g. 5000 as in seed 000)."""
    if isinstance(val_size, (int, np.integer)) and not isinstance(val_size, bool) and val_size >= 1:
        val_size = check_int(val_size, "val_size", min_value=0, max_value=len(ds) - 1) / len(ds)
    return train_test_split(ds, test_size=val_size, seed=seed)
