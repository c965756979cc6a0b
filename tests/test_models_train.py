import numpy as np
import pytest
import torch

from marginlab.data import load_mnist, load_toy
from marginlab.device import resolve_device
from marginlab.models import CNN, MLP, LinearModel, load_model, save_model
from marginlab.train import Trainer, fit


def test_mlp_layers_and_tail():
    m = MLP(2, (8, 5), 3, seed=0)
    x = torch.randn(7, 2)
    assert m.n_layers == 3 and m.layer_names == ("input", "hidden1", "hidden2")
    logits, reps = m.forward_with_activations(x)
    assert [r.shape[1] for r in reps] == [2, 8, 5]
    for k in range(3):
        torch.testing.assert_close(m.tail(k)(m.activations(x, k)), logits)
    assert m.resolve_layer("hidden2") == 2 and m.resolve_layer(-1) == 2
    with pytest.raises(ValueError, match="layer must be"):
        m.resolve_layer(3)
    with pytest.raises(ValueError, match="layer must be one of"):
        m.resolve_layer("hidden9")


def test_bias_free_and_activation():
    m = MLP(4, (6,), 2, bias=False, activation="tanh")
    assert all(p.ndim == 2 for p in m.parameters())
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(4, (6,), 2, activation="swishy")


@pytest.mark.parametrize("hidden", [(0,), (5, -1)])
def test_bad_widths(hidden):
    with pytest.raises(ValueError, match=r"hidden\[\d\] must be"):
        MLP(2, hidden, 2)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_cnn_family(shape):
    m = CNN(4, input_shape=shape, seed=0)
    x = torch.randn(3, *shape)
    assert m(x).shape == (3, 10)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32]
    assert m.weight_layers()[-2].out_features == 400
    pools = {type(mod).__name__ for mod in m.modules()}
    assert {"MaxPool2d", "AdaptiveAvgPool2d"} <= pools
    for k in range(m.n_layers):
        torch.testing.assert_close(m.tail(k)(m.activations(x, k)), m(x))
    with pytest.raises(ValueError, match="k must be"):
        CNN(0)


def test_linear_model_is_affine():
    m = LinearModel((1, 28, 28), 10, seed=0)
    x, z = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(m(x + z) - m(z), m(x) - m(torch.zeros_like(x)), rtol=1e-4, atol=1e-5)


def test_moons_reaches_99_percent_quickly():
    tr, _ = load_toy("moons", 600, noise=0.1, seed=0)
    m = MLP(2, (64, 64), 2, seed=0)
    h = fit(m, tr, epochs=300, lr=0.05, batch_size=32, target_train_acc=0.99, device="cpu", progress=False)
    from marginlab.train import evaluate

    assert evaluate(m, tr)[1] >= 0.99
    assert len(h) < 300  # stopped early once the target was reached


def test_same_seed_identical_weights_cpu():
    tr, _ = load_toy("circles", 300, noise=0.05, seed=1)

    def run(seed):
        m = MLP(2, (16,), 2, seed=seed)
        fit(m, tr, epochs=3, lr=0.05, seed=seed, device="cpu", progress=False)
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_history_validation_and_step_decay():
    tr, va = load_toy("blobs", 300, n_classes=3, seed=0)
    m = MLP(2, (16,), 3, seed=0)
    h = fit(m, tr, val=va, epochs=6, lr=0.1, lr_decay=0.5, lr_decay_every=2, device="cpu", progress=False)
    assert h.epoch == [1, 2, 3, 4, 5, 6] and len(h.val_acc) == 6
    # lr is the rate used during that epoch: x0.5 after every 2nd epoch
    np.testing.assert_allclose(h.lr, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert h.to_frame().shape[0] == 6


def test_trainer_steps_and_callbacks():
    tr, _ = load_toy("moons", 100, seed=0)
    seen = {"steps": 0, "epochs": []}

    class CB:
        def on_step(self, trainer, loss):
            seen["steps"] += 1

        def on_epoch(self, trainer, record):
            seen["epochs"].append(record["epoch"])

    t = Trainer(MLP(2, (8,), 2, seed=0), tr, batch_size=32, device="cpu", callbacks=[CB()])
    assert t.steps_per_epoch == 3  # 70 training points
    t.step(7)
    assert seen["steps"] == 7 and seen["epochs"] == [1, 2] and t.epoch == 2


def test_stop_training_from_callback():
    tr, _ = load_toy("moons", 100, seed=0)

    def stop_after_two(trainer, record):
        if record["epoch"] == 2:
            trainer.stop_training = True

    h = fit(MLP(2, (8,), 2), tr, epochs=50, callbacks=[stop_after_two], device="cpu", progress=False)
    assert len(h) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=0.0), "lr must be"),
        (dict(lr=-1.0), "lr must be"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(epochs=-1), "epochs must be"),
        (dict(optimizer="lbfgs-ish"), "optimizer must be one of"),
        (dict(loss="mse-ish"), "loss must be one of"),
        (dict(lr_decay=1.5), "lr_decay must be"),
        (dict(target_train_acc=1.2), "target_train_acc must be"),
    ],
)
def test_fit_bad_input(kwargs, match):
    tr, _ = load_toy("moons", 50)
    with pytest.raises(ValueError, match=match):
        fit(MLP(2, (4,), 2), tr, device="cpu", progress=False, **{"epochs": 1, **kwargs})


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")


def test_save_load_roundtrip(tmp_path):
    tr, _ = load_toy("moons", 100)
    m = MLP(2, (8, 4), 2, bias=False, activation="tanh", seed=0)
    h = fit(m, tr, epochs=2, device="cpu", progress=False)
    p = save_model(tmp_path / "m.pt", m, dataset=tr, history=h)
    assert not [f for f in tmp_path.iterdir() if f.suffix == ".part"]
    m2 = load_model(p)
    x = torch.randn(5, 2)
    torch.testing.assert_close(m(x), m2(x))
    assert m2.meta["dataset"]["source"] == tr.source and m2.meta["history"]["epoch"] == [1, 2]
    c = CNN(2, input_shape=(3, 32, 32), seed=1)
    c2 = load_model(save_model(tmp_path / "c.pt", c))
    xc = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(c(xc), c2(xc))


def test_mnist_mlp_trains_on_offline_data():
    tr = load_mnist("train").subset(np.arange(0, 5000, 5))
    m = MLP((1, 28, 28), (64,), 10, seed=0)
    h = fit(m, tr, epochs=5, lr=0.05, batch_size=64, device="cpu", progress=False)
    assert h.acc[-1] > 0.85


def test_torch_threads_sets_and_restores():
    from marginlab.device import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):  # restored on errors too
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="torch_threads"), torch_threads(0):
        pass
