"""The contract every margin method keeps (one table of configured methods, as foolbox tests its attacks):
the same result shapes and fields, skip / signed semantics, chunk-size and Dask invariance, verified points
that verify, and bad norms rejected before any work."""

import copy

import numpy as np
import pytest
import torch

from marginlab.margins import METHODS, compute_margins, get_method
from marginlab.models.mlp import MLP

N, K = 10, 3


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    net = MLP((2,), (16, 16), K, seed=4)
    X = torch.randn(N, 2)
    with torch.no_grad():
        pred = net(X).argmax(1).numpy()
    y = pred.copy()
    y[:3] = (pred[:3] + 1) % K  # three misclassified samples
    return net, X, y


def configured(name, X):
    """Each registered method, configured for a quick run (the table the contract runs over)."""
    options = {
        # the evaluation budget binds, not the clock: statuses must not depend on machine load
        "nlopt": {"n_jobs": 1, "maxtime": 60.0, "maxeval": 2000},
        "interpolation": {"reference": torch.randn(40, 2) * 2},
        "lipschitz": {"n_samples": 64},
        "random_directions": {"n_directions": 4},
        "crown": {"steps": 12},
    }
    return get_method(name, **options.get(name, {}))


ALL = sorted(METHODS)


@pytest.mark.parametrize("name", ALL)
def test_shapes_fields_and_declarations(problem, name):
    net, X, y = problem
    method = configured(name, X)
    assert method.kind in ("exact", "upper", "estimate", "lower")
    r = method(net, X, y=y)
    assert len(r) == N and r.method == name
    assert r.point.shape == (N, 2) and r.distances.shape == (N, K)
    fields = ("margin", "pred", "boundary_class", "residual", "top_two", "converged", "status", "verified",
              "agree", "lower", "certified", "skipped", "iterations", "evaluations", "seconds")
    for field in fields:
        assert len(getattr(r, field)) == N, field
    assert all(isinstance(s, str) and s for s in r.status)
    assert (r.estimate == (method.kind in ("estimate", "lower"))) or name == "crown"
    if method.kind == "exact":
        # "certified" (mip) is converged with a proof of global optimality
        assert (r.converged == np.isin(r.status, ("converged", "certified"))).all()
    assert not (r.verified & ~np.isfinite(r.margin)).any()


@pytest.mark.parametrize("name", ALL)
def test_skip_and_signed(problem, name):
    net, X, y = problem
    method = configured(name, X)
    r = method(net, X, y=y, skip_misclassified=True)
    wrong = r.pred != y
    assert (r.skipped == wrong).all() and np.isnan(r.margin[wrong]).all()
    assert (r.status[wrong] == "skipped").all()
    s = method(net, X, y=y, signed=True)
    fin = np.isfinite(s.margin)
    assert (s.margin[fin & wrong] <= 0).all() and (s.margin[fin & ~wrong] >= 0).all()


@pytest.mark.parametrize("name", ALL)
def test_chunk_size_does_not_matter(problem, name):
    net, X, y = problem
    a = configured(name, X)
    b = copy.copy(a)
    b.chunk_size = 3
    ra, rb = a(net, X), b(net, X)
    np.testing.assert_array_equal(ra.status, rb.status)
    np.testing.assert_allclose(ra.margin, rb.margin, rtol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_verified_points_verify(problem, name):
    """Independently, in float64: a verified point is classified ``boundary_class`` (or tied with it on
    top), and the point a relative ``tol`` closer to x is still classified ``pred``."""
    net, X, y = problem
    r = configured(name, X)(net, X)
    ok = r.verified
    if not ok.any():
        assert r.estimate or name == "crown"
        return
    net64 = copy.deepcopy(net).double()
    x, z = X.double()[ok], torch.as_tensor(r.point[ok])
    with torch.no_grad():
        hi, lo = net64(z).numpy(), net64(x + (1 - r.tol) * (z - x)).numpy()
    rows = np.arange(int(ok.sum()))
    assert (hi[rows, r.boundary_class[ok]] == hi.max(1)).all()
    assert (lo.argmax(1) == r.pred[ok]).all()
    np.testing.assert_allclose(np.linalg.norm((z - x).numpy(), axis=1), np.abs(r.margin[ok]), rtol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_bad_norm_rejected(problem, name):
    net, X, y = problem
    method = configured(name, X)
    with pytest.raises(ValueError, match="p"):
        method(net, X, p=0.5)
    if method.supported_p is not None:
        # the first norm >= 1 the method does not support is refused by name
        other = next(q for q in (np.inf, 1.0, 3.0) if q not in method.supported_p)
        with pytest.raises(ValueError, match="not supported"):
            method(net, X, p=other)


@pytest.mark.slow
def test_dask_equals_local_for_every_method(problem):
    distributed = pytest.importorskip("dask.distributed")
    net, X, y = problem
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for name in ALL:
            method = configured(name, X)
            method.chunk_size = 4
            local, remote = method(net, X), method(net, X, client=client)
            np.testing.assert_array_equal(remote.status, local.status, err_msg=name)
            np.testing.assert_allclose(remote.margin, local.margin, rtol=1e-9, err_msg=name)


def test_compute_margins_routes_options(problem):
    net, X, y = problem
    r = compute_margins(net, X, method="batched", max_iter=5, escalations=0)
    assert r.method == "batched" and (r.iterations <= 5).all()
    with pytest.raises(TypeError):
        compute_margins(net, X, method="batched", maxiter=5)
