"""Verified means verified: known answers under transformations that leave the classifier unchanged, an
honest per-sample status, and results that do not depend on chunking, Dask or dtype."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from marginlab.margins import compute_margins
from marginlab.models.mlp import MLP, LinearModel


def Same(net, a=1.0, c=0.0, extra=0, extra_value=-1e5):
    """The same classifier, as a network of the same kind: the last linear layer's logits scaled by ``a``
    and shifted by ``c``, plus ``extra`` classes whose constant logit (``c + extra_value``, far below the
    others) never wins."""
    import copy

    net = copy.deepcopy(net)
    parent, name, last = None, None, None
    for mod in net.modules():
        for child_name, child in mod.named_children():
            if isinstance(child, nn.Linear):
                parent, name, last = mod, child_name, child
    out = nn.Linear(last.in_features, last.out_features + extra, dtype=last.weight.dtype)
    with torch.no_grad():
        out.weight.zero_()
        out.weight[: last.out_features] = a * last.weight
        bias = last.bias if last.bias is not None else torch.zeros(last.out_features)
        out.bias[: last.out_features] = a * bias + c
        out.bias[last.out_features:] = c + extra_value
    setattr(parent, name, out)
    return net


def linear_closed_form(m, X):
    """Distance to the nearest point of another class's region for a linear classifier: the region of i is
    an intersection of half-spaces, so the distance is min_j (f_i - f_j) / ||w_i - w_j||."""
    W = m.linear.weight.detach().double().numpy()
    b = m.linear.bias.detach().double().numpy()
    lg = X.double().numpy() @ W.T + b
    i = lg.argmax(1)
    g = lg[np.arange(len(X)), i][:, None] - lg
    w = np.linalg.norm(W[i][:, None, :] - W[None], axis=2)
    d = np.where(np.arange(W.shape[0])[None] == i[:, None], np.inf, g / np.where(w > 0, w, 1))
    return d.min(1), d.argmin(1)


AGREE = 1e-3  # BatchedSolver's agree_tol: the precision to which a converged margin is the found optimum

TRANSFORMS = {
    "plain": {},
    "offset +1e4": {"c": 1e4},
    "offset -1e4": {"c": -1e4},
    "scale 1e-3": {"a": 1e-3},
    "scale 1e3": {"a": 1e3},
    "extra class": {"extra": 1},
    "offset, scale and extra classes": {"a": 7.0, "c": 3e3, "extra": 3},
}


@pytest.mark.parametrize("K", [2, 3, 10, 100])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_linear_closed_form_under_invariances(K, name):
    m = Same(LinearModel((12,), K, seed=K), **TRANSFORMS[name])
    X = torch.randn(60, 12)
    # from the transformed float32 weights themselves: a float32 bias of 1e4 is rounded to 1e-3, which
    # moves the boundaries a little; the closed form is invariant to the scale and the offset
    expect, j = linear_closed_form(m, X)
    r = compute_margins(m, X)
    assert list(np.unique(r.status)) == ["converged"], dict(zip(*np.unique(r.status, return_counts=True)))
    assert r.verified.all() and r.converged.all()
    np.testing.assert_allclose(r.margin, expect, rtol=1e-6)
    np.testing.assert_array_equal(r.boundary_class, j)
    # the bracket proves it: the point is in class j's region, the point tol closer to x is still class i
    assert (r.residual >= 0).all()


def test_verification_rejects_a_point_that_is_not_across():
    """A candidate that never leaves class i's region is not verified, whatever its logit residual."""
    from marginlab.margins._core import prepare
    from marginlab.margins.verify import Float64Net, verify_rays

    m = LinearModel((4,), 3, seed=0)
    X = torch.randn(5, 4)
    prob = prepare(m, X)
    f64 = Float64Net(prob)
    x = prob.x0.double()
    i = torch.as_tensor(prob.pred)
    v = verify_rays(f64, x, x + 1e-9, i, tol=1e-6)  # a tiny step: class i all along the ray up to 2x
    assert not v.ok.any() and np.isnan(v.dist.numpy()).all()
    r = compute_margins(m, X)
    z = torch.as_tensor(r.point)
    v = verify_rays(f64, x, x + 1.5 * (z - x), i, tol=1e-6)  # beyond the boundary: bracketed back onto it
    assert v.ok.all()
    np.testing.assert_allclose(v.dist.numpy(), r.margin, rtol=1e-6)


