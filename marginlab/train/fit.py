"""``fit`` and the step-wise ``Trainer`` behind it.

Data goes to the device once; each step gathers a minibatch by index on the device. Running loss and
accuracy are accumulated on the device (no per-step host sync). Widgets drive ``Trainer.step(k)`` from a
timer; scripts call :func:`fit`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validation import check_float, check_int
from ..data.dataset import Dataset
from ..device import resolve_device
from .losses import Batch, get_loss
from .optim import make_optimizer
from .regularization import add_penalty_grad, check_rate, penalized_weights, weight_penalty

__all__ = ["fit", "Trainer", "History", "evaluate"]


@dataclass
class History:
    """Per-epoch records: ``epoch, loss, acc`` (train), ``val_loss, val_acc``, ``lr``, ``seconds``.

    ``train_metrics`` says whether train loss/acc are ``"running"`` (averaged over the epoch's steps, as
    Keras reports them) or ``"full"`` (a pass over the whole training set at the end of the epoch)."""

    epoch: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    train_metrics: str = "running"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, list) else v for k, v in self.__dict__.items()}

    def to_frame(self):
        import pandas as pd

        d = self.to_dict()
        d.pop("train_metrics")
        n = len(d["epoch"])
        return pd.DataFrame({k: v if len(v) == n else [math.nan] * n for k, v in d.items()})

    def __len__(self) -> int:
        return len(self.epoch)


@torch.no_grad()
def _predict_logits(model, X, batch_size):
    return torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])


def evaluate(model, data, *, loss="cross_entropy", batch_size: int = 1024,
             device=None) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on a :class:`Dataset` or an ``(X, y)`` pair of tensors."""
    loss_fn = get_loss(loss)
    dev = model.device if device is None else resolve_device(device)
    if isinstance(data, Dataset):
        X, y = data.tensors(dev)
    else:
        X, y = (t.to(dev) for t in data)
    was_training = model.training
    model.eval()
    total, correct = torch.zeros((), device=dev), torch.zeros((), device=dev)
    needs_grad = loss_fn.needs_input_grad or bool(loss_fn.layers)
    try:
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], y[i:i + batch_size]
            idx = torch.arange(i, i + len(xb), device=dev)
            with torch.set_grad_enabled(needs_grad):
                if needs_grad:
                    xb = xb.clone().requires_grad_(loss_fn.needs_input_grad)
                logits, reps = _forward(model, xb, loss_fn)
                val = loss_fn(Batch(xb, yb, idx, logits, reps, model))
            total += val.detach() * len(xb)
            correct += (logits.detach().argmax(1) == yb).sum()
    finally:
        model.train(was_training)
    n = max(len(X), 1)
    return float(total) / n, float(correct) / n


def _forward(model, x, loss_fn):
    if loss_fn.layers:
        # "all": every representation is kept (forward_with_activations' default)
        layers = None if isinstance(loss_fn.layers, str) and loss_fn.layers == "all" else loss_fn.layers
        return model.forward_with_activations(x, layers)
    return model(x), None


