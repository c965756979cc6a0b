"""Fully connected networks and the linear (logistic) model."""

from __future__ import annotations

import numpy as np
from torch import nn

from .._validation import check_int, check_widths
from .base import MarginNet, make_activation, seeded

__all__ = ["MLP", "LinearModel"]


def _input_shape(input_shape):
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (int(input_shape),)
    shape = tuple(check_int(s, "input_shape[]", min_value=1) for s in input_shape)
    if not shape:
        raise ValueError("input_shape must have at least one dimension")
    return shape


class MLP(MarginNet):
    """Multi-layer perceptron ``input -> hidden[0] -> ... -> n_classes``.

    ``hidden`` lists the widths (``()`` gives a linear model); ``activation`` one of ``relu, tanh, sigmoid,
    gelu, elu, leaky_relu, softplus, linear``; ``bias=False`` gives the bias-free nets used for normalized
    margins (seed 001). Inputs of any shape are flattened by the first block. ``seed`` fixes the init.
    """

    family = "mlp"

    def __init__(self, input_shape, hidden=(100,), n_classes: int = 10, *, activation: str = "relu",
                 bias: bool = True, seed: int | None = None):
        shape = _input_shape(input_shape)
        hidden = check_widths(hidden, "hidden")
        n_classes = check_int(n_classes, "n_classes", min_value=2)
        d = int(np.prod(shape))
        widths = (d,) + hidden
        with seeded(seed):
            blocks = []
            for k in range(len(hidden)):
                layers = [nn.Flatten()] if k == 0 else []
                layers += [nn.Linear(widths[k], widths[k + 1], bias=bias), make_activation(activation)]
                blocks.append(nn.Sequential(*layers))
            last = [nn.Flatten()] if not hidden else []
            blocks.append(nn.Sequential(*last, nn.Linear(widths[-1], n_classes, bias=bias)))
        names = ["input"] + [f"hidden{k + 1}" for k in range(len(hidden))]
        config = {"family": "mlp", "input_shape": list(shape), "hidden": list(hidden), "n_classes": n_classes,
                  "activation": activation, "bias": bias, "seed": seed}
        super().__init__(blocks, input_shape=shape, n_classes=n_classes, layer_names=names, config=config)
        self.hidden = hidden
        self.activation = activation
        self.bias = bias


class LinearModel(MLP):
    """A linear classifier (multinomial logistic regression when trained with cross-entropy)."""

    family = "linear"

    def __init__(self, input_shape, n_classes: int = 2, *, bias: bool = True, seed: int | None = None):
        super().__init__(input_shape, (), n_classes, bias=bias, seed=seed)
        self.config = {"family": "linear", "input_shape": list(self.input_shape), "n_classes": self.n_classes,
                       "bias": bias, "seed": seed}

    @property
    def linear(self) -> nn.Linear:
        return self.blocks[0][-1]
