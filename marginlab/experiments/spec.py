"""Declarative experiment specs: a JSON-able dict validated into an :class:`ExperimentSpec`.

A spec names the data, the sweep axes (corruptions x training-set sizes x capacities x training variants x
seeds) and what to measure on every trained model (margins, maximum margins, lower bounds, normalized
margins, robustness curves, margins over epochs). :data:`SPEC` declares it once, as a table: every key with
its default and its constraint (:mod:`marginlab._validation`), then a few named cross-field rules. Everything
is checked before any training: unknown keys, empty or duplicated sweeps, values out of range, settings that
cannot work together, and option dicts (``margins.options``, ``train.loss_options``,
``train.optimizer_options``) against the method, loss or optimizer that will receive them. Errors are
``ValueError`` / ``TypeError`` naming the field by its path (``spec.margins.n_samples``,
``spec.margins.options.maxiter`` ...).

``data.dataset``: ``mnist`` (cache, else the bundled subset), ``cifar10`` (not bundled: the runner stops with
a ``FileNotFoundError`` before any training when it is absent, see :mod:`marginlab.data.cifar`) or a toy 2-D
set (``moons, circles, spirals, xor, blobs``). The validation pool is the dataset's test split. Every model
family works on the image datasets (MLPs flatten the input); ``cnn`` needs one of them.

Example (seed 000's MNIST capacity sweep, CPU scale)::

    {"name": "mnist-sweep",
     "data": {"dataset": "mnist", "n_train": 2000, "n_val": 1000},
     "corruptions": [{"kind": "none"}, {"kind": "label", "fraction": 0.2}],
     "model": {"family": "mlp", "depth": 1},
     "capacities": [32, 128, 512],
     "seeds": [0, 1],
     "train": {"epochs": 50, "optimizer": "sgd", "lr": 0.01, "batch_size": 64, "target_train_acc": 1.0},
     "margins": {"method": "batched", "n_samples": 300, "max_margin": true}}
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import numbers
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .._validation import (
    Bool,
    Choice,
    Int,
    ListOf,
    Mapping,
    Nullable,
    Real,
    Table,
    Text,
    check_options,
)
from ..attacks import ATTACK_LOSSES, ATTACKS

__all__ = ["ExperimentSpec", "Unit", "load_spec", "SPEC", "SPEC_KEYS", "quick_overrides", "merge"]

CORRUPTION_KINDS = ("none", "label", "gaussian", "random")
FAMILIES = ("mlp", "cnn", "linear")
IMAGE_DATASETS = ("mnist", "cifar10")
DATASETS = (*IMAGE_DATASETS, "moons", "circles", "spirals", "xor", "blobs")
SPLITS = ("train", "val")


# -- registries of other rooms, read when a spec is checked (they import torch; the table does not) --------
def _activations():
    from ..models.base import ACTIVATIONS

    return ACTIVATIONS


def _losses():
    from ..train import LOSSES

    return LOSSES


def _optimizers():
    from ..train import OPTIMIZERS

    return OPTIMIZERS


def _margin_methods():
    from ..margins import available_methods

    return available_methods(p=2)  # the runner measures l2 margins and hands methods no reference data


# -- cross-field rules: rule(obj, where) raises naming the fields, or fills a value others decide ---------
def classes_or_binary(d, where):
    if d["classes"] is not None and d["binary"] is not None:
        raise ValueError(f"{where}: give either classes or binary, not both")


def fraction_matches_kind(c, where):
    if c["kind"] == "none" and c["fraction"] != 0.0:
        raise ValueError(f"{where}.fraction must be 0 for kind 'none', got {c['fraction']:g}")
    if c["kind"] != "none" and c["fraction"] == 0.0:
        raise ValueError(f"{where}.fraction must be > 0 for kind {c['kind']!r} (use kind 'none' for the "
                         "clean set)")


def cnn_needs_images(s, where):
    if s["model"]["family"] == "cnn" and s["data"]["dataset"] not in IMAGE_DATASETS:
        raise ValueError(f"{where}.model.family 'cnn' needs an image dataset ({', '.join(IMAGE_DATASETS)}); "
                         f"{where}.data.dataset is {s['data']['dataset']!r} (2-D points: use 'mlp' or "
                         "'linear')")


def capacities_match_family(s, where):
    """A linear model has no capacity knob (one unit per sweep point, capacity None); the others need one."""
    family, caps = s["model"]["family"], s["capacities"]
    if family == "linear":
        if caps not in (None, [None]):
            raise ValueError(f"{where}.capacities must be omitted (or [null]) for model.family 'linear': a "
                             "linear model has no capacity knob")
        s["capacities"] = [None]
    elif caps is None:
        raise ValueError(f"{where}.capacities must be a list of layer widths (model.family {family!r}), "
                         "got None")
    else:
        ListOf(Int(1))(caps, f"{where}.capacities")


def train_sizes_default(s, where):
    if s["train_sizes"] is None:
        s["train_sizes"] = [s["data"]["n_train"]]


def default_variant(s, where):
    """One variant named after the loss when none is given; variant names are unique (they name units)."""
    if s["variants"] is None:
        s["variants"] = [SPEC_VARIANT({"name": _loss_tag(s["train"]["loss"])}, f"{where}.variants[0]")]
    names = [v["name"] for v in s["variants"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}.variants[].name has duplicate entries {dup}: every unit must be distinct")


def track_epochs_within_training(s, where):
    last = max(_merged_train(s["train"], v)["epochs"] for v in s["variants"])
    for i, e in enumerate(s["margins"]["track_epochs"]):
        if e > last:
            raise ValueError(f"{where}.margins.track_epochs[{i}] must be an integer in [0, {last}] (the last "
                             f"epoch of training), got {e}")


def svm_reference_needs_linear(s, where):
    if s["margins"]["svm_reference"] and s["model"]["family"] != "linear":
        raise ValueError(f"{where}.margins.svm_reference needs model.family 'linear' (seed 002's LR vs SVM)")


def normalized_needs_bias_free(s, where):
    """Seed 001's normalized margins are scale invariant only without biases (margins.normalized)."""
    if s["margins"]["normalized"] and s["model"]["bias"]:
        raise ValueError(f"{where}.margins.normalized needs {where}.model.bias false: normalized margins "
                         "(seed 001 Defs. 3.1/3.2) are scale invariant only for bias-free networks")