def _trained_relu(hidden=(32,), n=400, seed=0, epochs=30):
    """A small ReLU net trained on 4 quadrant-like classes in 2-D (kinks, several boundaries)."""
    from marginlab.data import Dataset
    from marginlab.train.fit import fit

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=g)
    y = (X[:, 0] > 0).long() + 2 * (X[:, 1] > 0.3 * X[:, 0] ** 2).long()
    m = MLP((2,), hidden, 4, seed=seed)
    fit(m, Dataset(X.numpy(), y.numpy(), 4), epochs=epochs, lr=0.02, optimizer="adam", batch_size=64,
        progress=False, device="cpu")
    return m, X[:40]


@pytest.fixture(scope="module")
def relu_net():
    """In float64, so that a logit offset of 1e4 changes the classifier by rounding only (~1e-12)."""
    m, X = _trained_relu()
    return m.double(), X.double()


@pytest.mark.parametrize("name", ["offset +1e4", "scale 1e-3", "scale 1e3", "extra class"])
def test_trained_relu_net_unchanged_by_invariances(relu_net, name):
    m, X = relu_net
    base = compute_margins(m, X)
    r = compute_margins(Same(m, **TRANSFORMS[name]), X)
    np.testing.assert_array_equal(r.status, base.status)
    # a scale that is not a power of two changes the float rounding along the walk, and at the kinks of a
    # ReLU net a rounding difference can end a walk at a neighbouring local minimum: the margins agree to
    # the precision a converged status claims (starts agreeing within agree_tol = 1e-3)
    np.testing.assert_allclose(r.margin, base.margin, rtol=AGREE)


def test_chunk_size_and_dtype_do_not_matter(relu_net):
    m, X = relu_net
    base = compute_margins(m, X)
    for chunk in (1, 7):
        r = compute_margins(m, X, chunk_size=chunk)
        np.testing.assert_array_equal(r.status, base.status)
        np.testing.assert_allclose(r.margin, base.margin, rtol=1e-5)
    import copy

    r64 = compute_margins(copy.deepcopy(m).double(), X.double())
    np.testing.assert_array_equal(r64.status, base.status)
    np.testing.assert_allclose(r64.margin, base.margin, rtol=1e-5)


def test_budget_exhausted_is_never_converged():
    """With 3 iterations most walks stop before they are stationary: those samples say so. Every sample
    that does claim convergence has a stationary nearest point (a smooth tanh net: z - x parallel to the
    gradient of f_i - f_j there, checked independently in float64)."""
    torch.manual_seed(0)
    m = MLP((20,), (64, 64), 5, activation="tanh", seed=1)
    X = torch.randn(100, 20)
    r = compute_margins(m, X, max_iter=3, escalations=0)
    assert (r.status == "budget exhausted").sum() > 10
    ok = r.converged
    assert ok.any()
    net = m.double()
    z = torch.as_tensor(r.point[ok]).requires_grad_(True)
    lg = net(z)
    rows = torch.arange(int(ok.sum()))
    g = lg[rows, torch.as_tensor(r.pred[ok])] - lg[rows, torch.as_tensor(r.boundary_class[ok])]
    (w,) = torch.autograd.grad(g.sum(), z)
    d = X.double()[ok] - z.detach()
    cos = (w * d).sum(1) / (w.norm(dim=1) * d.norm(dim=1))
    assert (1 - cos.numpy() <= 1e-3).all()
    # with the default budget every sample of this smooth net converges
    assert compute_margins(m, X).converged.all()


def test_status_words_and_agreement(relu_net):
    m, X = relu_net
    r = compute_margins(m, X)
    assert set(r.status) <= {"converged", "starts disagree", "budget exhausted"} | {
        f"unresolved pair {j}" for j in range(4)}
    assert (r.agree[r.converged] >= 2).all()
    assert (r.converged == (r.status == "converged")).all()
    frame = r.to_frame()
    assert {"status", "verified", "agree", "lower", "certified"} <= set(frame.columns)
    r1 = compute_margins(m, X, min_agree=10_000, escalations=0)
    assert not r1.converged.any() and set(r1.status) <= {"starts disagree", "budget exhausted"} | {
        f"unresolved pair {j}" for j in range(4)}
    np.testing.assert_allclose(r1.margin[r.converged], r.margin[r.converged], rtol=1e-5)


