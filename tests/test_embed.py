import numpy as np
import pytest
import torch

from marginlab.embed import embed, features, min_points, variance_ratio
from marginlab.models import MLP


def blobs(n_per=30, d=20, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, d)) * 5
    X = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centers]).astype(np.float32)
    return X, np.repeat(np.arange(3), n_per)


def test_variance_ratio_known_values():
    Z = np.array([[0.0, 0], [2, 0], [10, 0], [12, 0]])
    vr = variance_ratio(Z, [0, 0, 1, 1])
    # centroids 1 and 11 around 6: within = 1, between = 25, and they add up to the total variance
    assert (
        vr.within == pytest.approx(1.0)
        and vr.between == pytest.approx(25.0)
        and vr.ratio == pytest.approx(25)
    )
    assert vr.within + vr.between == pytest.approx(Z.var(0).sum())
    tight = variance_ratio(*blobs(spread=0.1))
    loose = variance_ratio(*blobs(spread=3.0))
    assert tight.ratio > 10 * loose.ratio  # larger ratio = more compact classes (seed 003's reading)
    with pytest.raises(ValueError, match="2 classes"):
        variance_ratio(Z, [0, 0, 0, 0])


def test_pca_shape_determinism_and_class_structure():
    X, y = blobs()
    Z = embed(X, "pca")
    assert Z.shape == (90, 2) and Z.dtype == np.float32
    np.testing.assert_array_equal(Z, embed(X, "pca"))
    assert variance_ratio(Z, y).ratio > 5


def test_hidden_layer_features_match_model():
    model = MLP((1, 4, 4), (7, 5), 3, seed=0)
    X = np.random.default_rng(0).normal(size=(12, 1, 4, 4)).astype(np.float32)
    F = features(X, model=model, layer="hidden2")
    with torch.no_grad():
        ref = model.activations(torch.as_tensor(X), 2).numpy()
    assert F.shape == (12, 5)
    np.testing.assert_allclose(F, ref, rtol=1e-6)
    assert features(X, model=model, layer=0).shape == (12, 16)
    assert embed(X, "pca", model=model, layer=-1).shape == (12, 2)


def test_bad_parameters_give_clear_errors():
    X, _ = blobs(n_per=3)  # 9 points
    model = MLP(20, (4,), 3, seed=0)
    with pytest.raises(ValueError, match="layer must be one of"):
        embed(X, "pca", model=model, layer="hidden7")
    with pytest.raises(ValueError, match="needs a model"):
        features(X, layer=1)
    with pytest.raises(ValueError, match=r"tsne embedding needs at least 31 points.*perplexity"):
        embed(X, "tsne")
    with pytest.raises(ValueError, match=r"umap embedding needs at least 16 points.*n_neighbors"):
        embed(X, "umap")
    with pytest.raises(ValueError, match="at least 3 points"):
        embed(X[:2], "pca")
    with pytest.raises(ValueError, match="method must be one of"):
        embed(X, "isomap")
    with pytest.raises(ValueError, match="perplexity"):
        embed(X, "tsne", perplexity=0.5)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        embed(bad, "pca")
    assert min_points("tsne", perplexity=5) == 6


def test_tsne_keeps_clusters_apart():
    X, y = blobs()
    Z = embed(X, "tsne", perplexity=10)
    assert Z.shape == (90, 2) and np.isfinite(Z).all()
    assert variance_ratio(Z, y).ratio > 5


def test_umap_keeps_clusters_apart():
    X, y = blobs()
    Z = embed(X, "umap", n_neighbors=10)
    assert Z.shape == (90, 2) and np.isfinite(Z).all()
    assert variance_ratio(Z, y).ratio > 5
    np.testing.assert_allclose(Z, embed(X, "umap", n_neighbors=10), atol=1e-4)  # seeded: reproducible
    # fitted in a process of its own (the explorer's default): the same layout
    np.testing.assert_allclose(Z, embed(X, "umap", n_neighbors=10, isolate=True), atol=1e-4)


def test_isolated_umap_leaves_no_numba_behind():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from marginlab.embed import embed\n"
        "X = np.random.default_rng(0).normal(size=(60, 5)).astype('float32')\n"
        "Z = embed(X, 'umap', isolate=True)\n"
        "assert Z.shape == (60, 2) and np.isfinite(Z).all()\n"
        "print(sorted(m for m in ('umap', 'numba', 'pynndescent') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