class Trainer:
    """Step-wise training of ``model`` on a :class:`Dataset`.

    Parameters mirror :func:`fit`. ``step(k)`` runs k minibatch steps (epochs roll over automatically),
    ``run_epoch()`` one epoch; ``history`` collects per-epoch records. Set ``stop_training = True`` from a
    callback to stop :meth:`fit`. The regularization rates ``l1`` and ``l2`` may be changed between steps
    (``trainer.l2 = 0.01``; checked like the constructor's).
    """

    def __init__(self, model, train: Dataset, *, val: Dataset | None = None, loss="cross_entropy",
                 loss_options: dict | None = None, optimizer="sgd", lr: float = 0.01,
                 optimizer_options: dict | None = None, batch_size: int = 64, lr_decay: float = 1.0,
                 lr_decay_every: int | None = None, seed: int = 0, device="auto", constraints=(),
                 callbacks=(), train_metrics: str = "running", l1: float = 0.0, l2: float = 0.0):
        if not isinstance(train, Dataset):
            raise TypeError(f"train must be a marginlab Dataset, got {type(train).__name__}")
        if len(train) == 0:
            raise ValueError("train must hold at least one sample")
        if val is not None and not isinstance(val, Dataset):
            raise TypeError(f"val must be a marginlab Dataset or None, got {type(val).__name__}")
        if tuple(train.input_shape) != tuple(model.input_shape) and int(np.prod(train.input_shape)) != int(
                np.prod(model.input_shape)):
            raise ValueError(f"train inputs have shape {train.input_shape}, "
                             f"the model expects {model.input_shape}")
        if train.n_classes > model.n_classes:
            raise ValueError(f"train has {train.n_classes} classes, the model only {model.n_classes} outputs")
        self.batch_size = check_int(batch_size, "batch_size", min_value=1)
        self.lr_decay = check_float(lr_decay, "lr_decay", min_value=0.0, max_value=1.0, min_inclusive=False)
        self.lr_decay_every = None if lr_decay_every is None else check_int(lr_decay_every, "lr_decay_every",
                                                                            min_value=1)
        if train_metrics not in ("running", "full"):
            raise ValueError(f"train_metrics must be 'running' or 'full', got {train_metrics!r}")
        self.seed = check_int(seed, "seed", min_value=0)
        self.l1, self.l2 = l1, l2
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self._penalized = penalized_weights(self.model)
        self.train_data, self.val_data = train, val
        self.loss_fn = get_loss(loss, **(loss_options or {}))
        self.optimizer = make_optimizer(optimizer, (p for p in model.parameters() if p.requires_grad), lr,
                                        **(optimizer_options or {}))
        self.base_lr = lr
        self.constraints = list(constraints)
        self.callbacks = list(callbacks)
        self.history = History(train_metrics=train_metrics)
        self._X, self._y = train.tensors(self.device)
        if tuple(self._X.shape[1:]) != tuple(model.input_shape):
            self._X = self._X.reshape((len(self._X),) + tuple(model.input_shape))
        self._val = None
        if val is not None:
            Xv, yv = val.tensors(self.device)
            self._val = (Xv.reshape((len(Xv),) + tuple(model.input_shape)), yv)
        self._gen = torch.Generator().manual_seed(self.seed)
        self.epoch = 0
        self.global_step = 0
        self.stop_training = False
        self._perm = None
        self._pos = 0
        self._run_loss = torch.zeros((), device=self.device)
        self._run_correct = torch.zeros((), device=self.device)
        self._run_n = 0
        self._epoch_t0 = None
        for c in self.constraints:
            with torch.no_grad():
                c(self.model)

    # -- state ----------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    @property
    def l1(self) -> float:
        """L1 rate of the weight penalty (see :mod:`.regularization`)."""
        return self._l1

    @l1.setter
    def l1(self, value):
        self._l1 = check_rate(value, "l1")

    @property
    def l2(self) -> float:
        """L2 rate of the weight penalty (PyTorch's ``weight_decay`` in plain SGD; :mod:`.regularization`)."""
        return self._l2

    @l2.setter
    def l2(self, value):
        self._l2 = check_rate(value, "l2")

    def penalty(self) -> float:
        """The current weight penalty ``R(W)`` (0 when both rates are 0)."""
        with torch.no_grad():
            return float(weight_penalty(self.model, l1=self._l1, l2=self._l2))

    @property
    def n_train(self) -> int:
        return len(self._X)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_train / self.batch_size)

    def set_train_data(self, train: Dataset) -> None:
        """Swap the training set (e.g. after a point was added); the current epoch restarts."""
        self.train_data = train
        X, self._y = train.tensors(self.device)
        self._X = X.reshape((len(X),) + tuple(self.model.input_shape))
        self._perm, self._pos = None, 0

    # -- stepping -------------------------------------------------------------------------------
    def _next_indices(self):
        if self._perm is None:
            self._perm = torch.randperm(self.n_train, generator=self._gen).to(self.device)
            self._pos = 0
            self._epoch_t0 = time.perf_counter()
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def _train_step(self, idx) -> torch.Tensor:
        model, loss_fn = self.model, self.loss_fn
        xb, yb = self._X[idx], self._y[idx]
        if loss_fn.needs_input_grad:
            xb = xb.requires_grad_(True)
        logits, reps = _forward(model, xb, loss_fn)
        loss = loss_fn(Batch(xb, yb, idx, logits, reps, model))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._l1 or self._l2:
            add_penalty_grad(self._penalized, l1=self._l1, l2=self._l2)
        self.optimizer.step()
        if self.constraints:
            with torch.no_grad():
                for c in self.constraints:
                    c(model)
        with torch.no_grad():
            self._run_loss += loss.detach() * len(idx)
            self._run_correct += (logits.detach().argmax(1) == yb).sum()
        self._run_n += len(idx)
        self.global_step += 1
        return loss

    def step(self, n_steps: int = 1) -> None:
        """Run ``n_steps`` minibatch steps; an epoch that completes is recorded in ``history``."""
        n_steps = check_int(n_steps, "n_steps", min_value=1)
        self.model.train()
        for _ in range(n_steps):
            idx = self._next_indices()
            loss = self._train_step(idx)
            for cb in self.callbacks:
                if hasattr(cb, "on_step"):
                    cb.on_step(self, loss)
            if self._pos >= self.n_train:
                self._end_epoch()

    def run_epoch(self) -> dict:
        """Finish the current epoch (a whole one if none is under way) and return its record."""
        self.model.train()
        n0 = len(self.history)
        while len(self.history) == n0:
            self.step(1)
        return self.last_record

    @property
    def last_record(self) -> dict | None:
        if not len(self.history):
            return None
        h = self.history
        return {k: getattr(h, k)[-1] for k in ("epoch", "loss", "acc", "val_loss", "val_acc", "lr", "seconds")
                if getattr(h, k)}

    def _end_epoch(self):
        self.epoch += 1
        h = self.history
        if h.train_metrics == "full":
            loss, acc = self.evaluate((self._X, self._y))
        else:
            loss = float(self._run_loss) / max(self._run_n, 1)
            acc = float(self._run_correct) / max(self._run_n, 1)
        h.epoch.append(self.epoch)
        h.loss.append(loss)
        h.acc.append(acc)
        h.lr.append(self.lr)
        if self._val is not None:
            vl, va = self.evaluate(self._val)
            h.val_loss.append(vl)
            h.val_acc.append(va)
        h.seconds.append(time.perf_counter() - (self._epoch_t0 or time.perf_counter()))
        self._run_loss.zero_()
        self._run_correct.zero_()
        self._run_n = 0
        self._perm = None
        if self.lr_decay_every and self.epoch % self.lr_decay_every == 0:
            for g in self.optimizer.param_groups:
                g["lr"] *= self.lr_decay
        record = self.last_record
        for cb in self.callbacks:
            if hasattr(cb, "on_epoch"):
                cb.on_epoch(self, record)
            elif callable(cb) and not hasattr(cb, "on_step"):
                cb(self, record)

    def evaluate(self, data=None) -> tuple[float, float]:
        """``(loss, accuracy)`` on ``data`` (a Dataset or tensors; default: the training set)."""
        data = (self._X, self._y) if data is None else data
        return evaluate(self.model, data, loss=self.loss_fn, batch_size=max(1024, self.batch_size))

    def train_accuracy(self) -> float:
        return self.evaluate()[1]

    # -- whole runs -----------------------------------------------------------------------------
    def fit(self, epochs: int, *, target_train_acc: float | None = None, progress: bool = True) -> History:
        """Train for up to ``epochs`` more epochs; stop early once the training accuracy (checked on the
        whole training set) reaches ``target_train_acc`` (interpolation when 1.0)."""
        epochs = check_int(epochs, "epochs", min_value=0)
        if target_train_acc is not None:
            target_train_acc = check_float(target_train_acc, "target_train_acc", min_value=0.0, max_value=1.0)
        self.stop_training = False
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc="fit", unit="epoch", leave=False)
        try:
            for _ in range(epochs):
                rec = self.run_epoch()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items()
                                     if k in ("loss", "acc", "val_acc")})
                if target_train_acc is not None and rec["acc"] >= target_train_acc - 1e-12:
                    # running accuracy is measured while weights move: confirm on the full training set
                    if (self.history.train_metrics == "full"
                            or self.train_accuracy() >= target_train_acc - 1e-12):
                        break
                if self.stop_training:
                    break
        finally:
            if bar is not None:
                bar.close()
        self.model.eval()
        return self.history