def val_split_needs_val_data(s, where):
    rob = s["robustness"]
    if s["data"]["n_val"] == 0 and ("val" in s["margins"]["splits"] or (rob and rob["split"] == "val")):
        raise ValueError(f"{where}.data.n_val is 0 but {where}.margins.splits or {where}.robustness.split "
                         "asks for 'val'")


def quick_keeps_identity(s, where):
    if "quick" in s["quick"] or "name" in s["quick"]:
        raise ValueError(f"{where}.quick may not override 'quick' or 'name'")


def options_fit_their_callee(s, where):
    """Every option dict names only arguments its callee takes, and the callee accepts their values: a typo
    such as ``margins.options.maxiter`` stops the spec, not the first unit after training."""
    from ..margins import METHODS, get_method
    from ..train import LOSSES, OPTIMIZERS, get_loss, make_optimizer

    m = s["margins"]
    _try(partial(get_method, m["method"]), m["options"], f"{where}.margins.options",
         _method_class(METHODS[m["method"]]), f"margin method {m['method']!r}")
    for i, v in enumerate(s["variants"]):
        t = _merged_train(s["train"], v)
        at = {k: f"{where}.variants[{i}].{k}" if v[k] is not None else f"{where}.train.{k}"
              for k in ("loss_options", "optimizer_options")}
        loss, opt = t["loss"], t["optimizer"]
        _try(partial(get_loss, loss), t["loss_options"], at["loss_options"], LOSSES[loss], f"loss {loss!r}")
        _try(partial(make_optimizer, opt, [_dummy_parameter()], t["lr"]), t["optimizer_options"],
             at["optimizer_options"], OPTIMIZERS[opt], f"optimizer {opt!r}", skip=("params", "lr"))


def _try(build, options, path, callee, owner, skip=()):
    """Names against the signature first (the clearest message), then the values by building the object."""
    check_options(options, path, callee, owner=owner, skip=skip)
    try:
        build(**options)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{path} (options of {owner}): {exc}") from None


