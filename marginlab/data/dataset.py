"""The ``Dataset`` container every room passes along: arrays, labels, provenance and corruption record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Dataset"]


@dataclass(eq=False)
class Dataset:
    """Samples ``X`` (n, *input_shape) float32 and integer labels ``y`` (n,).

    ``source`` says where the data came from (generator and parameters, verified files, or the bundled
    offline subset). Corruption (see :mod:`marginlab.corruption`) keeps the originals: ``y_original``,
    ``X_original`` and the boolean ``corrupted`` mask; ``corruption`` is ``None``, ``"label"`` or
    ``"gaussian"``. ``index`` maps each row to the row of the dataset it was drawn from.
    """

    X: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str = "dataset"
    source: str = "in-memory arrays"
    corrupted: np.ndarray | None = None
    y_original: np.ndarray | None = None
    X_original: np.ndarray | None = None
    corruption: str | None = None
    corruption_fraction: float = 0.0
    class_names: tuple | None = None
    index: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        X = np.asarray(self.X)
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float32)
        elif X.dtype != np.float32:
            X = X.astype(np.float32)
        y = np.asarray(self.y)
        if y.ndim != 1:
            raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
        if X.ndim < 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must have shape (n, ...) with n = len(y) = {y.shape[0]}, got {X.shape}")
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must lie in [0, {self.n_classes - 1}], "
                             f"got range [{y.min()}, {y.max()}]")
        self.X, self.y = X, y
        n = len(y)
        if self.corrupted is None:
            self.corrupted = np.zeros(n, dtype=bool)
        if self.y_original is None:
            self.y_original = y.copy()
        if self.X_original is None:
            self.X_original = X
        if self.index is None:
            self.index = np.arange(n)
        if self.class_names is None:
            self.class_names = tuple(str(c) for c in range(self.n_classes))

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        corr = f", corruption={self.corruption}:{int(self.corrupted.sum())}" if self.corruption else ""
        return (f"Dataset(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
                f"n_classes={self.n_classes}{corr}, source={self.source!r})")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    def subset(self, rows) -> Dataset:
        """Rows ``rows`` (indices or boolean mask) as a new Dataset; corruption record and provenance kept."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return dataclasses.replace(
            self, X=self.X[rows], y=self.y[rows], corrupted=self.corrupted[rows],
            y_original=self.y_original[rows], X_original=self.X_original[rows], index=self.index[rows],
            meta=dict(self.meta))

    def replace(self, **changes) -> Dataset:
        """A copy with some fields changed (like ``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def tensors(self, device="cpu"):
        """``(X, y)`` as torch tensors on ``device`` (float32, int64)."""
        import torch

        return (torch.as_tensor(self.X, device=device), torch.as_tensor(self.y, device=device))
