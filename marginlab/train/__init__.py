"""Training: ``fit`` / ``Trainer``, losses (by name or object) and optimizers (by name), constraints, L1/L2
weight penalties, Recipe 1 (normalized-margin control)."""

from .fit import History, Trainer, evaluate, fit
from .losses import LOSSES, Batch, CrossEntropy, Loss, get_loss, register_loss
from .margin_losses import (
    AverageMarginRegularizer,
    LargeMarginLoss,
    MultiClassHinge,
    ODNLoss,
    RescaledSquareLoss,
    SoftHinge,
)
from .optim import (
    OPTIMIZERS,
    FrobeniusProjection,
    Nero,
    SpectralProjection,
    make_optimizer,
    register_optimizer,
)
from .recipe import Recipe1Result, recipe1
from .regularization import penalized_weights, weight_penalty

__all__ = ["fit", "Trainer", "History", "evaluate", "Loss", "Batch", "CrossEntropy", "LOSSES", "get_loss",
           "register_loss", "OPTIMIZERS", "make_optimizer", "register_optimizer", "MultiClassHinge",
           "SoftHinge", "LargeMarginLoss", "ODNLoss", "RescaledSquareLoss", "AverageMarginRegularizer",
           "Nero", "FrobeniusProjection", "SpectralProjection", "recipe1", "Recipe1Result", "weight_penalty",
           "penalized_weights"]