def _method_class(entry):
    import importlib

    mod, cls = entry
    return getattr(importlib.import_module(f"marginlab.margins.{mod}"), cls)


def _dummy_parameter():
    import torch

    return torch.nn.Parameter(torch.zeros(1))


# -- the spec as one table: key -> (default, constraint), then the cross-field rules by name --------------
_POSITIVE = Real(0.0, closed="neither")
TRAIN = {
    "epochs": (10, Int(1)),
    "loss": ("cross_entropy", Choice(_losses)),
    "loss_options": ({}, Mapping()),  # checked against the loss: options_fit_their_callee
    "optimizer": ("sgd", Choice(_optimizers)),
    "lr": (0.01, _POSITIVE),
    "optimizer_options": ({}, Mapping()),  # checked against the optimizer, likewise
    "batch_size": (64, Int(1)),
    "lr_decay": (1.0, Real(0.0, 1.0, closed="right")),
    "lr_decay_every": (None, Nullable(Int(1))),
    "target_train_acc": (None, Nullable(Real(0.0, 1.0))),
    "constraints": ([], ListOf(Table({
        "kind": (None, Choice(("frobenius", "spectral"))),
        "max_norm": (None, Nullable(_POSITIVE)),  # None: 1
        "layers": (None, Nullable(ListOf(Int(), empty=True))),  # None: every weight layer
    }, fill=False), empty=True)),  # stored as written
    "device": ("cpu", Text()),
}
# a variant may override every training setting but the device; None keeps the base value
SPEC_VARIANT = Table({"name": (None, Text(nonempty=True, forbid="/\\_ ")),
                      **{k: (None, Nullable(c)) for k, (_, c) in TRAIN.items() if k != "device"}})
SECTIONS = {
    "data": Table({
        "dataset": ("mnist", Choice(DATASETS)),
        "n_train": (None, Nullable(Int(2))),  # None: the whole training pool
        "n_val": (1000, Int(0)),
        "classes": (None, Nullable(ListOf(Int(0), unique=True, min_len=2))),
        "binary": (None, Nullable(ListOf(Int(0), unique=True))),
        "sphere": (False, Bool()),
        "seed": (0, Int(0)),
        "n_samples": (600, Int(4)),  # toy datasets only
        "noise": (0.15, Real(0.0)),  # toy datasets only
    }, rules=[classes_or_binary]),
    "corruption": Table({
        "kind": ("none", Choice(CORRUPTION_KINDS)),
        "fraction": (0.0, Real(0.0, 1.0, cast=float)),
    }, rules=[fraction_matches_kind]),
    "model": Table({
        "family": ("mlp", Choice(FAMILIES)),
        "depth": (1, Int(1)),
        "activation": ("relu", Choice(_activations)),
        "bias": (True, Bool()),
        "fc": (400, Int(1)),  # cnn only: the fully connected layer's width
    }),
    "train": Table(TRAIN),
    "variant": SPEC_VARIANT,
    "margins": Table({
        "method": ("batched", Choice(_margin_methods)),
        "options": ({}, Mapping()),  # the method's options, checked against it: options_fit_their_callee
        "n_samples": (200, Int(1)),
        "splits": (["train"], ListOf(Choice(SPLITS), unique=True)),
        "max_margin": (True, Bool()),
        "lower_bound": (None, Nullable(Choice(("crown", "lipschitz")))),
        "normalized": (False, Bool()),
        "skip_misclassified": (False, Bool()),
        "signed": (False, Bool()),
        "track_epochs": ([], ListOf(Int(0), empty=True)),
        "track_method": (None, Nullable(Choice(_margin_methods))),  # a cheaper method during training
        "svm_reference": (False, Bool()),
    }),
    # loss: what the gradient attacks ascend ("margin": the logit margin, immune to cross-entropy's
    # saturation; "xent": cross-entropy), see marginlab.attacks
    "robustness": Table({
        "attacks": (["fgsm"], ListOf(Choice(ATTACKS), unique=True)),
        "eps": ([0.05, 0.1], ListOf(Real(0.0))),
        "n_samples": (500, Int(1)),
        "steps": (10, Int(1)),
        "split": ("val", Choice(SPLITS)),
        "loss": ("margin", Choice(ATTACK_LOSSES)),
    }),
}
SPEC = Table({
    "name": (None, Text(nonempty=True, forbid="/\\", strip=True)),
    "description": ("", Text()),
    "paper": ("", Text()),
    "data": (None, SECTIONS["data"]),
    "corruptions": (None, Nullable(ListOf(SECTIONS["corruption"], unique=True), default=[{"kind": "none"}])),
    "model": (None, SECTIONS["model"]),
    "capacities": (None, Nullable(ListOf(Nullable(Int(1)), unique=True))),  # capacities_match_family
    "seeds": ([0], ListOf(Int(0), unique=True)),
    "train_sizes": (None, Nullable(ListOf(Int(2), unique=True))),  # None: [data.n_train]
    "variants": (None, Nullable(ListOf(SPEC_VARIANT))),  # None: one, named after the loss
    "train": (None, SECTIONS["train"]),
    "margins": (None, SECTIONS["margins"]),
    "robustness": (None, Nullable(SECTIONS["robustness"])),
    "quick": (None, Nullable(Mapping(), default={})),  # overrides merged into the spec by --quick
}, rules=[cnn_needs_images, capacities_match_family, train_sizes_default, default_variant,
          track_epochs_within_training, svm_reference_needs_linear, normalized_needs_bias_free,
          val_split_needs_val_data,
          quick_keeps_identity, options_fit_their_callee])