def fit(model, train: Dataset, *, val: Dataset | None = None, epochs: int = 10, loss="cross_entropy",
        loss_options: dict | None = None, optimizer="sgd", lr: float = 0.01,
        optimizer_options: dict | None = None, batch_size: int = 64, lr_decay: float = 1.0,
        lr_decay_every: int | None = None, target_train_acc: float | None = None, seed: int = 0,
        device="auto", constraints=(), callbacks=(), train_metrics: str = "running",
        progress: bool = True, l1: float = 0.0, l2: float = 0.0) -> History:
    """Train ``model`` on ``train`` and return its :class:`History`.

    ``loss``: a name (``"cross_entropy"`` ...) or a :class:`~marginlab.train.losses.Loss`; ``optimizer``:
    ``"sgd"`` (momentum 0.9 by default), ``"adam"``, ``"rmsprop"`` or a class, with ``optimizer_options``;
    step decay multiplies the learning rate by ``lr_decay`` every ``lr_decay_every`` epochs (seed 000 uses
    0.99 every 5); ``target_train_acc`` stops at that training accuracy; ``constraints`` are callables
    run on the model after every step; ``callbacks`` are objects with ``on_step(trainer, loss)`` and/or
    ``on_epoch(trainer, record)`` (a plain callable is called per epoch). ``device="auto"`` picks CUDA,
    then MPS, then CPU. The trained model stays on that device, in eval mode.

    ``l1``, ``l2`` (>= 0): rates of the weight penalty ``l1 * sum|W| + (l2 / 2) * sum W^2`` added to the
    training objective (biases not penalized; see :mod:`marginlab.train.regularization`); the recorded losses
    stay the data loss. Dropout is a property of the model (``MLP(..., dropout=p)``): on in training steps,
    off in evaluation and in every margin.
    """
    trainer = Trainer(model, train, val=val, loss=loss, loss_options=loss_options, optimizer=optimizer, lr=lr,
                      optimizer_options=optimizer_options, batch_size=batch_size, lr_decay=lr_decay,
                      lr_decay_every=lr_decay_every, seed=seed, device=device, constraints=constraints,
                      callbacks=callbacks, train_metrics=train_metrics, l1=l1, l2=l2)
    return trainer.fit(epochs, target_train_acc=target_train_acc, progress=progress)
