"""The playground's settings: one frozen dataclass, validated with user-facing messages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .._validation import check_widths
from .base import SessionError

__all__ = ["PlaygroundSettings", "SettingsError", "LOSS_CHOICES", "OPTIMIZER_CHOICES", "LIVE_SETTINGS",
           "VIEW_SETTINGS", "MAX_SAMPLES", "CUSTOM", "MULTICLASS_DATASETS", "PLAIN_FEATURES"]

# (label, registry key): the choices the app offers first (any other registered ones follow)
LOSS_CHOICES = (("cross-entropy", "cross_entropy"), ("hinge", "hinge"), ("large-margin", "large_margin"),
                ("ODN", "odn"), ("rescaled square", "rescaled_square"))
OPTIMIZER_CHOICES = (("SGD", "sgd"), ("Adam", "adam"), ("Nero", "nero"))
# settings that apply to a running training without restarting it
LIVE_SETTINGS = frozenset({"lr", "batch_size", "steps_per_tick", "margin_every", "l1", "l2", "dropout"})
# settings of what is drawn only: changing them neither restarts nor touches the training
VIEW_SETTINGS = frozenset({"discretize", "show_test", "representation"})
PLAIN_FEATURES = "x, y"  # the raw point: no FeatureMap (MIP and certify=True need plain Linear layers)
MAX_SAMPLES = 2000
CUSTOM = "custom"  # the dataset name of the user's own data (Playground(data=(X, y)))
MULTICLASS_DATASETS = ("blobs", "spirals")  # the toy datasets whose number of classes is a setting


class SettingsError(SessionError):
    """An invalid playground setting; its message is shown to the user as is."""


@dataclass(frozen=True)
class PlaygroundSettings:
    """Everything that defines a playground run. Percentages are in [0, 100]."""

    dataset: str = "moons"
    n_samples: int = 300
    noise: float = 0.15
    test_percent: int = 30
    n_classes: int = 3
    label_corruption: float = 0.0
    input_corruption: float = 0.0
    hidden: str = "16, 16"
    activation: str = "relu"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 0.01
    batch_size: int = 32
    seed: int = 0
    steps_per_tick: int = 10
    margin_every: int = 5
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0
    features: str = PLAIN_FEATURES
    data_seed: int | None = None  # None: the data follow ``seed``; "regenerate data" sets its own
    discretize: bool = False
    show_test: bool = True
    representation: int = 0  # 0 the input plane, k the k-th hidden layer

    def __post_init__(self):
        if not isinstance(self.hidden, str):  # (16, 16) -> "16, 16": the text a user would type
            try:
                object.__setattr__(self, "hidden", ", ".join(str(int(w)) for w in self.hidden))
            except (TypeError, ValueError):
                raise SettingsError(f"Hidden layers: write the widths as '16, 16' (got "
                                    f"{self.hidden!r}).") from None
        if not isinstance(self.features, str):  # ("x", "xy") -> "x, xy", as the checkboxes write it
            try:
                object.__setattr__(self, "features", ", ".join(str(f) for f in self.features))
            except TypeError:
                raise SettingsError(f"Input features: a list of names such as ('x', 'y', 'xy') (got "
                                    f"{self.features!r}).") from None

    def replace(self, **changes) -> PlaygroundSettings:
        return dataclasses.replace(self, **changes)

    def hidden_widths(self) -> tuple[int, ...]:
        """The hidden layer widths (empty for a linear model)."""
        try:
            widths = check_widths(self.hidden, "hidden")
        except (TypeError, ValueError):
            if any(p.strip() in ("0", "-0") for p in self.hidden.replace(";", ",").split(",")):
                raise SettingsError(f"Hidden layers: every layer needs at least 1 unit; a 0-width layer "
                                    f"cannot pass anything on (got {self.hidden!r}).") from None
            raise SettingsError(f"Hidden layers: write the widths separated by commas, e.g. '16, 16' "
                                f"(got {self.hidden!r}).") from None
        if len(widths) > 6 or any(w > 512 for w in widths):
            raise SettingsError(f"Hidden layers: at most 6 layers of at most 512 units keep the playground "
                                f"live (got {self.hidden!r}).")
        return widths

    def feature_names(self) -> tuple[str, ...]:
        """The canonical input feature names (see :mod:`marginlab.models.features`)."""
        from ..models.features import FEATURES, check_features

        try:
            return check_features(self.features, "features")
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"Input features: pick at least one of {', '.join(FEATURES)} "
                                f"({exc}).") from None

    @property
    def plain_input(self) -> bool:
        """Whether the network sees the raw point (features x, y in that order)."""
        return self.feature_names() == ("x", "y")

    @property
    def effective_data_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def _number(self, name, label, lo, hi, integer=False):
        v = getattr(self, name)
        ok_type = isinstance(v, (int, np.integer)) if integer else isinstance(v, (int, float, np.number))
        if isinstance(v, bool) or not ok_type or not np.isfinite(v):
            kind = "a whole number" if integer else "a number"
            raise SettingsError(f"{label} must be {kind} between {lo:g} and {hi:g} (got {v!r}).")
        if not lo <= v <= hi:
            raise SettingsError(f"{label} must be between {lo:g} and {hi:g} (got {v:g}).")

    def validate(self) -> PlaygroundSettings:
        """Raise :class:`SettingsError` with a user-facing message for the first invalid setting."""
        from ..data import TOY_DATASETS

        if self.dataset not in (*TOY_DATASETS, CUSTOM):
            raise SettingsError(f"Dataset must be one of {', '.join(TOY_DATASETS)} (got {self.dataset!r}).")
        self._number("n_samples", "Number of samples", 10, MAX_SAMPLES, integer=True)
        self._number("noise", "Noise", 0, 2)
        self._number("test_percent", "Test share (%)", 0, 90, integer=True)
        self._number("n_classes", "Number of classes", 2, 6, integer=True)
        self._number("label_corruption", "Label corruption (%)", 0, 100)
        self._number("input_corruption", "Input corruption (%)", 0, 100)
        self.hidden_widths()
        self._check_names()
        lr = self.lr
        number = isinstance(lr, (int, float, np.number)) and not isinstance(lr, bool)
        if not number or not np.isfinite(lr) or lr <= 0:
            raise SettingsError(f"Learning rate must be a number > 0 (got {lr!r}).")
        self._number("lr", "Learning rate", 0, 10)
        self._number("batch_size", "Batch size", 1, 4096, integer=True)
        self._number("seed", "Seed", 0, 2**31 - 1, integer=True)
        self._number("steps_per_tick", "Steps per tick", 1, 500, integer=True)
        self._number("margin_every", "Margin refresh (ticks)", 1, 1000, integer=True)
        self._validate_workshop()
        if self.dataset != CUSTOM:
            n_train = self.n_samples - round(self.n_samples * self.test_percent / 100)
            if n_train < 2:
                raise SettingsError(f"Only {n_train} training sample(s) left: lower the test share or add "
                                    "samples.")
        return self

    def _validate_workshop(self):
        """The TensorFlow-Playground controls: regularization, dropout, features, data seed, view toggles."""
        self._number("l1", "L1 rate", 0, 1)
        self._number("l2", "L2 rate", 0, 1)
        self._number("dropout", "Dropout", 0, 0.9)
        if self.dropout > 0 and not self.hidden_widths():
            raise SettingsError(f"Dropout acts on hidden units and this model has none (hidden layers "
                                f"empty); set dropout to 0 (got {self.dropout:g}).")
        self.feature_names()
        if self.data_seed is not None:
            self._number("data_seed", "Data seed", 0, 2**31 - 1, integer=True)
        for name, label in (("discretize", "Discretize output"), ("show_test", "Show test data")):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise SettingsError(f"{label} must be True or False (got {getattr(self, name)!r}).")
        depth = len(self.hidden_widths())
        self._number("representation", "Representation (layer)", 0, depth, integer=True)

    def _check_names(self):
        from .. import train
        from ..models.base import ACTIVATIONS

        if self.activation not in ACTIVATIONS:
            raise SettingsError(f"Activation must be one of {', '.join(ACTIVATIONS)} (got "
                                f"{self.activation!r}).")
        for key, registry, what in ((self.loss, train.LOSSES, "Loss"), (self.optimizer, train.OPTIMIZERS,
                                                                         "Optimizer")):
            if key not in registry:
                raise SettingsError(f"{what} {key!r} is not available in this marginlab installation "
                                    f"(available: {', '.join(registry)}). Choose another one.")

    @property
    def classes(self) -> int:
        """Number of classes of a toy dataset (the user's own data has its own)."""
        return self.n_classes if self.dataset in MULTICLASS_DATASETS else 2

    def applies(self, name: str) -> bool:
        """Whether setting ``name`` has an effect with the current choices (views hide the others)."""
        if self.dataset == CUSTOM:
            return name not in ("n_samples", "noise", "n_classes")
        if name == "n_classes":
            return self.dataset in MULTICLASS_DATASETS
        return True
