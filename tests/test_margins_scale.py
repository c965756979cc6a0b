"""batched vs the NLopt reference on a small MNIST MLP, and Dask equals local."""

import numpy as np
import pytest
import torch

from marginlab.margins import compute_margins
from marginlab.models.mlp import MLP


@pytest.fixture(scope="module")
def mnist_mlp():
    from marginlab.data import load_mnist
    from marginlab.train.fit import fit

    torch.manual_seed(0)
    tr = load_mnist("train", flatten=True)
    m = MLP((784,), (32,), 10, seed=0)
    fit(m, tr, epochs=1, lr=1e-3, optimizer="adam", batch_size=128, progress=False)
    te = load_mnist("test", flatten=True)
    return m, torch.as_tensor(te.X[:3])


def test_batched_matches_nlopt_on_mnist(mnist_mlp):
    pytest.importorskip("nlopt")
    m, X = mnist_mlp
    rb = compute_margins(m, X, method="batched")
    rn = compute_margins(m, X, method="nlopt", maxtime=2.0, n_jobs=2)
    assert rb.converged.all() and rn.converged.all()
    rel = (rb.margin - rn.margin) / rn.margin
    assert np.median(np.abs(rel)) <= 1e-3
    assert np.all(rel <= 1e-2)  # batched never worse by more than 1%


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
