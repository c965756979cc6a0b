"""``MarginNet``: a network as a chain of blocks whose intermediate representations are addressable.

Representation 0 is the input; representation k (1 <= k < n_blocks) is the output of block k, i.e. the
k-th hidden layer. ``tail(k)`` is the sub-network from representation k to the logits, so a margin at a
hidden layer is a margin of ``tail(k)`` at ``activations(x)[k]``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["MarginNet", "ACTIVATIONS", "make_activation", "seeded", "eval_mode"]

ACTIVATIONS = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus, "linear": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    from .._validation import check_choice

    return ACTIVATIONS[check_choice(name, "activation", ACTIVATIONS)]()


@contextlib.contextmanager
def seeded(seed):
    """Run the block with torch's CPU RNG seeded (restored afterwards); ``None`` leaves the RNG alone."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run the block with ``model`` in eval mode (dropout off, batch norm on running statistics: the deployed
    function, the one margins are measured on); its previous mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class MarginNet(nn.Module):
    """Base class: ``blocks`` applied in order; see the module docstring for layer numbering."""

    family = "base"

    def __init__(self, blocks, *, input_shape, n_classes, layer_names, config):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.input_shape = tuple(input_shape)
        self.n_classes = int(n_classes)
        self.layer_names = tuple(layer_names)
        self.config = dict(config)
        if len(self.layer_names) != len(self.blocks):
            raise ValueError("one layer name per representation (input and each hidden layer) is needed")

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    @property
    def n_layers(self) -> int:
        """Number of addressable representations (input + hidden layers)."""
        return len(self.blocks)

    def resolve_layer(self, layer) -> int:
        """Layer index from an index (negative counts from the last hidden layer) or a name."""
        if isinstance(layer, str):
            if layer not in self.layer_names:
                raise ValueError(f"layer must be one of {list(self.layer_names)} or an index in "
                                 f"[0, {self.n_layers - 1}], got {layer!r}")
            return self.layer_names.index(layer)
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"layer must be an int or a name, got {layer!r}")
        k = layer + self.n_layers if layer < 0 else layer
        if not 0 <= k < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers - 1}] "
                             f"(or a name in {list(self.layer_names)}), got {layer}")
        return k

    def forward_with_activations(self, x, layers=None):
        """``(logits, reps)`` where ``reps[k]`` is representation k (``layers`` restricts which are kept;
        others are ``None``). The graph is kept, so gradients w.r.t. hidden activations are available."""
        keep = set(range(self.n_layers)) if layers is None else {self.resolve_layer(k) for k in layers}
        reps = [None] * self.n_layers
        for k, block in enumerate(self.blocks):
            if k in keep:
                reps[k] = x
            x = block(x)
        return x, reps

    def activations(self, x, layer):
        """Representation ``layer`` of inputs ``x`` (only the blocks before it are run)."""
        k = self.resolve_layer(layer)
        for block in self.blocks[:k]:
            x = block(x)
        return x

    def tail(self, layer) -> nn.Module:
        """The sub-network mapping representation ``layer`` to the logits (shares parameters)."""
        k = self.resolve_layer(layer)
        return nn.Sequential(*self.blocks[k:])

    def representation_shape(self, layer) -> tuple[int, ...]:
        k = self.resolve_layer(layer)
        p = next(self.parameters())
        with torch.no_grad():
            x = torch.zeros((1,) + self.input_shape, dtype=p.dtype, device=p.device)
            return tuple(self.activations(x, k).shape[1:])

    def weight_layers(self) -> list[nn.Module]:
        """The Linear/Conv modules in forward order (used by norm control and normalized margins)."""
        return [m for m in self.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, n_classes={self.n_classes}, layers={list(self.layer_names)}"
