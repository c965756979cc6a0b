"""L1 and L2 weight penalties (TensorFlow Playground's "regularization" with a rate).

The penalty added to the training loss is

    R(W) = l1 * sum_l ||W_l||_1 + (l2 / 2) * sum_l ||W_l||_F^2

over the weight matrices/kernels of the Linear and Conv layers (biases are not penalized). Its gradient is
``l1 * sign(W) + l2 * W``, so one plain SGD step with learning rate ``lr`` multiplies the weights by
``1 - lr * l2`` and moves each towards 0 by ``lr * l1``: ``l2`` is the same number as PyTorch's
``weight_decay`` and TensorFlow Playground's L2 rate. Training adds that gradient to the weights' ``.grad``
after back-propagating the data loss (:func:`add_penalty_grad`: the same step as back-propagating ``R``,
without building its graph). The penalty shapes the weights only; reported losses
(``History.loss``, ``evaluate``) stay the data loss, so runs with different rates compare on one scale.
"""

from __future__ import annotations

import torch

from .._validation import check_float

__all__ = ["check_rate", "penalized_weights", "weight_penalty", "add_penalty_grad"]


def check_rate(value, name: str) -> float:
    """A regularization rate: a finite real number >= 0 (0 turns the penalty off)."""
    return check_float(value, name, min_value=0.0)


def penalized_weights(model) -> list[torch.Tensor]:
    """The weight tensors the penalty acts on: those of ``model.weight_layers()`` (a marginlab model) or of
    every Linear/Conv2d module of a plain torch module; biases are left out."""
    mods = model.weight_layers() if hasattr(model, "weight_layers") else [
        m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    return [m.weight for m in mods if m.weight.requires_grad]


def weight_penalty(model, *, l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """``R(W)`` of the module docstring as a scalar tensor in the graph (zero when both rates are 0)."""
    l1, l2 = check_rate(l1, "l1"), check_rate(l2, "l2")
    weights = penalized_weights(model)
    p = next(iter(model.parameters()), None)
    total = torch.zeros((), device=None if p is None else p.device, dtype=None if p is None else p.dtype)
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + 0.5 * l2 * w.pow(2).sum()
    return total


def add_penalty_grad(weights, *, l1: float = 0.0, l2: float = 0.0) -> None:
    """Add ``l1 * sign(W) + l2 * W`` (the gradient of ``R``; 0 at W = 0 for the L1 part, as autograd's
    ``abs``) to each weight's ``.grad`` in place (a missing ``.grad`` starts at zero). ``l1``, ``l2`` are
    taken as already checked: this runs every training step."""
    with torch.no_grad():
        for w in weights:
            if w.grad is None:
                w.grad = torch.zeros_like(w)
            if l2:
                w.grad.add_(w, alpha=l2)
            if l1:
                w.grad.add_(torch.sign(w), alpha=l1)
