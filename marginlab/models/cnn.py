"""The CNN family of seed 000 §4 (after Nakkiran et al.'s standard CNN): four ReLU conv layers with
k, 2k, 4k, 8k channels, max pooling after the first three, global average pooling after the fourth, a
fully connected layer of 400 units, then the classifier. Works for 1x28x28 and 3x32x32 inputs."""

from __future__ import annotations

from torch import nn

from .._validation import check_int
from .base import MarginNet, make_activation, seeded

__all__ = ["CNN"]


class CNN(MarginNet):
    """``CNN(k)``: the capacity knob is ``k`` (seed 000 uses 10..64)."""

    family = "cnn"

    def __init__(self, k: int = 16, *, input_shape=(1, 28, 28), n_classes: int = 10, fc: int = 400,
                 activation: str = "relu", seed: int | None = None):
        k = check_int(k, "k", min_value=1)
        fc = check_int(fc, "fc", min_value=1)
        n_classes = check_int(n_classes, "n_classes", min_value=2)
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3 or shape[1] < 8 or shape[2] < 8:
            raise ValueError("input_shape must be (channels, height, width) with height, width >= 8, "
                             f"got {shape}")
        c = shape[0]
        chans = [c, k, 2 * k, 4 * k, 8 * k]
        with seeded(seed):
            blocks = []
            for i in range(3):
                blocks.append(nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
                                            make_activation(activation), nn.MaxPool2d(2)))
            blocks.append(nn.Sequential(nn.Conv2d(chans[3], chans[4], 3, padding=1),
                                        make_activation(activation), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
            blocks.append(nn.Sequential(nn.Linear(8 * k, fc), make_activation(activation)))
            blocks.append(nn.Sequential(nn.Linear(fc, n_classes)))
        names = ["input", "conv1", "conv2", "conv3", "conv4", "fc"]
        config = {"family": "cnn", "k": k, "input_shape": list(shape), "n_classes": n_classes, "fc": fc,
                  "activation": activation, "seed": seed}
        super().__init__(blocks, input_shape=shape, n_classes=n_classes, layer_names=names, config=config)
        self.k = k
