"""batched vs the NLopt reference on a small MNIST MLP, and Dask equals local."""

import numpy as np
import pytest
import torch

from marginlab.margins import compute_margins
from marginlab.models.mlp import MLP


@pytest.fixture(scope="module")
def mnist_mlp():
    """A 784-64-10 ReLU MLP trained on the bundled MNIST subset to > 95 % training accuracy, and 10
    correctly classified held-out test images."""
    from marginlab.data import load_mnist
    from marginlab.train.fit import fit

    torch.manual_seed(0)
    tr = load_mnist("train", flatten=True)
    m = MLP((784,), (64,), 10, seed=0)
    fit(m, tr, epochs=8, lr=1e-3, optimizer="adam", batch_size=64, progress=False, device="cpu")
    with torch.no_grad():
        acc = (m(torch.as_tensor(tr.X)).argmax(1).numpy() == tr.y).mean()
    assert acc > 0.95, acc
    te = load_mnist("test", flatten=True)
    X = torch.as_tensor(te.X[:40])
    with torch.no_grad():
        right = m(X).argmax(1).numpy() == te.y[:40]
    return m, X[right][:10]


@pytest.mark.slow
def test_batched_matches_nlopt_on_mnist(mnist_mlp):
    """Ten samples x nine classes: the batched solver and an independent NLopt AUGLAG + CCSAQ run reach the
    same verified distances (NLopt is local too: batched may be lower, never higher by more than 0.1 %)."""
    pytest.importorskip("nlopt")
    m, X = mnist_mlp
    assert len(X) == 10
    rb = compute_margins(m, X, method="batched")
    rn = compute_margins(m, X, method="nlopt", maxtime=5.0, n_jobs=2)
    assert rb.converged.all() and rn.verified.all()
    rel = (rb.margin - rn.margin) / rn.margin
    assert np.median(np.abs(rel)) <= 1e-4
    assert np.all(rel <= 1e-3)
    same = np.abs(rel) <= 1e-4
    np.testing.assert_array_equal(rb.boundary_class[same], rn.boundary_class[same])


def test_dask_local_cluster_equals_local():
    distributed = pytest.importorskip("dask.distributed")
    m = MLP((2,), (16,), 3, seed=0)
    X = torch.randn(30, 2)
    local = compute_margins(m, X, chunk_size=10)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = compute_margins(m, X, chunk_size=10, client=client)
    np.testing.assert_array_equal(remote.margin, local.margin)
    np.testing.assert_array_equal(remote.point, local.point)
    np.testing.assert_array_equal(remote.boundary_class, local.boundary_class)


def test_dask_single_unbatched_sample():
    distributed = pytest.importorskip("dask.distributed")
    m = MLP((5,), (8,), 3, seed=0)
    x = torch.randn(5)
    local = compute_margins(m, x)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = compute_margins(m, x, client=client, chunk_size=2)
    assert len(remote) == 1
    np.testing.assert_array_equal(remote.margin, local.margin)
