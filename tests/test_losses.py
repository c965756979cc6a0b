"""Margin-shaping losses: hand-computed values and gradients, closed forms on linear models, bad inputs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from marginlab.data import Dataset
from marginlab.models import MLP, LinearModel
from marginlab.train import fit
from marginlab.train.fit import _forward, evaluate
from marginlab.train.losses import LOSSES, Batch, get_loss
from marginlab.train.margin_losses import (
    AverageMarginRegularizer,
    LargeMarginLoss,
    MultiClassHinge,
    ODNLoss,
    RescaledSquareLoss,
    SoftHinge,
    dual_exponent,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared 2-core machine: threads only add contention
    yield
    torch.set_num_threads(n)


def logits_batch(logits, y, idx=None):
    logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(y)
    idx = torch.arange(len(y)) if idx is None else torch.tensor(idx)
    return Batch(None, y, idx, logits, None, None), logits


def model_batch(model, loss, x, y):
    x = x.clone().requires_grad_(loss.needs_input_grad)
    logits, reps = _forward(model, x, loss)
    return Batch(x, y, torch.arange(len(y)), logits, reps, model)


def linear(W, b):
    m = LinearModel(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        m.linear.weight.copy_(torch.as_tensor(W))
        m.linear.bias.copy_(torch.as_tensor(b))
    return m


# -- hinge, soft hinge, rescaled square --------------------------------------------------------------------

def test_hinge_values_and_gradient():
    batch, z = logits_batch([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]], [0, 1])
    loss = MultiClassHinge(1.5)(batch)
    # margins 1 and -2 -> (1.5-1) and (1.5+2), mean 2.0
    assert loss.item() == pytest.approx(2.0)
    loss.backward()
    assert np.allclose(z.grad.numpy(), [[-0.5, 0.5, 0.0], [0.0, -0.5, 0.5]])
    batch, _ = logits_batch([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]], [0, 1])
    # Weston-Watkins: sample 0: 0.5 + 0; sample 1: 0.5 + 3.5 -> mean 2.25
    assert MultiClassHinge(1.5, aggregation="sum")(batch).item() == pytest.approx(2.25)
    batch, _ = logits_batch([[5.0, 1.0, 0.0]], [0])
    assert MultiClassHinge(1.5)(batch).item() == 0.0


def test_linearized_hinge_on_linear_model():
    W, b = np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2)
    m = linear(W, b)
    loss = MultiClassHinge(1.0, linearized=True, eps=0.0)
    x = torch.tensor([[0.25, 3.0], [2.0, -1.0]], dtype=torch.float64)
    # gamma_h = (f0 - f1)/||w0 - w1|| = 2 x1 / 2 = x1 for y = 0 -> hinge 0.75 and 0
    val = loss(model_batch(m, loss, x, torch.tensor([0, 0])))
    assert val.item() == pytest.approx(0.375)


def test_soft_hinge_values_and_gradient():
    f = [[1.0, -2.0, 0.5]]
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    batch, z = logits_batch(f, [0])
    val = SoftHinge()(batch)
    assert val.item() == pytest.approx((sp(-1.0) + sp(-2.0) + sp(0.5)) / 3)
    val.backward()
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    assert np.allclose(z.grad.numpy(), [[-sig(-1.0) / 3, sig(-2.0) / 3, sig(0.5) / 3]])
    # bounded below by 0 and decreasing in the true-class score (the printed sign error is not reproduced)
    lo, _ = logits_batch([[9.0, -9.0, -9.0]], [0])
    hi, _ = logits_batch([[-9.0, 9.0, 9.0]], [0])
    assert 0 < SoftHinge()(lo).item() < 1e-3 < SoftHinge()(hi).item()


def test_rescaled_square_values_gradient_and_per_sample_alpha():
    batch, z = logits_batch([[1.0, 0.0], [0.5, 2.0]], [0, 1])
    val = RescaledSquareLoss(2.0)(batch)
    assert val.item() == pytest.approx((1.0 + 0.25) / 2)
    val.backward()
    assert np.allclose(z.grad.numpy(), [[-1.0, 0.0], [0.5, 0.0]])
    batch, _ = logits_batch([[1.0, 0.0], [0.5, 2.0]], [0, 1], idx=[2, 0])
    loss = RescaledSquareLoss([1.0, 9.0, 3.0])
    # rows 2 and 0 of the training set: targets 3 e_0 and 1 e_1
    assert loss(batch).item() == pytest.approx((4.0 + 0.25 + 1.0) / 2)
    assert RescaledSquareLoss(2.0, reduction="sum")(logits_batch([[1.0, 0.0]], [0])[0]).item() == 1.0
    with pytest.raises(ValueError, match="per-sample alpha"):
        RescaledSquareLoss([1.0, 2.0])(logits_batch([[1.0, 0.0]], [0], idx=[5])[0])


# -- large-margin loss (seed 004 Eq. 15) -------------------------------------------------------------------

def lm_closed_form(W, b, x, y, gamma, q, eps, aggregation="max", top_k=None, detach=True):
    """Eq. 15 for a linear model: the gradient of f_i - f_y w.r.t. x is w_i - w_y (linearisation is exact)."""
    W, b = torch.as_tensor(W), torch.as_tensor(b)
    f = x @ W.T + b
    out = []
    for k in range(len(x)):
        others = [i for i in torch.argsort(f[k], descending=True).tolist() if i != y[k]][:top_k]
        terms = []
        for i in others:
            den = eps + torch.linalg.vector_norm(W[i] - W[y[k]], ord=q)
            den = den.detach() if detach else den
            terms.append(F.relu(gamma + (f[k, i] - f[k, y[k]]) / den))
        t = torch.stack(terms)
        out.append(t.max() if aggregation == "max" else t.sum())
    return torch.stack(out).mean()


@pytest.mark.parametrize("p,q", [(1, math.inf), (2, 2.0), (3, 1.5), ("inf", 1.0)])  # distance l_p, dual l_q
@pytest.mark.parametrize("aggregation,top_k", [("max", None), ("sum", None), ("sum", 2)])
def test_large_margin_equals_closed_form_on_linear_model(p, q, aggregation, top_k):
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(4, 5)), rng.normal(size=4)
    x = torch.tensor(rng.normal(size=(6, 5)))
    y = torch.tensor([0, 1, 2, 3, 0, 2])
    for stop in (True, False):
        m = linear(W, b)
        loss = LargeMarginLoss(0.7, p=p, layers=(0,), aggregation=aggregation, top_k=top_k, eps=1e-3,
                               stop_gradient=stop)
        val = loss(model_batch(m, loss, x, y))
        val.backward()
        Wt = torch.tensor(W, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        ref = lm_closed_form(Wt, bt, x, y, 0.7, q, 1e-3, aggregation, top_k, detach=stop)
        ref.backward()
        assert val.item() == pytest.approx(ref.item(), rel=1e-10)
        assert torch.allclose(m.linear.weight.grad, Wt.grad, atol=1e-10)
        assert torch.allclose(m.linear.bias.grad, bt.grad, atol=1e-10)


def test_dual_norms():
    assert dual_exponent(1) == math.inf and dual_exponent("inf") == 1.0 and dual_exponent(2) == 2.0
    assert dual_exponent(3) == pytest.approx(1.5)


def test_large_margin_hidden_and_output_layers_closed_form():
    # one hidden layer: representation 1 is relu(W1 x); the tail is linear, so the gradient is w2_i - w2_y
    torch.manual_seed(3)
    m = MLP(3, (5,), 3, bias=False, seed=3).double()
    W2 = m.weight_layers()[-1].weight.detach()
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    loss = LargeMarginLoss([0.5, 2.0], p=2, layers=("hidden1", "output"), aggregation="sum", eps=0.0,
                           layer_reduction="sum")
    assert loss.layers == ("hidden1",) and not loss.needs_input_grad
    val = loss(model_batch(m, loss, x, y))
    f = m(x).detach()
    ref = 0.0
    for k in range(4):
        for i in range(3):
            if i == y[k]:
                continue
            gap = f[k, i] - f[k, y[k]]
            ref += F.relu(0.5 + gap / torch.linalg.vector_norm(W2[i] - W2[y[k]]))
            ref += F.relu(2.0 + gap / math.sqrt(2))
    assert val.item() == pytest.approx(ref.item() / 4, rel=1e-10)


def test_large_margin_softmax_scores_clip_and_ce_weight():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    m = linear(W, b)
    x = torch.tensor(rng.normal(size=(5, 4)))
    y = torch.tensor([0, 1, 2, 0, 1])
    loss = LargeMarginLoss(0.1, p=2, scores="softmax", eps=0.0)
    val = loss(model_batch(m, loss, x, y))
    Wt = torch.tensor(W)
    z = x @ Wt.T + torch.tensor(b)
    pr = z.softmax(1)
    ref = []
    for k in range(5):
        J = torch.diag(pr[k]) - torch.outer(pr[k], pr[k])  # d p / d z
        terms = [F.relu(0.1 + (pr[k, i] - pr[k, y[k]]) / torch.linalg.vector_norm((J[i] - J[y[k]]) @ Wt))
                 for i in range(3) if i != y[k]]
        ref.append(torch.stack(terms).max())
    assert val.item() == pytest.approx(torch.stack(ref).mean().item(), rel=1e-9)

    plain = LargeMarginLoss(1.0, eps=0.0)
    per = plain.per_sample(model_batch(m, plain, x, y))[:, 0]
    clipped = LargeMarginLoss(1.0, eps=0.0, clip=0.5, ce_weight=0.25)
    got = clipped(model_batch(m, clipped, x, y))
    expected = per.clamp(max=0.5).mean() + 0.25 * F.cross_entropy(m(x), y)
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)


def test_large_margin_all_layers_in_fit_and_evaluate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    ds = Dataset(X, y, 2)
    m = MLP(4, (16, 8), 2, seed=0)
    # clipping as in seed 004 §4.1: without it a near-zero gradient norm (dead ReLU paths) blows the loss up
    loss = get_loss("large_margin", gamma=0.5, layers="all", layer_reduction="mean", ce_weight=0.1, clip=5.0)
    before = evaluate(m, ds, loss=loss)[0]
    fit(m, ds, epochs=15, loss=loss, optimizer="sgd", lr=0.05, batch_size=16, progress=False, device="cpu")
    after, acc = evaluate(m, ds, loss=loss)
    assert after < 0.7 * before and acc > 0.9


# -- ODN (seed 003 Eq. 1) ----------------------------------------------------------------------------------

def test_odn_three_regions_values_and_gradients():
    # linear model with w0 - w1 = (2, 0): gamma_h = (f0 - f1)/2 = x1 for class 0 (eps = 0)
    m = linear(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2))
    r, theta, mu = 1.0, 0.2, 0.5
    loss = ODNLoss(r, theta, mu, eps=0.0)
    x = torch.tensor([[0.5, 1.0], [1.1, -2.0], [1.5, 0.0]], dtype=torch.float64)
    batch = model_batch(m, loss, x, torch.tensor([0, 0, 0]))
    gh = loss.margins(batch)
    assert torch.allclose(gh, x[:, 0])
    val = loss(batch)
    per = [(0.8 - 0.5) / 0.8, 0.0, mu * (1.5 - 1.2) ** 2 / 1.2 ** 2]
    assert val.item() == pytest.approx(sum(per) / 3)
    g = torch.autograd.grad(val, batch.x)[0]
    # d/dx1 of each region (norm held constant): -1/(r - theta), 0, 2 mu (gh - r - theta)/(r + theta)^2
    expected = [-1 / 0.8, 0.0, 2 * mu * 0.3 / 1.44]
    assert np.allclose(g[:, 0].numpy(), np.array(expected) / 3)
    assert np.allclose(g[:, 1].numpy(), 0.0)


def test_odn_is_continuous_at_the_band_edges_and_misclassified_is_linear():
    from marginlab.train.margin_losses import odn_loss

    t = torch.tensor([0.8 - 1e-9, 0.8, 1.2, 1.2 + 1e-9, -1.0], dtype=torch.float64)
    v = odn_loss(t, 1.0, 0.2, 0.5)
    assert torch.allclose(v[:4], torch.zeros(4, dtype=v.dtype), atol=1e-8)
    assert v[4].item() == pytest.approx((0.8 + 1.0) / 0.8)


def test_odn_weight_gradient_treats_norm_as_constant():
    rng = np.random.default_rng(4)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    x = torch.tensor(rng.normal(size=(5, 4)))
    y = torch.tensor([0, 1, 2, 2, 1])
    m = linear(W, b)
    loss = ODNLoss(0.5, 0.1, 0.3)
    val = loss(model_batch(m, loss, x, y))
    val.backward()
    Wt, bt = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
    f = x @ Wt.T + bt
    o = f.detach().scatter(1, y[:, None], -math.inf).argmax(1)
    gap = f.gather(1, y[:, None])[:, 0] - f.gather(1, o[:, None])[:, 0]
    den = 1e-6 + torch.linalg.vector_norm(Wt[y] - Wt[o], dim=1).detach()
    from marginlab.train.margin_losses import odn_loss

    ref = odn_loss(gap / den, 0.5, 0.1, 0.3).mean()
    ref.backward()
    assert val.item() == pytest.approx(ref.item(), rel=1e-10)
    assert torch.allclose(m.linear.weight.grad, Wt.grad, atol=1e-10)


# -- average-margin regularizer (seed 002 Eq. 4) -----------------------------------------------------------

def test_amr_value_and_orthogonality_each_weight_once():
    m = MLP(2, (2,), 3, seed=0).double()
    W1, W2 = m.weight_layers()[0], m.weight_layers()[1]
    with torch.no_grad():
        W1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        W1.bias.zero_()
        W2.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        W2.bias.copy_(torch.tensor([10.0, -5.0, 3.0]))
    x = torch.tensor([[1.0, 1.0], [3.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    amr = AverageMarginRegularizer(lam=0.5, tau=2.5, beta=0.1)
    batch = model_batch(m, amr, x, y)
    # features relu(W1 x) = (1, 2) and (3, 0); scores without bias: (1, 2, 3) and (3, 0, 3)
    assert torch.allclose(amr.feature_margins(batch), torch.tensor([-2.0, 0.0], dtype=torch.float64))
    # ||W1 W1^T - I||^2 = 9; W2 W2^T = [[1,0,1],[0,1,1],[1,1,2]] -> off-diagonals 4 x 1 + (2-1)^2 = 5
    assert amr.orthogonality(m).item() == pytest.approx(14.0)
    ce = F.cross_entropy(batch.logits, y)
    assert amr(batch).item() == pytest.approx(ce.item() - 0.5 * 0.0 + 0.1 * 14.0)
    x2 = torch.tensor([[4.0, 0.0]], dtype=torch.float64)
    b2 = model_batch(m, amr, x2, torch.tensor([0]))
    # scores (4, 0, 4) -> margin 0 (a tie with class 2)
    assert amr.feature_margins(b2).item() == 0.0
    b3 = model_batch(m, amr, torch.tensor([[1.0, 1.0]], dtype=torch.float64), torch.tensor([2]))
    # class 2 score 3 vs max(1, 2) -> margin 1, inside [0, tau]
    assert amr(b3).item() == pytest.approx(F.cross_entropy(b3.logits, b3.y).item() - 0.5 + 1.4)
    big = AverageMarginRegularizer(lam=1.0, tau=0.25, beta=0.0)
    assert big(b3).item() == pytest.approx(F.cross_entropy(b3.logits, b3.y).item() - 0.25)

    # a weight shared by two modules is penalised once
    shared = MLP(2, (2,), 2, seed=0).double()
    first, last = shared.weight_layers()
    last.weight = first.weight
    one = AverageMarginRegularizer(beta=1.0).orthogonality(shared)
    Wm = first.weight.detach()
    assert one.item() == pytest.approx(((Wm @ Wm.T - torch.eye(2, dtype=Wm.dtype)) ** 2).sum().item())


def test_amr_works_with_cnn_weights():
    from marginlab.models import CNN

    m = CNN(2, seed=0)
    val = AverageMarginRegularizer().orthogonality(m)
    ref = sum(((w.weight.reshape(w.weight.shape[0], -1) @ w.weight.reshape(w.weight.shape[0], -1).T
                - torch.eye(w.weight.shape[0])) ** 2).sum() for w in m.weight_layers())
    assert val.item() == pytest.approx(ref.item(), rel=1e-5)


# -- registry and bad inputs -------------------------------------------------------------------------------

def test_registry_names():
    for name, cls in [("hinge", MultiClassHinge), ("soft_hinge", SoftHinge),
                      ("large_margin", LargeMarginLoss), ("odn", ODNLoss),
                      ("rescaled_square", RescaledSquareLoss),
                      ("average_margin", AverageMarginRegularizer), ("amr", AverageMarginRegularizer)]:
        assert name in LOSSES
        assert isinstance(get_loss(name), cls)
    with pytest.raises(TypeError, match="bad option for loss 'odn'"):
        get_loss("odn", radius=1.0)


@pytest.mark.parametrize("make,match", [
    (lambda: ODNLoss(r=1.0, theta=1.0), "theta"),
    (lambda: ODNLoss(r=1.0, theta=2.0), "theta"),
    (lambda: ODNLoss(r=0.0), "r must be"),
    (lambda: ODNLoss(r=-1.0), "r must be"),
    (lambda: ODNLoss(mu=-0.1), "mu must be"),
    (lambda: ODNLoss(theta=-0.1), "theta must be"),
    (lambda: LargeMarginLoss(p=0.5), "p must be"),
    (lambda: LargeMarginLoss(p=float("nan")), "p must be"),
    (lambda: LargeMarginLoss(layers=()), "layers must name at least one"),
    (lambda: LargeMarginLoss(layers=[]), "layers must name at least one"),
    (lambda: LargeMarginLoss(gamma=-1.0), "gamma must be"),
    (lambda: LargeMarginLoss(gamma=[1.0, 2.0], layers=(0,)), "one value per layer"),
    (lambda: LargeMarginLoss(layers=(0, 0)), "must not repeat"),
    (lambda: LargeMarginLoss(aggregation="mean"), "aggregation"),
    (lambda: LargeMarginLoss(top_k=0), "top_k"),
    (lambda: LargeMarginLoss(clip=0.0), "clip"),
    (lambda: LargeMarginLoss(ce_weight=-1.0), "ce_weight"),
    (lambda: MultiClassHinge(gamma0=-1.0), "gamma0"),
    (lambda: AverageMarginRegularizer(tau=-1.0), "tau must be"),
    (lambda: AverageMarginRegularizer(beta=-1.0), "beta must be"),
    (lambda: AverageMarginRegularizer(lam=-1.0), "lam must be"),
    (lambda: RescaledSquareLoss(alpha=0.0), "alpha must be"),
    (lambda: RescaledSquareLoss(alpha=[1.0, -1.0]), "alpha must be"),
])
def test_bad_inputs(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_layer_not_kept_or_input_without_grad_is_a_clear_error():
    m = MLP(3, (4,), 2, seed=0)
    loss = LargeMarginLoss(layers=(1,))
    x = torch.randn(2, 3)
    logits, reps = m.forward_with_activations(x, [1])
    other = LargeMarginLoss(layers=(0,))
    with pytest.raises(ValueError, match="not kept"):
        other(Batch(x, torch.tensor([0, 1]), torch.arange(2), logits, reps, m))
    logits, reps = m.forward_with_activations(x, [0])
    with pytest.raises(ValueError, match="does not require grad"):
        other(Batch(x, torch.tensor([0, 1]), torch.arange(2), logits, reps, m))
    assert loss.layers == (1,)


def test_output_layer_only_needs_no_representation():
    m = nn.Module()
    loss = LargeMarginLoss(gamma=1.0, layers="output", eps=0.0)
    assert loss.layers == () and not loss.needs_input_grad
    batch, _ = logits_batch([[1.0, 3.0]], [0])
    batch.model = m
    # gap 2, ||e_1 - e_0||_2 = sqrt(2)
    assert loss(batch).item() == pytest.approx(1.0 + 2.0 / math.sqrt(2))
