"""L1/L2 weight penalties in fit and the step-wise Trainer: one-step known answers, equivalence with SGD
weight decay, measurable shrinkage, validation; dropout during training."""

import numpy as np
import pytest
import torch

from marginlab.data import Dataset, load_toy, make_toy
from marginlab.device import torch_threads
from marginlab.models import MLP
from marginlab.train import Trainer, fit, penalized_weights, weight_penalty
from marginlab.train.regularization import add_penalty_grad


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):  # tiny nets: intra-op threads only contend on a shared machine
        yield


def _zero_loss(logits, y):
    return 0.0 * logits.sum()  # no data gradient: any change of the weights comes from the penalty


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    return Dataset(X, (X[:, 0] > 0).astype(int), n_classes=2)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("l1,l2", [(0.0, 0.3), (0.05, 0.0), (0.05, 0.3)])
def test_one_sgd_step_is_the_closed_form_update(l1, l2):
    model = MLP((2,), (5,), 2, seed=0)
    before = _snapshot(model)
    lr = 0.1
    tr = Trainer(model, _data(), loss=_zero_loss, lr=lr, optimizer_options={"momentum": 0.0}, batch_size=16,
                 l1=l1, l2=l2, device="cpu")
    tr.step(1)
    after = model.state_dict()
    for name, w in before.items():
        if name.endswith("weight"):
            expect = w * (1 - lr * l2) - lr * l1 * torch.sign(w)
            torch.testing.assert_close(after[name], expect, rtol=1e-6, atol=1e-7)
        else:  # biases are not penalized
            torch.testing.assert_close(after[name], w, rtol=0, atol=0)


def test_penalty_value_and_weights():
    model = MLP((2,), (4, 3), 2, seed=1)
    ws = [m.weight for m in model.weight_layers()]
    assert [w.shape for w in penalized_weights(model)] == [w.shape for w in ws]
    expect = sum(0.2 * w.abs().sum() + 0.5 * 0.7 * (w ** 2).sum() for w in ws).detach()
    torch.testing.assert_close(weight_penalty(model, l1=0.2, l2=0.7), expect)
    assert float(weight_penalty(model)) == 0.0
    tr = Trainer(model, _data(), l1=0.2, l2=0.7, device="cpu")
    assert tr.penalty() == pytest.approx(float(expect), rel=1e-6)


def test_the_added_gradient_is_the_penalty_gradient():
    model = MLP((2,), (6, 5), 3, seed=2)
    with torch.no_grad():
        model.blocks[0][1].weight[0, 0] = 0.0  # L1 at a kink: autograd's abs gives 0 there, so must we
    weights = penalized_weights(model)
    weight_penalty(model, l1=0.3, l2=0.2).backward()
    expect = [w.grad.clone() for w in weights]
    for w in weights:
        w.grad = None
    add_penalty_grad(weights, l1=0.3, l2=0.2)
    for w, g in zip(weights, expect):
        torch.testing.assert_close(w.grad, g)
    assert expect[0][0, 0] == 0


def test_l2_equals_sgd_weight_decay_on_a_bias_free_net():
    data = _data(128)
    runs = []
    for l2, wd in ((0.05, 0.0), (0.0, 0.05)):
        model = MLP((2,), (16,), 2, seed=0, bias=False)
        tr = Trainer(model, data, lr=0.05, l2=l2, optimizer_options={"momentum": 0.9, "weight_decay": wd},
                     batch_size=32, seed=0, device="cpu")
        tr.step(40)
        runs.append(_snapshot(model))
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=1e-5, atol=1e-6)


def test_l2_shrinks_weights_and_l1_sparsifies_while_training():
    train = make_toy("moons", 256, noise=0.1, seed=0)

    def run(**rates):
        model = MLP((2,), (32,), 2, seed=0)
        fit(model, train, epochs=40, lr=0.05, batch_size=32, seed=0, device="cpu", progress=False, **rates)
        w = torch.cat([m.weight.detach().flatten() for m in model.weight_layers()])
        return w

    free, l2, l1 = run(), run(l2=0.05), run(l1=0.01)
    assert l2.norm() < 0.8 * free.norm()
    small = lambda w: float((w.abs() < 1e-2).float().mean())  # noqa: E731
    assert small(l1) > small(free) + 0.2


def test_history_reports_the_data_loss_and_rates_can_change_between_steps():
    model = MLP((2,), (8,), 2, seed=0)
    tr = Trainer(model, _data(32), loss=_zero_loss, l2=1.0, lr=0.1, optimizer_options={"momentum": 0.0},
                 batch_size=8, device="cpu")
    tr.run_epoch()
    assert tr.history.loss == [0.0] and tr.penalty() > 0
    w0 = model.blocks[0][1].weight.detach().clone()
    tr.l2 = 0.0
    tr.step(3)
    torch.testing.assert_close(model.blocks[0][1].weight, w0, rtol=0, atol=0)
    tr.l2 = 0.5
    tr.step(1)
    torch.testing.assert_close(model.blocks[0][1].weight, w0 * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("kwargs,err,match", [
    ({"l1": -0.1}, ValueError, r"l1 must be in \[0, inf\), got -0.1"),
    ({"l2": float("nan")}, ValueError, "l2 must be finite"),
    ({"l2": "0.1"}, TypeError, "l2 must be a real number"),
])
def test_bad_rates_stop_before_training(kwargs, err, match):
    model = MLP((2,), (4,), 2, seed=0)
    before = _snapshot(model)
    with pytest.raises(err, match=match):
        fit(model, _data(), epochs=1, progress=False, device="cpu", **kwargs)
    tr = Trainer(model, _data(), device="cpu")
    with pytest.raises(err, match=match):
        setattr(tr, next(iter(kwargs)), next(iter(kwargs.values())))
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v)


def test_dropout_trains_and_the_trained_model_is_deterministic():
    train, test = load_toy("moons", 512, noise=0.1, test_size=0.5, seed=0)
    model = MLP((2,), (64,), 2, seed=0, dropout=0.3)
    fit(model, train, epochs=40, lr=0.05, batch_size=32, device="cpu", progress=False)
    assert not model.training
    X = torch.as_tensor(test.X)
    assert torch.equal(model(X), model(X))
    acc = float((model(X).argmax(1).numpy() == test.y).mean())
    assert acc > 0.95
