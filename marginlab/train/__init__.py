"""Training: ``fit`` / ``Trainer``, losses (by name or object) and optimizers (by name), constraints."""

from .fit import History, Trainer, evaluate, fit
from .losses import LOSSES, Batch, CrossEntropy, Loss, get_loss, register_loss
from .optim import OPTIMIZERS, make_optimizer, register_optimizer

__all__ = ["fit", "Trainer", "History", "evaluate", "Loss", "Batch", "CrossEntropy", "LOSSES", "get_loss",
           "register_loss", "OPTIMIZERS", "make_optimizer", "register_optimizer"]
