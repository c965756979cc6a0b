"""Toy 2-D datasets (moons, circles, spirals, XOR, blobs), deterministic from ``seed``."""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_float, check_int
from .dataset import Dataset

__all__ = ["TOY_DATASETS", "make_toy", "load_toy"]

TOY_DATASETS = ("moons", "circles", "spirals", "xor", "blobs")


def _moons(n, noise, rng, n_classes):
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n, noise=noise, random_state=rng.integers(2**31 - 1))
    return X, y


def _circles(n, noise, rng, n_classes):
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=n, noise=noise, factor=0.5, random_state=rng.integers(2**31 - 1))
    return X, y


def _spirals(n, noise, rng, n_classes):
    # K interleaved arms: arm k is rotated by 2*pi*k/K; radius grows linearly with the angle.
    y = np.arange(n) % n_classes
    t = rng.uniform(0.0, 1.0, size=n)
    theta = t * 1.75 * np.pi + 2 * np.pi * y / n_classes
    r = 0.1 + t
    X = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def _xor(n, noise, rng, n_classes):
    X = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)
    # keep points a little off the axes so the classes are separable at noise 0
    X = X + 0.1 * np.sign(X)
    X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def _blobs(n, noise, rng, n_classes):
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    centers = 1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = np.arange(n) % n_classes
    X = centers[y] + rng.normal(scale=max(noise, 0.0), size=(n, 2))
    return X, y


_GENERATORS = {"moons": _moons, "circles": _circles, "spirals": _spirals, "xor": _xor, "blobs": _blobs}
_FIXED_CLASSES = {"moons": 2, "circles": 2, "xor": 2}


def make_toy(name: str = "moons", n_samples: int = 400, *, noise: float = 0.1, n_classes: int | None = None,
             seed: int = 0) -> Dataset:
    """Generate one toy 2-D dataset of ``n_samples`` points.

    ``name`` is one of ``moons, circles, spirals, xor, blobs``; ``n_classes`` applies to spirals (arms) and
    blobs (default 3); the others have two classes. The same ``seed`` gives the same data.
    """
    name = check_choice(name, "name", TOY_DATASETS)
    n = check_int(n_samples, "n_samples", min_value=1)
    noise = check_float(noise, "noise", min_value=0.0)
    seed = check_int(seed, "seed", min_value=0)
    if name in _FIXED_CLASSES:
        if n_classes not in (None, 2):
            raise ValueError(f"n_classes must be 2 (or None) for {name!r}, got {n_classes}")
        k = 2
    else:
        k = check_int(3 if n_classes is None else n_classes, "n_classes", min_value=2, max_value=20)
    rng = np.random.default_rng(seed)
    X, y = _GENERATORS[name](n, noise, rng, k)
    # shuffle so that any prefix holds every class
    perm = rng.permutation(n)
    X, y = X[perm].astype(np.float32), np.asarray(y)[perm].astype(np.int64)
    src = f"generated: {name}(n_samples={n}, noise={noise:g}, n_classes={k}, seed={seed})"
    return Dataset(X, y, n_classes=k, name=name, source=src,
                   meta={"generator": name, "noise": noise, "seed": seed})


def load_toy(name: str = "moons", n_samples: int = 400, *, noise: float = 0.1, test_size: float = 0.3,
             n_classes: int | None = None, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``(train, test)`` split of :func:`make_toy`; ``test_size`` is a fraction in [0, 1)."""
    from .preprocess import train_test_split

    ds = make_toy(name, n_samples, noise=noise, n_classes=n_classes, seed=seed)
    test_size = check_float(test_size, "test_size", min_value=0.0, max_value=1.0, max_inclusive=False)
    return train_test_split(ds, test_size=test_size, seed=seed)
