"""NN ensembles vs NN-GP draws as a function of normalized margin (seed 001 §6.1–6.2, Fig. 6).

:func:`gp_vs_ensemble` builds a small binary MNIST problem (bundled offline subset, even vs odd by default,
inputs projected onto the sphere of radius √d) and returns one tidy table with

* ``model="NN-GP draws"``: exact expected test accuracy of the average of m NN-GP posterior draws at
  normalized margin γ/σ^L (:meth:`marginlab.gp.NNGP.accuracy_grid`);
* ``model="NN ensemble"``: test accuracy of the averaged outputs of m bias-free ReLU MLPs, each trained by
  Recipe 1 (:func:`marginlab.train.recipe.recipe1`, Nero) to Frobenius-normalized margin α = the same value.

Seed 001's prediction: single draws / single networks generalize poorly at small normalized margin, and
averaging m of them helps in the same way as increasing the margin. :func:`gp_finding` states it in one line.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int

__all__ = ["binary_mnist", "gp_vs_ensemble", "gp_finding"]


def binary_mnist(n_train: int = 200, n_test: int = 500, *, positive=(1, 3, 5, 7, 9), seed: int = 0):
    """``(train, test)`` :class:`~marginlab.data.Dataset` pair: a random, class-balanced draw of ``n_train``
    images from the MNIST training split and ``n_test`` from the test split (offline subset when no cache),
    labels 1 for digits in ``positive`` (default odd) and 0 otherwise, flattened and projected onto the sphere
    of radius √784."""
    from ..data import load_mnist
    from ..data.preprocess import binary_relabel, flatten, project_sphere

    n_train = check_int(n_train, "n_train", min_value=2)
    n_test = check_int(n_test, "n_test", min_value=1)
    rng = np.random.default_rng(seed)
    out = []
    for split, n in (("train", n_train), ("test", n_test)):
        ds = binary_relabel(load_mnist(split), list(positive), name="positive")
        rows = []
        for c, k in ((0, n // 2), (1, n - n // 2)):
            idx = np.flatnonzero(ds.y == c)
            if len(idx) < k:
                raise ValueError(f"only {len(idx)} images of class {c} in the {split} split, need {k}")
            rows.append(rng.choice(idx, size=k, replace=False))
        out.append(project_sphere(flatten(ds.subset(rng.permutation(np.concatenate(rows))))))
    return out[0], out[1]


def _ensemble_accuracy(outputs: np.ndarray, y: np.ndarray, m: int) -> float:
    """Mean test accuracy over the ⌊M/m⌋ disjoint ensembles of size m in ``outputs`` (M, n, classes)."""
    k = len(outputs) // m
    accs = [np.mean(outputs[i * m:(i + 1) * m].mean(0).argmax(-1) == y) for i in range(k)]
    return float(np.mean(accs))


def gp_vs_ensemble(margins=(0.1, 0.3, 1.0, 3.0), ms=(1, 3, 9), *, n_train: int = 200, n_test: int = 500,
                   depth: int = 2, width: int = 256, epochs: int = 150, lr: float = 0.1,
                   n_nets: int | None = None, nets: bool = True, seed: int = 0, device="cpu", data=None,
                   torch_threads: int | None = 1):
    """Test accuracy of m-draw NN-GP averages and m-network Recipe-1 ensembles per targeted normalized
    margin (module docstring). ``depth`` = L weight layers for both (MLP with L−1 hidden layers of
    ``width``); ``n_nets`` networks (default max(ms)) are trained per margin with seeds ``seed``,
    ``seed+1``...; accuracy for ensemble size m is averaged over the ⌊n_nets/m⌋ disjoint ensembles.
    ``nets=False`` skips the networks (GP rows only). ``data``: an optional ``(train, test)`` pair of
    binary datasets already on the sphere (else :func:`binary_mnist`). ``torch_threads``: torch CPU threads
    while the (tiny, full-batch) networks train, restored afterwards; 1 avoids thread oversubscription,
    which slows such small matmuls by an order of magnitude on busy machines (``None`` leaves it alone).

    Returns a DataFrame with columns ``model, margin, m, accuracy, achieved_margin`` (the mean achieved
    Frobenius-normalized training margin for networks; NaN for the GP) and ``n_test``."""
    import pandas as pd

    from ..gp import NNGP

    margins = [float(a) for a in margins]
    ms = [check_int(m, "ms[]", min_value=1) for m in ms]
    if not margins or not ms or min(margins) <= 0:
        raise ValueError("margins must be positive and ms non-empty")
    depth = check_int(depth, "depth", min_value=2)
    n_nets = max(ms) if n_nets is None else check_int(n_nets, "n_nets", min_value=max(ms))
    train, test = binary_mnist(n_train, n_test, seed=seed) if data is None else data
    ytr, yte = np.asarray(train.y), np.asarray(test.y)
    Xtr = np.asarray(train.X, np.float64).reshape(len(ytr), -1)
    Xte = np.asarray(test.X, np.float64).reshape(len(yte), -1)

    rows = []
    gp = NNGP(depth=depth, sigma=1.0).fit(Xtr, 2 * ytr - 1)
    grid = gp.accuracy_grid(Xte, 2 * yte - 1, margins, ms)
    for i, a in enumerate(margins):
        for j, m in enumerate(ms):
            rows.append(("NN-GP draws", a, m, float(grid[i, j]), np.nan))

    if nets:
        import torch

        from ..device import torch_threads as threads

        Xt = torch.as_tensor(Xte, dtype=torch.float32)
        with threads(torch_threads):
            tables = [_train_nets(a, ms, n_nets, train, Xt, yte, depth, width, epochs, lr, seed, device)
                      for a in margins]
        rows += [r for t in tables for r in t]
    return pd.DataFrame(rows, columns=["model", "margin", "m", "accuracy", "achieved_margin"]).assign(
        n_test=len(yte))


def _train_nets(a, ms, n_nets, train, Xt, yte, depth, width, epochs, lr, seed, device):
    """Rows ``("NN ensemble", a, m, accuracy, achieved)`` for ``n_nets`` Recipe-1 networks at margin ``a``."""
    import torch

    from ..models import MLP
    from ..train.recipe import recipe1

    outs, achieved = [], []
    for s in range(n_nets):
        net = MLP(Xt.shape[1], (width,) * (depth - 1), 2, bias=False, seed=seed + s)
        res = recipe1(net, train, a, epochs=epochs, optimizer="nero", lr=lr, lr_decay=0.99, lr_decay_every=1,
                      project_inputs=False, seed=seed + s, device=device)
        achieved.append(float(np.mean(res.margins)))
        with torch.no_grad():
            outs.append(net.cpu()(Xt).numpy())
    outs = np.stack(outs)
    ach = float(np.mean(achieved))
    return [("NN ensemble", a, m, _ensemble_accuracy(outs, yte, m), ach) for m in ms]


def gp_finding(table) -> str:
    """One line from a :func:`gp_vs_ensemble` table: per model, single-draw accuracy at the smallest and
    largest margin and the gain from the largest ensemble at the smallest margin, with a verdict on seed
    001's prediction. Per model two one-sided tests at level 0.05 (:mod:`marginlab.experiments.stats`):
    single draws are worse at the smallest margin than at the largest, and the largest ensemble beats a
    single draw at the smallest margin; accuracies are redrawn from their binomials on the table's
    ``n_test`` images (the test set is a sample, also for the GP's exact expectations). "reproduced" needs
    every test of every model to pass."""
    from . import stats

    if "n_test" not in table:
        raise ValueError("table needs an n_test column (the test images behind each accuracy)")
    parts, ok = [], True
    for model, g in table.groupby("model", sort=False):
        lo, hi = g.margin.min(), g.margin.max()
        m1, mk = g.m.min(), g.m.max()
        acc = g.set_index(["margin", "m"]).accuracy
        vals = [acc[(lo, m1)], acc[(hi, m1)], acc[(lo, mk)]]
        reps = stats.binomial_draws(vals, int(g.n_test.iloc[0]))
        hurt = stats.estimate(vals[1] - vals[0], reps[:, 1] - reps[:, 0])
        helps = stats.estimate(vals[2] - vals[0], reps[:, 2] - reps[:, 0])
        ok &= hurt.holds() and helps.holds()
        parts.append(f"{model}: m={m1} acc {vals[0]:.3f} at margin {lo:g} vs {vals[1]:.3f} at {hi:g} "
                     f"(p {hurt.p:.3g}); m={mk} at margin {lo:g}: {vals[2]:.3f} (p {helps.p:.3g})")
    verdict = "reproduced" if ok else "NOT reproduced"
    return f"Fig. 6 {verdict}: " + " | ".join(parts)
