"""Training losses. Every loss is a small object called with a :class:`Batch` and returning a scalar.

A loss declares what it needs beyond the logits: ``layers`` (representations whose activations must be
kept in the graph, e.g. for the large-margin loss; ``"all"`` keeps every one) and ``needs_input_grad``
(inputs must require grad). Losses are looked up by name with :func:`get_loss`; :data:`LOSSES` is the
registry. The margin-shaping losses (hinge, soft hinge, large-margin, ODN, rescaled square, average-margin)
live in :mod:`.margin_losses`, which registers them with :func:`register_loss` when it is imported; importing
:mod:`marginlab.train` (which every ``marginlab.train.*`` import does first) imports it, so the registry is
complete wherever it can be reached, and the dependency runs one way: ``margin_losses`` -> ``losses``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Batch", "Loss", "CrossEntropy", "LOSSES", "get_loss", "register_loss"]


@dataclass
class Batch:
    """One minibatch as a loss sees it. ``idx`` are the rows in the training set (for per-sample targets);
    ``reps[k]`` is representation k when the loss asked for layer k (else ``None``)."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    logits: torch.Tensor
    reps: list | None
    model: torch.nn.Module


class Loss:
    """Base class. Subclasses implement ``forward(batch) -> scalar tensor``."""

    name = "loss"
    layers: tuple = ()
    needs_input_grad: bool = False

    def __call__(self, batch: Batch) -> torch.Tensor:
        return self.forward(batch)

    def forward(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Softmax cross-entropy on the logits."""

    name = "cross_entropy"

    def __init__(self, label_smoothing: float = 0.0):
        from .._validation import check_float

        self.label_smoothing = check_float(label_smoothing, "label_smoothing", min_value=0.0, max_value=1.0)

    def forward(self, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(batch.logits, batch.y, label_smoothing=self.label_smoothing)


# name -> factory(**options) -> Loss; the margin-shaping losses add themselves (see the module docstring)
LOSSES: dict = {"cross_entropy": CrossEntropy, "xent": CrossEntropy, "ce": CrossEntropy}


def register_loss(name: str, factory) -> None:
    """Make ``factory(**kwargs) -> Loss`` available to :func:`get_loss` and ``fit(loss=name)``."""
    LOSSES[name] = factory


def get_loss(loss="cross_entropy", **kwargs) -> Loss:
    """A :class:`Loss` from a name in :data:`LOSSES`, a ``Loss`` instance, or a plain callable
    ``f(logits, y) -> scalar`` (wrapped)."""
    if isinstance(loss, Loss):
        if kwargs:
            raise ValueError("loss options can only be given with a loss name, not with a Loss object")
        return loss
    if isinstance(loss, str):
        key = loss.lower()
        if key not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} (or a Loss object); got {loss!r}")
        try:
            return LOSSES[key](**kwargs)
        except TypeError as exc:
            raise TypeError(f"bad option for loss {loss!r}: {exc}") from exc
    if callable(loss):
        return _CallableLoss(loss)
    raise TypeError(f"loss must be a name, a Loss object or a callable, got {type(loss).__name__}")


class _CallableLoss(Loss):
    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", "custom")

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.fn(batch.logits, batch.y)