# the defaults of every section, as documentation: {"": top level, "data": {...}, ...}
SPEC_KEYS = {"": SPEC.defaults, **{k: t.defaults for k, t in SECTIONS.items()}}
_TRAIN_OVERRIDABLE = [k for k in SPEC_VARIANT.keys if k != "name"]


def merge(base: dict, over: dict) -> dict:
    """Deep merge of JSON-able dicts (``over`` wins; lists are replaced, not merged)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass(frozen=True)
class Unit:
    """One trained model of a sweep: a point of corruption x n_train x capacity x variant x seed."""

    corruption: str
    fraction: float
    n_train: int | None
    capacity: int | None
    variant: str
    seed: int

    @property
    def uid(self) -> str:
        """A readable, filesystem-safe, stable id (``label-0.2_n2000_c128_xent_s0``)."""
        corr = "clean" if self.corruption == "none" else f"{self.corruption}-{self.fraction:g}"
        n = "nall" if self.n_train is None else f"n{self.n_train}"
        c = "lin" if self.capacity is None else f"c{self.capacity}"
        return f"{corr}_{n}_{c}_{self.variant}_s{self.seed}"

    def to_dict(self) -> dict:
        return {
            "unit_id": self.uid,
            "corruption": self.corruption,
            "fraction": self.fraction,
            "n_train": self.n_train,
            "capacity": self.capacity,
            "variant": self.variant,
            "seed": self.seed,
        }


@dataclass
class ExperimentSpec:
    """A validated spec (build with :meth:`from_dict` or :func:`load_spec`); ``to_dict`` round-trips."""

    name: str
    data: dict
    corruptions: list
    model: dict
    capacities: list
    seeds: list
    train_sizes: list
    variants: list
    train: dict
    margins: dict
    robustness: dict | None
    description: str = ""
    paper: str = ""
    quick: dict = field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict) -> ExperimentSpec:
        """Validate ``raw`` against :data:`SPEC` (see the module docstring); every error names the field."""
        return cls(**SPEC(raw, "spec"))

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "data": self.data,
            "corruptions": self.corruptions,
            "model": self.model,
            "capacities": None if self.model["family"] == "linear" else self.capacities,
            "seeds": self.seeds,
            "train_sizes": None if self.train_sizes == [self.data["n_train"]] else self.train_sizes,
            "variants": self.variants,
            "train": self.train,
            "margins": self.margins,
            "robustness": self.robustness,
            "quick": self.quick,
        }
        return copy.deepcopy(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def fingerprint(self) -> str:
        """Hash of everything that changes results (not name/description/quick): a results folder made by a
        different spec is never resumed into."""
        d = self.to_dict()
        for k in ("name", "description", "paper", "quick"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # -- variants -------------------------------------------------------------------------------
    def quick_version(self) -> ExperimentSpec:
        """The ``--quick`` smoke version: the spec's own ``quick`` overrides, else generic shrinking."""
        over = self.quick or quick_overrides(self)
        return ExperimentSpec.from_dict(
            merge(self.to_dict(), {**over, "quick": None, "name": self.name + "-quick"})
        )

    def train_settings(self, variant: str) -> dict:
        v = next(v for v in self.variants if v["name"] == variant)
        return _merged_train(self.train, v)

    def units(self) -> list[Unit]:
        """Every unit of the sweep, in a fixed order (the order of the spec's lists)."""
        return [
            Unit(c["kind"], c["fraction"], n, cap, v["name"], s)
            for c, n, cap, v, s in itertools.product(
                self.corruptions, self.train_sizes, self.capacities, self.variants, self.seeds
            )
        ]

    def __repr__(self) -> str:
        return (
            f"ExperimentSpec(name={self.name!r}, units={len(self.units())}, "
            f"dataset={self.data['dataset']!r}, "
            f"family={self.model['family']!r})"
        )


