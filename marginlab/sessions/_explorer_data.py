"""The explorer's data and model: MNIST or your own arrays, a trained, cached, loaded or given classifier."""

from __future__ import annotations

import numpy as np

from .base import SessionError

__all__ = [
    "own_data",
    "check_model",
    "image_shape_for",
    "load_mnist_data",
    "split_and_corrupt",
    "release_memory",
]


def release_memory():
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``). Training, the margin
    solver, t-SNE and UMAP free hundreds of MB of temporaries that glibc otherwise keeps in the process's
    arenas, where they count against the notebook's memory limit (Binder: 1-2 GB). A no-op elsewhere."""
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # musl or another libc: nothing to trim
            pass


def own_data(data, n_classes: int | None = None):
    """A :class:`~marginlab.data.Dataset` from ``data = (X, y)``: X of shape (n, ...) (numbers), y integer
    class indices in [0, K). Raises :class:`SessionError` naming ``data``."""
    from ..data import Dataset

    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise SessionError(f"data must be a pair (X, y) of arrays, got {type(data).__name__}")
    X, y = data
    try:
        X = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError):
        raise SessionError("data: X must be numbers of shape (n, features...)") from None
    y = np.asarray(y)
    if X.ndim < 2 or len(X) < 10:
        raise SessionError(f"data: X must have shape (n, features...) with n >= 10, got {X.shape}")
    if y.shape != (len(X),):
        raise SessionError(f"data: y must be one label per sample, shape ({len(X)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise SessionError("data: y must be integer class indices 0, 1, ... (the model's outputs)")
    if not np.isfinite(X).all():
        raise SessionError("data: X holds NaN or infinite values")
    K = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.min() < 0 or y.max() >= K:
        raise SessionError(
            f"data: labels must lie in [0, {K - 1}] (the model has {K} outputs), got [{y.min()}, {y.max()}]"
        )
    if K < 2:
        raise SessionError("data: y must hold at least two classes")
    return Dataset(X, y.astype(np.int64), n_classes=K, name="your data", source="your arrays")


def check_model(model, X) -> int:
    """The number of classes of ``model`` (any ``torch.nn.Module`` returning logits (n, K)), checked on two
    samples of ``X``. Raises :class:`SessionError` naming ``model``."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise SessionError(f"model must be a torch.nn.Module classifier, got {type(model).__name__}")
    model.eval()
    try:
        p = next(model.parameters())
        dtype, device = p.dtype, p.device
    except StopIteration:
        dtype, device = torch.float32, torch.device("cpu")
    try:
        with torch.no_grad():
            out = model(torch.as_tensor(np.asarray(X[:2]), dtype=dtype, device=device))
    except Exception as exc:  # noqa: BLE001 - any failure here means the model does not take these inputs
        raise SessionError(
            f"model does not accept inputs of shape {tuple(np.shape(X)[1:])}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SessionError(f"model must return logits of shape (n, K) with K >= 2 classes, got {shape}")
    return int(out.shape[1])


def image_shape_for(input_shape, image_shape="auto"):
    """``(h, w)`` to draw a sample as an image, or None (no image panels). ``"auto"``: (h, w) for inputs of
    shape (h, w) or (1, h, w), flat 784 as 28x28 (MNIST), else None."""
    shape = tuple(int(s) for s in input_shape)
    n = int(np.prod(shape))
    if image_shape is None:
        return None
    if isinstance(image_shape, str):
        if image_shape != "auto":
            raise SessionError(f"image_shape must be None, 'auto' or (h, w), got {image_shape!r}")
        if len(shape) == 2:
            return shape
        if len(shape) == 3 and shape[0] == 1:
            return shape[1:]
        return (28, 28) if n == 784 else None
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise SessionError(f"image_shape must be None, 'auto' or (h, w), got {image_shape!r}") from None
    if h < 1 or w < 1 or h * w != n:
        raise SessionError(
            f"image_shape {image_shape!r} must hold all {n} input values (h * w = {n}); "
            "only grey-scale images are drawn"
        )
    return (h, w)


def load_mnist_data(s, root, seed: int):
    """Training data for settings ``s``: the MNIST training split, subset, train/val split, corruption."""
    from ..data import load_mnist

    return split_and_corrupt(load_mnist("train", root=root, offline_ok=(s.data_source == "auto")), s, seed)


def split_and_corrupt(ds, s, seed: int, *, corrupt_labels: bool = True):
    """``n_train`` samples of ``ds`` (MNIST only), a validation split, and the chosen corruption."""
    from ..corruption import corrupt
    from ..data import train_val_split

    if s.n_train is not None and s.data_source != "custom":
        if s.n_train > len(ds):
            raise SessionError(
                f"n_train = {s.n_train} is larger than the training data available "
                f"({len(ds)} images, {ds.meta.get('origin', ds.source)})"
            )
        ds = ds.subset(np.sort(np.random.default_rng(seed).permutation(len(ds))[: s.n_train]))
    train, val = train_val_split(ds, val_size=s.val_fraction, seed=seed) if s.val_fraction > 0 else (ds, None)
    if corrupt_labels and s.applied_fraction > 0:
        train = corrupt(train, s.corruption, s.applied_fraction, seed=seed)
    return train, val
