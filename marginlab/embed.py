"""2-D embeddings (PCA, t-SNE, UMAP) of inputs or hidden activations, and the variance ratio of seed 003.

``features`` turns inputs into the representation to embed (the input itself, or a hidden layer's activations
via :meth:`marginlab.models.MarginNet.activations`); ``embed`` maps it to 2-D; ``variance_ratio`` measures how
compact the classes are in the embedding (seed 003 §4.4, Tables 2-3).

scikit-learn, torch and umap-learn are imported inside the functions: umap pulls in numba, whose first
compilation takes seconds, and ``import marginlab`` must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_choice, check_float, check_int

__all__ = ["EMBED_METHODS", "features", "embed", "min_points", "variance_ratio", "VarianceDecomposition"]

EMBED_METHODS = ("pca", "tsne", "umap")


def features(X, *, model=None, layer=0, batch_size: int = 1024) -> np.ndarray:
    """Representation ``layer`` of inputs ``X`` as a float32 array (n, d).

    ``layer`` 0 (or ``"input"``) is the input itself and needs no model; any other layer (index or name, see
    :meth:`~marginlab.models.MarginNet.resolve_layer`) is computed by ``model`` in batches without gradients.
    """
    X = np.asarray(X)
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"X must have shape (n, ...) with n >= 1, got {X.shape}")
    batch_size = check_int(batch_size, "batch_size", min_value=1)
    if model is None:
        if layer not in (0, "input"):
            raise ValueError(f"layer={layer!r} needs a model (only layer 0 / 'input' works without one)")
        return np.ascontiguousarray(X.reshape(len(X), -1), dtype=np.float32)
    import torch

    k = model.resolve_layer(layer)  # raises a clear ValueError for unknown layers
    if k == 0:
        return np.ascontiguousarray(X.reshape(len(X), -1), dtype=np.float32)
    p = next(model.parameters())
    shape = (-1,) + tuple(model.input_shape)
    out = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                xb = torch.as_tensor(X[i : i + batch_size], dtype=p.dtype, device=p.device).reshape(shape)
                out.append(model.activations(xb, k).reshape(len(xb), -1).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


def min_points(method: str, *, perplexity: float = 30.0, n_neighbors: int = 15) -> int:
    """Fewest points ``embed`` accepts for ``method`` with these parameters."""
    method = check_choice(method, "method", EMBED_METHODS)
    if method == "pca":
        return 3
    if method == "tsne":
        # scikit-learn requires perplexity < n_samples; fewer than ~3x perplexity gives a degenerate layout
        return max(5, int(np.floor(perplexity)) + 1)
    return max(5, n_neighbors + 1)


def embed(
    X,
    method: str = "umap",
    *,
    model=None,
    layer=0,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    pca_dims: int | None = 50,
    seed: int = 0,
    n_jobs: int | None = None,
    isolate: bool = False,
    **options,
) -> np.ndarray:
    """2-D embedding (n, 2) float32 of ``X`` or of its ``layer`` activations under ``model``.

    ``method``: ``"pca"``, ``"tsne"`` (scikit-learn, PCA init) or ``"umap"`` (umap-learn). For t-SNE and UMAP,
    features wider than ``pca_dims`` are first reduced by PCA (standard practice; it speeds both up a lot and
    removes pixel noise); ``None`` turns that off. ``seed`` makes the result reproducible; extra ``options``
    go to the underlying estimator. Raises ``ValueError`` naming the parameter for bad input, including too
    few points for the method (see :func:`min_points`).

    ``isolate=True`` fits UMAP in a fresh process that exits afterwards: importing umap-learn and numba's
    compiled code stay resident for the life of a process (~500 MB measured here), which a long-lived notebook
    kernel under a 1-2 GB limit (Binder) cannot spare. It costs that process's start and numba's compilation
    (~10 s) on every call; the result is the same as in-process (same seed, same layout).
    """
    method = check_choice(method, "method", EMBED_METHODS)
    perplexity = check_float(perplexity, "perplexity", min_value=1.0)
    n_neighbors = check_int(n_neighbors, "n_neighbors", min_value=2)
    min_dist = check_float(min_dist, "min_dist", min_value=0.0)
    seed = check_int(seed, "seed", min_value=0)
    if pca_dims is not None:
        pca_dims = check_int(pca_dims, "pca_dims", min_value=2)
    F = features(X, model=model, layer=layer)
    n = len(F)
    _check_enough_points(method, n, perplexity, n_neighbors)
    if not np.isfinite(F).all():
        raise ValueError("features contain NaN or infinite values; cannot embed them")

    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(n_components=2, random_state=seed, **options).fit_transform(F).astype(np.float32)
    if pca_dims is not None and F.shape[1] > pca_dims:
        F = PCA(n_components=min(pca_dims, n), random_state=seed).fit_transform(F).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        opts = {"init": "pca", "learning_rate": "auto", "n_jobs": n_jobs}
        opts.update(options)
        Z = TSNE(n_components=2, perplexity=perplexity, random_state=seed, **opts).fit_transform(F)
        return Z.astype(np.float32)
    # umap-learn runs single-threaded whenever random_state is set (that is what makes it reproducible)
    # 200 epochs is umap-learn's own choice above 10,000 points; its 500 below that makes 5,000 MNIST images
    # take ~2.5x longer for a visually equivalent layout
    opts = {"n_jobs": n_jobs if n_jobs is not None else 1, "n_epochs": 200}
    opts.update(options)
    args = (np.ascontiguousarray(F, dtype=np.float32), n_neighbors, min_dist, seed, opts)
    if not isolate:
        return _umap_fit(*args)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: a forked copy of a kernel holding torch would share its pages and threads' locks
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_umap_fit, *args).result()
        except BrokenProcessPool:
            raise RuntimeError(
                f"the UMAP process for {len(F)} points ended without a result (most likely out of memory); "
                "embed fewer samples or use method='pca' or 'tsne'"
            ) from None


def _check_enough_points(method, n, perplexity, n_neighbors) -> None:
    need = min_points(method, perplexity=perplexity, n_neighbors=n_neighbors)
    if n < need:
        extra = {
            "tsne": f" (perplexity={perplexity:g} must stay below the number of points)",
            "umap": f" (n_neighbors={n_neighbors} must stay below the number of points)",
        }.get(method, "")
        raise ValueError(
            f"{method} embedding needs at least {need} points{extra}; got {n}. "
            "Embed more samples or lower the parameter."
        )


def _umap_fit(F, n_neighbors, min_dist, seed, opts) -> np.ndarray:
    import umap  # lazy: numba compiles on first use

    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, **opts)
    return reducer.fit_transform(F).astype(np.float32)


@dataclass(frozen=True)
class VarianceDecomposition:
    """Seed 003 §4.4's variance decomposition of an embedding.

    ``within``: mean squared distance of a point to its class centroid (intra-class variance);
    ``between``: mean squared distance of a point's class centroid to the overall centroid (inter-class
    variance); ``within + between`` is the total variance. ``ratio = between / within``: larger means more
    compact classes. Seed 003's tables swap the row labels (the small number is the within-class spread and
    ``ratio`` = large / small, with the largest ratio read as "most compact"); this follows that reading.
    """

    within: float
    between: float
    ratio: float
    n_classes: int

    def __str__(self) -> str:
        return (
            f"intra-class var {self.within:.4g}, inter-class var {self.between:.4g}, "
            f"ratio inter/intra {self.ratio:.3g}"
        )


def variance_ratio(Z, y) -> VarianceDecomposition:
    """Within/between-class variance of points ``Z`` (n, d) grouped by labels ``y`` (n,)."""
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2 or y.ndim != 1 or len(Z) != len(y):
        raise ValueError(f"Z must be (n, d) and y (n,) with the same n, got {Z.shape} and {y.shape}")
    if len(Z) < 2:
        raise ValueError(f"variance_ratio needs at least 2 points, got {len(Z)}")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("variance_ratio needs at least 2 classes among the labels")
    counts = np.bincount(codes).astype(np.float64)
    sums = np.zeros((len(classes), Z.shape[1]))
    np.add.at(sums, codes, Z)
    centroids = sums / counts[:, None]
    within = float(((Z - centroids[codes]) ** 2).sum(1).mean())
    between = float((counts * ((centroids - Z.mean(0)) ** 2).sum(1)).sum() / len(Z))
    ratio = between / within if within > 0 else float("inf")
    return VarianceDecomposition(within, between, ratio, len(classes))
