"""Models: MLP, the seed-000 CNN family and a linear model, all exposing layer-by-layer activations."""

from .base import ACTIVATIONS, MarginNet
from .cnn import CNN
from .io import build_model, load_model, save_model
from .mlp import MLP, LinearModel

__all__ = ["MarginNet", "MLP", "CNN", "LinearModel", "ACTIVATIONS", "build_model", "save_model", "load_model"]