def test_unresolved_pair_is_reported():
    """Class 2's logit follows class 0's 10 below it: f_0 - f_2 has no gradient, so no search can move
    towards class 2, and the bounds cannot see through the network (an opaque module): the sample is not
    converged, and the status names the pair."""

    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([1.0, -1.0]))

        def forward(self, x):
            f0 = x[:, 0] * self.w[0]
            f1 = x[:, 0] * self.w[1]
            return torch.stack([f0, f1, f0 - 10], 1)

    X = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    r = compute_margins(Opaque(), X)
    np.testing.assert_allclose(r.margin, [1.0, 2.0], rtol=1e-6)
    assert list(r.status) == ["unresolved pair 2", "unresolved pair 2"]
    assert r.verified.all() and not r.converged.any()


def test_empty_and_single_sample_inputs():
    m = MLP((3,), (8,), 3, seed=0)
    with pytest.raises(ValueError, match="X"):
        compute_margins(m, np.zeros((0, 3), np.float32))
    r = compute_margins(m, np.ones(3, np.float32))
    assert len(r) == 1 and r.verified.all()


def test_concat_merges_info():
    m = MLP((2,), (8,), 3, seed=0)
    m.blocks[0][1].weight.data.zero_()
    m.blocks[0][1].bias.data.fill_(-1.0)
    r = compute_margins(m, torch.randn(6, 2), chunk_size=2, escalations=0, n_directions=0, restarts=1)
    assert r.info["zero_gradient"] == 12  # 6 samples x 2 other classes, counted over all chunks


# derandomized: CI runs the same examples every time; the counterexamples hypothesis has found so far are
# pinned below as strict xfails (issue 13 stays open until they pass)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(seed=st.integers(0, 10_000), act=st.sampled_from(["relu", "tanh"]),
       a=st.floats(1e-3, 1e3), c=st.floats(-1e4, 1e4))
def test_property_invariances_on_random_nets(seed, act, a, c):
    """Logit offsets and scales (extra classes: the strict xfails below, and the closed-form tests)."""
    _check_invariance(seed, act, a, c, 0)


@pytest.mark.xfail(strict=True, reason="known: an extra never-winning class changes the search (issue 13)")
@pytest.mark.parametrize("seed,act", [(2263, "relu"), (232, "tanh")])
def test_known_extra_class_counterexamples(seed, act):
    """seed 2263 ReLU: the net predicts one class near every sample; the extra class's walk (its first-order
    distance is its logit deficit, 1e5) reaches a far boundary the plain search never sees. seed 232 tanh:
    the extra rows change the batch and a non-stationary walk ends elsewhere."""
    _check_invariance(seed, act, 1.0, 0.0, 1, strict_status=True)


def _check_invariance(seed, act, a, c, extra, strict_status=False):
    torch.manual_seed(seed)
    m = MLP((2,), (12, 12), 3, activation=act, seed=seed).double()
    X = torch.randn(8, 2, dtype=torch.float64)
    base = compute_margins(m, X)
    r = compute_margins(Same(m, a=a, c=c, extra=extra), X)
    # converged or not, and the converged statuses, are invariant. Among samples that are not converged the
    # reason word may differ ("budget exhausted" vs "unresolved pair j"): an extra class changes the batch, so
    # float64 sums change in their last bits, and a walk that is not stationary amplifies that (seed 232,
    # tanh, one extra class: same margin, the other word)
    np.testing.assert_array_equal(r.converged, base.converged)
    np.testing.assert_array_equal(r.status[base.converged], base.status[base.converged])
    if strict_status:
        np.testing.assert_array_equal(r.status, base.status)
    ok = base.verified
    np.testing.assert_array_equal(r.verified, ok)
    np.testing.assert_allclose(r.margin[ok], base.margin[ok], rtol=AGREE)
