"""The margin explorer's settings: one frozen dataclass, validated with messages naming the setting."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .._validation import check_choice, check_float, check_int, check_widths
from .base import SessionError

__all__ = ["ExplorerSettings", "COLOR_BY", "DATA_CHOICES", "CORRUPTIONS", "HISTOGRAM_COLORS", "EMBED_PARAMS",
           "explorer_methods"]

COLOR_BY = ("margin", "max margin", "status", "class", "clean/corrupted", "correct/incorrect", "group")
DATA_CHOICES = ("auto", "full", "custom")  # custom: the data passed as MarginExplorer(data=(X, y))
CORRUPTIONS = ("none", "label", "gaussian")
HISTOGRAM_COLORS = ("group", "certified")  # bars split by seed-000 group, or by certification state
# the embedding parameters each method reads, and their allowed ranges (inclusive)
EMBED_PARAMS = {"tsne": ("perplexity",), "umap": ("n_neighbors", "min_dist"), "pca": ()}
PARAM_RANGES = {"perplexity": (2.0, 100.0), "n_neighbors": (2, 200), "min_dist": (0.0, 1.0)}


def explorer_methods() -> list[str]:
    """The margin methods the explorer offers: exact or verified-upper-bound methods fast enough for an app
    (the training set is there as the reference some methods need)."""
    from ..margins import available_methods

    return available_methods(p=2, kinds=("exact", "upper"), interactive=True, have=("reference",))


def _pair(value, name):
    if isinstance(value, str) or len(tuple(value)) != 2:
        raise SessionError(f"{name} must name two views (left, right), got {value!r}")
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class ExplorerSettings:
    """Everything that defines an explorer run (the data, the model, the margins and the two views)."""

    data_source: str = "auto"
    n_train: int | None = None
    val_fraction: float = 0.1
    hidden: tuple = (256,)
    epochs: int = 10
    lr: float = 0.01
    batch_size: int = 64
    corruption: str = "none"
    fraction: float = 0.2
    n_samples: int = 1000
    method: str = "batched"
    embeddings: tuple = ("umap", "pca")
    layers: tuple = ("input", "input")
    colors: tuple = ("margin", "class")
    seed: int = 0
    correct_only: bool = True
    model_path: str | None = None
    perplexity: float = 30.0  # t-SNE
    n_neighbors: int = 15  # UMAP
    min_dist: float = 0.1  # UMAP (at most its spread, 1)
    histogram_color: str = "group"

    def __post_init__(self):
        try:  # the same values however they arrive: "256, 128" or [256, 128]; JSON lists as tuples
            object.__setattr__(self, "hidden", check_widths(self.hidden, "hidden", min_layers=1))
        except (TypeError, ValueError) as exc:
            raise SessionError(str(exc)) from None
        for name in ("embeddings", "layers", "colors"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        if self.model_path is not None:
            object.__setattr__(self, "model_path", str(self.model_path).strip() or None)

    def replace(self, **changes) -> ExplorerSettings:
        return dataclasses.replace(self, **changes)

    def validate(self) -> ExplorerSettings:
        """Raise :class:`SessionError` naming the first invalid setting and its allowed values."""
        from ..embed import EMBED_METHODS

        try:
            check_choice(self.data_source, "data_source", DATA_CHOICES)
            if self.n_train is not None:
                check_int(self.n_train, "n_train", min_value=10)
            check_float(self.val_fraction, "val_fraction", min_value=0.0, max_value=1.0, max_inclusive=False)
            check_int(self.epochs, "epochs", min_value=0, max_value=1000)
            check_float(self.lr, "lr", min_value=0.0, min_inclusive=False, max_value=10.0)
            check_int(self.batch_size, "batch_size", min_value=1)
            check_choice(self.corruption, "corruption", CORRUPTIONS)
            check_float(self.fraction, "fraction", min_value=0.0, max_value=1.0)
            check_int(self.n_samples, "n_samples", min_value=1, max_value=100_000)
            check_choice(self.method, "method", explorer_methods())
            for side, (m, c) in enumerate(zip(self.embeddings, self.colors)):
                check_choice(m, f"embeddings[{side}]", EMBED_METHODS)
                check_choice(c, f"colors[{side}]", COLOR_BY)
            check_int(self.seed, "seed", min_value=0, max_value=2**31 - 1)
            lo, hi = PARAM_RANGES["perplexity"]
            check_float(self.perplexity, "perplexity", min_value=lo, max_value=hi)
            lo, hi = PARAM_RANGES["n_neighbors"]
            check_int(self.n_neighbors, "n_neighbors", min_value=lo, max_value=hi)
            lo, hi = PARAM_RANGES["min_dist"]
            check_float(self.min_dist, "min_dist", min_value=lo, max_value=hi)
            check_choice(self.histogram_color, "histogram_color", HISTOGRAM_COLORS)
        except (TypeError, ValueError) as exc:
            raise SessionError(str(exc)) from None
        if not isinstance(self.correct_only, bool):
            raise SessionError(f"correct_only must be True or False, got {self.correct_only!r}")
        return self

    def embed_params(self, method: str) -> dict:
        """The parameters embedding ``method`` reads (t-SNE: perplexity; UMAP: n_neighbors, min_dist)."""
        return {name: getattr(self, name) for name in EMBED_PARAMS.get(method, ())}

    @property
    def applied_fraction(self) -> float:
        return 0.0 if self.corruption == "none" else float(self.fraction)

    def applies(self, name: str, *, custom_model: bool = False) -> bool:
        """Whether setting ``name`` has an effect with the current choices (views hide or disable the
        rest)."""
        trains = not custom_model and self.model_path is None
        if name in ("hidden", "epochs", "lr", "batch_size", "val_fraction"):
            return trains
        if name == "corruption":  # corrupting the labels of a model you trained elsewhere means nothing
            return not custom_model
        if name == "fraction":
            return self.corruption != "none" and not custom_model
        if name in ("n_train",):
            return self.data_source != "custom"
        if name == "model_path":
            return not custom_model
        return True
