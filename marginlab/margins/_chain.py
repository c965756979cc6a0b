"""A network read as a chain of dense affine maps and elementwise activations, in float64.

This is what the linear bounds (:mod:`.linear_bounds`) and the exact MIP (:mod:`.mip`) work on:
``f(z) = W_L s_L(... s_1(W_0 z + b_0) ...) + b_L`` for the flattened input z. Only plain chains are read:
``nn.Sequential`` and :class:`~marginlab.models.MarginNet` (whose ``forward`` applies the blocks in order)
holding Linear, Flatten/Unflatten, Identity, Dropout (identity in eval mode), Conv1d/2d, AvgPool1d/2d,
AdaptiveAvgPool1d/2d, eval-mode BatchNorm with running statistics, zero/constant padding (all affine,
turned into dense matrices) and the activations of :mod:`.relax`. Anything else (max pooling, a custom
``forward``, attention ...) is refused with :class:`UnsupportedLayer` naming the layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .relax import Act, act_of

__all__ = ["Chain", "UnsupportedLayer", "to_chain", "supports", "check_supported", "leaves", "check_chain",
           "Act"]

# dense affine maps above this many entries are refused (a conv layer on large images)
MAX_DENSE = 40_000_000

_RESHAPE = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_PROBED = (nn.Conv1d, nn.Conv2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
           nn.BatchNorm1d, nn.BatchNorm2d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)


class UnsupportedLayer(ValueError):
    """A layer the bounds cannot read; the message names it."""


@dataclass
class Chain:
    """``weights[k]`` (out, in) and ``biases[k]`` float64 on ``device``; ``acts[k]`` is applied between
    affine map k and k + 1 (``len(acts) == len(weights) - 1``); ``shape`` is one input's shape."""

    weights: list
    biases: list
    acts: list
    shape: tuple

    @property
    def dim(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_classes(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def forward(self, z: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Logits of flattened inputs z (n, D) in float64; with ``upto=k`` the pre-activations of
        activation k (k = 0 is the first activation)."""
        h = z.to(self.device, torch.float64)
        for k, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ W.T + b
            if k == upto:
                return h
            if k < len(self.acts):
                h = self.acts[k].forward(h)
        return h


def leaves(net: nn.Module):
    """The modules a plain chain applies in order (containers opened), or raise :class:`UnsupportedLayer`."""
    from ..models.base import MarginNet
    from ._core import _Frozen

    if isinstance(net, _Frozen):
        yield from leaves(net.net)
    elif isinstance(net, MarginNet):
        if type(net).forward is not MarginNet.forward:
            raise UnsupportedLayer(f"{type(net).__name__} has its own forward(); only plain chains of layers "
                                   "can be bounded")
        for b in net.blocks:
            yield from leaves(b)
    elif isinstance(net, nn.Sequential):
        if type(net).forward is not nn.Sequential.forward:
            raise UnsupportedLayer(f"{type(net).__name__} has its own forward()")
        for m in net:
            yield from leaves(m)
    else:
        yield net


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, _RESHAPE):
        return "reshape"
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.running_mean is None:
        raise UnsupportedLayer(f"{type(m).__name__} without running statistics is not affine in eval mode")
    if isinstance(m, _PROBED):
        return "probe"
    if act_of(m) is not None:
        return "act"
    raise UnsupportedLayer(f"layer {type(m).__name__} is not supported by the linear bounds / MIP "
                           "(supported: Linear, Conv, AvgPool, BatchNorm (eval), Flatten, Dropout and the "
                           "activations ReLU, LeakyReLU, ELU, Tanh, Sigmoid, GELU, Softplus)")


def check_supported(net: nn.Module) -> None:
    """Raise :class:`UnsupportedLayer` naming the first layer :func:`to_chain` cannot read."""
    for m in leaves(net):
        _kind(m)


def supports(net: nn.Module) -> bool:
    """Whether :func:`to_chain` can read ``net`` (type check only; sizes are checked when reading)."""
    try:
        check_supported(net)
    except UnsupportedLayer:
        return False
    return True


def _probe(m: nn.Module, shape: tuple, device) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """Dense (W, b) of an affine module at input ``shape`` (float64), by evaluating it on the basis."""
    m64 = copy.deepcopy(m).to(device, torch.float64).eval()
    D = int(np.prod(shape))
    with torch.no_grad():
        b_full = m64(torch.zeros((1,) + shape, dtype=torch.float64, device=device))
        out_shape = tuple(b_full.shape[1:])
        b = b_full.reshape(-1)
        if D * b.numel() > MAX_DENSE:
            raise UnsupportedLayer(f"{type(m).__name__} at input shape {shape} is too large to bound "
                                   f"({D} x {b.numel()} dense matrix)")
        cols = []
        step = max(1, MAX_DENSE // 8 // max(1, b.numel()))
        for s in range(0, D, step):
            e = torch.zeros((min(step, D - s), D), dtype=torch.float64, device=device)
            e[torch.arange(e.shape[0]), torch.arange(s, s + e.shape[0])] = 1.0
            cols.append((m64(e.reshape((-1,) + shape)).reshape(e.shape[0], -1) - b).T)
    return torch.cat(cols, 1), b, out_shape


def to_chain(net: nn.Module, shape, device=None) -> Chain:
    """Read ``net`` (input ``shape``) as a :class:`Chain` on ``device`` (default: the net's device)."""
    shape = tuple(int(s) for s in shape)
    if device is None:
        ps = list(net.parameters())
        device = ps[0].device if ps else torch.device("cpu")
    if device.type == "mps":  # no float64 there
        device = torch.device("cpu")
    D = int(np.prod(shape))
    cur = shape
    Ws, bs, acts = [], [], []
    W = torch.eye(D, dtype=torch.float64, device=device)  # the affine map accumulated since the last act
    b = torch.zeros(D, dtype=torch.float64, device=device)
    for m in leaves(net):
        kind = _kind(m)
        if kind == "reshape":
            with torch.no_grad():
                cur = tuple(m.eval()(torch.zeros((1,) + cur, device=device,
                                                 dtype=_dtype(m))).shape[1:])
            continue
        if kind == "act":
            Ws.append(W)
            bs.append(b)
            acts.append(act_of(m))
            n = W.shape[0]
            W = torch.eye(n, dtype=torch.float64, device=device)
            b = torch.zeros(n, dtype=torch.float64, device=device)
            continue
        if kind == "linear" and len(cur) == 1:
            Wm = m.weight.detach().to(device, torch.float64)
            bm = (m.bias.detach().to(device, torch.float64) if m.bias is not None
                  else torch.zeros(m.out_features, dtype=torch.float64, device=device))
            cur = (m.out_features,)
        else:
            Wm, bm, cur = _probe(m, cur, device)
        W, b = Wm @ W, Wm @ b + bm
    Ws.append(W)
    bs.append(b)
    return Chain(weights=Ws, biases=bs, acts=acts, shape=shape)


def _dtype(m):
    p = next(iter(m.parameters()), None)
    return p.dtype if p is not None else torch.float32


def check_chain(chain: Chain, net_f64, x: torch.Tensor) -> None:
    """Raise :class:`UnsupportedLayer` unless the chain reproduces the network at the rows x (a guard
    against layers whose forward differs from what their type suggests)."""
    with torch.no_grad():
        a = chain.forward(x)
        b = net_f64(x)
    scale = 1.0 + float(b.abs().max()) if b.numel() else 1.0
    if a.shape != b.shape or not bool(((a - b).abs() <= 1e-7 * scale).all()):
        raise UnsupportedLayer("the network's output differs from the chain of its layers (a custom forward, "
                               "a module reused twice or a non-affine layer): it cannot be bounded")