def _merged_train(train: dict, variant: dict) -> dict:
    over = {k: variant[k] for k in _TRAIN_OVERRIDABLE if variant.get(k) is not None}
    out = merge(train, {k: v for k, v in over.items() if not k.endswith("_options")})
    # options belong to one loss / optimizer: a variant's options replace (not merge with) the base ones,
    # and a variant that switches loss or optimizer without giving options starts from the defaults
    for key in ("loss", "optimizer"):
        opt = f"{key}_options"
        if opt in over:
            out[opt] = copy.deepcopy(over[opt])
        elif key in over and over[key] != train[key]:
            out[opt] = {}
    return out


def _loss_tag(loss) -> str:
    return {"cross_entropy": "xent", "ce": "xent"}.get(str(loss), str(loss).replace("_", "-"))


def quick_overrides(spec: ExperimentSpec) -> dict:
    """Generic smoke shrinking for specs without their own ``quick`` section."""
    over = {
        "seeds": spec.seeds[:1],
        "train": {"epochs": min(spec.train["epochs"], 3)},
        "margins": {
            "n_samples": min(spec.margins["n_samples"], 40),
            "track_epochs": [e for e in spec.margins["track_epochs"] if e <= 3],
        },
        "data": {"n_val": min(spec.data["n_val"], 300)},
    }
    if (spec.data["n_train"] or 0) > 500 or (
        spec.data["n_train"] is None and spec.data["dataset"] in IMAGE_DATASETS
    ):
        over["data"]["n_train"] = 500
    if spec.train_sizes != [spec.data["n_train"]]:
        over["train_sizes"] = [min(s, 500) for s in spec.train_sizes[:2]]
        if len(set(over["train_sizes"])) < len(over["train_sizes"]):
            over["train_sizes"] = over["train_sizes"][:1]
    if spec.model["family"] != "linear":
        over["capacities"] = spec.capacities[:2]
    over["variants"] = [
        {**v, "epochs": None if v["epochs"] is None else min(v["epochs"], 3)} for v in spec.variants
    ]
    if spec.robustness:
        over["robustness"] = {"n_samples": min(spec.robustness["n_samples"], 100)}
    return over


def load_spec(spec) -> ExperimentSpec:
    """A spec from an :class:`ExperimentSpec`, a dict, a path to a JSON file, or a built-in study name
    (see :data:`marginlab.experiments.STUDIES`)."""
    if isinstance(spec, ExperimentSpec):
        return spec
    if isinstance(spec, dict):
        return ExperimentSpec.from_dict(spec)
    if isinstance(spec, (str, Path)):
        from .studies import STUDIES

        if str(spec) in STUDIES:
            return ExperimentSpec.from_dict(STUDIES[str(spec)])
        path = Path(spec)
        if not path.exists():
            raise ValueError(
                f"spec must be a JSON file or one of the built-in studies {sorted(STUDIES)}; "
                f"got {str(spec)!r}"
            )
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"spec file {path} is not valid JSON: {exc}") from None
        return ExperimentSpec.from_dict(raw)
    if isinstance(spec, numbers.Number):
        raise TypeError("spec must be a dict, a JSON path or a study name, not a number")
    raise TypeError(f"spec must be a dict, a JSON path or a study name, got {type(spec).__name__}")
