"""Sample corruption exactly as seed 000 §4.1.

- label corruption: (x, c) -> (x, c') with c' drawn uniformly from the classes other than c;
- Gaussian input corruption: (x, c) -> (g, c), each feature of g drawn from N(mu_x, sigma_x), the mean and
  standard deviation of all features of that sample's own x.

Also seed 001's random-label task (:func:`randomize_labels`): labels redrawn uniformly from *all* classes,
so some keep their label.

Exactly ``round(fraction * n)`` samples are corrupted, chosen without replacement from ``seed``. The returned
dataset keeps ``corrupted`` (mask), ``y_original`` and ``X_original``; fraction 0 returns the data unchanged.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_fraction, check_int
from .data.dataset import Dataset

__all__ = ["CORRUPTIONS", "corrupt", "corrupt_labels", "corrupt_inputs", "randomize_labels"]

CORRUPTIONS = ("none", "label", "gaussian")


def _pick(ds: Dataset, fraction: float, rng) -> np.ndarray:
    k = int(round(fraction * len(ds)))
    mask = np.zeros(len(ds), dtype=bool)
    mask[rng.choice(len(ds), size=k, replace=False)] = True
    return mask


def _check_fresh(ds: Dataset):
    if ds.corruption is not None and ds.corrupted.any():
        raise ValueError(f"dataset is already {ds.corruption}-corrupted; corrupt the clean dataset instead")


def _draw(ds: Dataset, fraction, seed):
    """``(fraction, seed, rng, mask)``: the checked arguments, the generator seeded by ``seed`` and the mask
    of the samples it picked; the caller draws the corruption itself from the same generator."""
    fraction = check_fraction(fraction, "fraction")
    seed = check_int(seed, "seed", min_value=0)
    _check_fresh(ds)
    rng = np.random.default_rng(seed)
    return fraction, seed, rng, _pick(ds, fraction, rng)


def corrupt_labels(ds: Dataset, fraction: float, *, seed: int = 0) -> Dataset:
    """Give ``fraction`` of the samples a label drawn uniformly from the *other* classes."""
    if ds.n_classes < 2:
        raise ValueError("label corruption needs n_classes >= 2")
    fraction, seed, rng, mask = _draw(ds, fraction, seed)
    y = ds.y.copy()
    # offset in 1..K-1 added modulo K is uniform over the other classes
    offset = rng.integers(1, ds.n_classes, size=int(mask.sum()))
    y[mask] = (y[mask] + offset) % ds.n_classes
    return ds.replace(y=y, y_original=ds.y.copy(), X_original=ds.X, corrupted=mask, corruption="label",
                      corruption_fraction=fraction,
                      source=f"{ds.source} | label corruption {fraction:g} (seed {seed})")


def corrupt_inputs(ds: Dataset, fraction: float, *, seed: int = 0) -> Dataset:
    """Replace ``fraction`` of the inputs by noise drawn per feature from N(mu_x, sigma_x) of that sample."""
    fraction, seed, rng, mask = _draw(ds, fraction, seed)
    X = ds.X.copy()
    if mask.any():
        flat = X[mask].reshape(int(mask.sum()), -1).astype(np.float64)
        mu = flat.mean(axis=1, keepdims=True)
        sigma = flat.std(axis=1, keepdims=True)
        noise = rng.standard_normal(flat.shape) * sigma + mu
        X[mask] = noise.reshape((-1,) + ds.input_shape).astype(np.float32)
    return ds.replace(X=X, X_original=ds.X, y_original=ds.y.copy(), corrupted=mask, corruption="gaussian",
                      corruption_fraction=fraction,
                      source=f"{ds.source} | Gaussian input corruption {fraction:g} (seed {seed})")


def randomize_labels(ds: Dataset, fraction: float, *, seed: int = 0) -> Dataset:
    """Seed 001's random-label task: ``fraction`` of the samples get a label drawn uniformly from all classes
    (their own included, unlike :func:`corrupt_labels`); ``corrupted`` marks the redrawn samples."""
    fraction, seed, rng, mask = _draw(ds, fraction, seed)
    y = ds.y.copy()
    y[mask] = rng.integers(0, ds.n_classes, size=int(mask.sum()))
    return ds.replace(y=y, y_original=ds.y.copy(), corrupted=mask, corruption="label",
                      corruption_fraction=fraction,
                      source=f"{ds.source} | random labels {fraction:g} (seed {seed})")


def corrupt(ds: Dataset, kind: str = "none", fraction: float = 0.0, *, seed: int = 0) -> Dataset:
    """Dispatch on ``kind`` in ``none, label, gaussian``."""
    kind = check_choice(kind, "kind", CORRUPTIONS)
    fraction = check_fraction(fraction, "fraction")
    if kind == "none" or fraction == 0.0:
        return ds
    return (corrupt_labels if kind == "label" else corrupt_inputs)(ds, fraction, seed=seed)
