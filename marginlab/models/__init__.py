"""Models: MLP (optionally on fixed input features, with dropout), the seed-000 CNN family and a linear model,
all exposing layer-by-layer activations."""

from .base import ACTIVATIONS, MarginNet, eval_mode
from .cnn import CNN
from .features import FEATURES, FeatureMap
from .io import build_model, load_model, save_model
from .mlp import MLP, LinearModel

__all__ = ["MarginNet", "MLP", "CNN", "LinearModel", "ACTIVATIONS", "build_model", "save_model", "load_model",
           "FeatureMap", "FEATURES", "eval_mode"]
