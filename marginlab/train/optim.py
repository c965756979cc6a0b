"""Optimizers by name and post-step constraints.

:data:`OPTIMIZERS` maps a name to ``factory(params, lr, **options) -> torch.optim.Optimizer``. A
*constraint* is a callable ``c(model)`` run under ``torch.no_grad()`` after every optimizer step (norm
projections, Recipe 1 step 3).
"""

from __future__ import annotations

import torch

from .._validation import check_float

__all__ = ["OPTIMIZERS", "make_optimizer", "register_optimizer"]


def _sgd(params, lr, momentum=0.9, weight_decay=0.0, nesterov=False):
    momentum = check_float(momentum, "momentum", min_value=0.0, max_value=1.0, max_inclusive=False)
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _adam(params, lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8):
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps)


def _rmsprop(params, lr, alpha=0.99, momentum=0.0, weight_decay=0.0, eps=1e-8):
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, momentum=momentum, weight_decay=weight_decay, eps=eps)


OPTIMIZERS: dict = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop}


def register_optimizer(name: str, factory) -> None:
    OPTIMIZERS[name] = factory


def make_optimizer(optimizer, params, lr: float, **options) -> torch.optim.Optimizer:
    """Build an optimizer from a name in :data:`OPTIMIZERS`, a ``torch.optim.Optimizer`` subclass, or a
    factory ``f(params, lr=..., **options)``. ``lr`` must be > 0."""
    lr = check_float(lr, "lr", min_value=0.0, min_inclusive=False)
    params = list(params)
    if not params:
        raise ValueError("the model has no trainable parameters")
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} (or an optimizer class); "
                             f"got {optimizer!r}")
        try:
            return OPTIMIZERS[key](params, lr, **options)
        except TypeError as exc:
            raise TypeError(f"bad option for optimizer {optimizer!r}: {exc}") from exc
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr, **options)
    if callable(optimizer):
        return optimizer(params, lr=lr, **options)
    raise TypeError(f"optimizer must be a name, an Optimizer class or a factory, got {type(optimizer).__name__}")
