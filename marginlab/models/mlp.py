"""Fully connected networks and the linear (logistic) model."""

from __future__ import annotations

import numpy as np
from torch import nn

from .._validation import check_float, check_int, check_widths
from .base import MarginNet, make_activation, seeded
from .features import FeatureMap, check_features

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

    ``features`` (2-D inputs only): names of fixed input features (see :mod:`.features`: ``x, y, x^2, y^2,
    xy, sin x, sin y``) computed by a :class:`~.features.FeatureMap` at the start of the first block. The
    model's input is still the 2-D point (representation 0), so margins at layer 0 are distances in the
    plane through the map; representation 1 is the first hidden layer, as without features.

    ``dropout``: probability in [0, 1) of zeroing each hidden unit in training (``nn.Dropout`` after every
    hidden activation); in eval mode, where margins are measured, it is the identity. Change it later with
    :meth:`set_dropout` (the parameters, and so an optimizer over them, stay the same).
    """

    family = "mlp"

    def __init__(self, input_shape, hidden=(100,), n_classes: int = 10, *, activation: str = "relu",
                 bias: bool = True, seed: int | None = None, features=None, dropout: float = 0.0):
        shape = _input_shape(input_shape)
        hidden = check_widths(hidden, "hidden")
        n_classes = check_int(n_classes, "n_classes", min_value=2)
        dropout = _check_dropout(dropout, hidden)
        fmap = None
        if features is not None:
            if shape != (2,):
                raise ValueError(f"features need 2-D points as input (input_shape (2,)), got input_shape "
                                 f"{shape}")
            fmap = FeatureMap(check_features(features, "features"))
        d = fmap.n_features if fmap is not None else int(np.prod(shape))
        widths = (d,) + hidden
        with seeded(seed):
            blocks = []
            for k in range(len(hidden)):
                layers = [nn.Flatten()] if k == 0 else []
                layers += [nn.Linear(widths[k], widths[k + 1], bias=bias), make_activation(activation)]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
                blocks.append(nn.Sequential(*layers))
            last = [nn.Flatten()] if not hidden else []
            blocks.append(nn.Sequential(*last, nn.Linear(widths[-1], n_classes, bias=bias)))
        if fmap is not None:
            blocks[0].insert(0, fmap)
        names = ["input"] + [f"hidden{k + 1}" for k in range(len(hidden))]
        config = {"family": "mlp", "input_shape": list(shape), "hidden": list(hidden), "n_classes": n_classes,
                  "activation": activation, "bias": bias, "seed": seed}
        super().__init__(blocks, input_shape=shape, n_classes=n_classes, layer_names=names, config=config)
        self.hidden = hidden
        self.activation = activation
        self.bias = bias
        self._set_optional_config(fmap, dropout)

    def _set_optional_config(self, fmap, dropout):
        # written only when used, so a plain MLP's config (and files saved before these options) is unchanged
        self.config.pop("features", None)
        self.config.pop("dropout", None)
        if fmap is not None:
            self.config["features"] = list(fmap.names)
        if dropout > 0:
            self.config["dropout"] = dropout

    @property
    def feature_map(self) -> FeatureMap | None:
        """The :class:`~.features.FeatureMap` opening the first block, or None."""
        first = self.blocks[0][0]
        return first if isinstance(first, FeatureMap) else None

    @property
    def features(self) -> tuple[str, ...] | None:
        """The input feature names, or None when the first layer sees the raw input."""
        return None if self.feature_map is None else self.feature_map.names

    @property
    def dropout(self) -> float:
        """The dropout probability after each hidden activation (0 when off)."""
        return float(self.config.get("dropout", 0.0))

    def set_dropout(self, p: float) -> None:
        """Set the dropout probability of every hidden layer (adding ``nn.Dropout`` modules if the model was
        built without them; parameters are untouched). No effect in eval mode."""
        p = _check_dropout(p, self.hidden)
        drops = [m for m in self.modules() if isinstance(m, nn.Dropout)]
        if not drops and p > 0:
            for block in self.blocks[:-1]:
                block.append(nn.Dropout(p))
        for m in drops:
            m.p = p
        self._set_optional_config(self.feature_map, p)


def _check_dropout(p, hidden) -> float:
    p = check_float(p, "dropout", min_value=0.0, max_value=1.0, max_inclusive=False)
    if p > 0 and not hidden:
        raise ValueError(f"dropout acts on hidden units and this model has none (hidden=()), got {p:g}")
    return p


class LinearModel(MLP):
    """A linear classifier (multinomial logistic regression when trained with cross-entropy)."""

    family = "linear"

    def __init__(self, input_shape, n_classes: int = 2, *, bias: bool = True, seed: int | None = None,
                 features=None):
        super().__init__(input_shape, (), n_classes, bias=bias, seed=seed, features=features)
        self.config = {"family": "linear", "input_shape": list(self.input_shape), "n_classes": self.n_classes,
                       "bias": bias, "seed": seed}
        self._set_optional_config(self.feature_map, 0.0)

    @property
    def linear(self) -> nn.Linear:
        return self.blocks[0][-1]
