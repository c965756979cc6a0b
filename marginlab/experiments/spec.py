"""Declarative experiment specs: a JSON-able dict validated into an :class:`ExperimentSpec`.

A spec names the data, the sweep axes (corruptions x training-set sizes x capacities x training variants x
seeds) and what to measure on every trained model (margins, maximum margins, lower bounds, normalized
margins, robustness curves, margins over epochs). Everything is checked before any training: unknown keys,
empty or duplicated sweeps, fractions outside [0, 1] and settings that cannot work together raise
``ValueError`` naming the field (``spec.margins.n_samples`` ...).

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
from pathlib import Path

from .._validation import check_choice, check_float, check_fraction, check_int

__all__ = ["ExperimentSpec", "Unit", "load_spec", "SPEC_KEYS", "quick_overrides", "merge"]

CORRUPTION_KINDS = ("none", "label", "gaussian", "random")
FAMILIES = ("mlp", "cnn", "linear")
IMAGE_DATASETS = ("mnist", "cifar10")
DATASETS = (*IMAGE_DATASETS, "moons", "circles", "spirals", "xor", "blobs")
ATTACKS = ("fgsm", "ifgsm", "pgd", "noise")
ATTACK_LOSSES = ("margin", "xent")  # what marginlab.experiments.robustness's gradient attacks ascend

# Allowed keys per section with their defaults (None: "not set"). Unknown keys are rejected.
SPEC_KEYS = {
    "": {
        "name": None,
        "description": "",
        "paper": "",
        "data": None,
        "corruptions": None,
        "model": None,
        "capacities": None,
        "seeds": [0],
        "train_sizes": None,
        "variants": None,
        "train": None,
        "margins": None,
        "robustness": None,
        "quick": None,
    },
    "data": {
        "dataset": "mnist",
        "n_train": None,
        "n_val": 1000,
        "classes": None,
        "binary": None,
        "sphere": False,
        "seed": 0,
        "n_samples": 600,
        "noise": 0.15,
    },
    "corruption": {"kind": "none", "fraction": 0.0},
    "model": {"family": "mlp", "depth": 1, "activation": "relu", "bias": True, "fc": 400},
    "train": {
        "epochs": 10,
        "loss": "cross_entropy",
        "loss_options": {},
        "optimizer": "sgd",
        "lr": 0.01,
        "optimizer_options": {},
        "batch_size": 64,
        "lr_decay": 1.0,
        "lr_decay_every": None,
        "target_train_acc": None,
        "constraints": [],
        "device": "cpu",
    },
    "variant": {
        "name": None,
        "loss": None,
        "loss_options": None,
        "optimizer": None,
        "lr": None,
        "optimizer_options": None,
        "batch_size": None,
        "lr_decay": None,
        "lr_decay_every": None,
        "target_train_acc": None,
        "epochs": None,
        "constraints": None,
    },
    "margins": {
        "method": "batched",
        "options": {},
        "n_samples": 200,
        "splits": ["train"],
        "max_margin": True,
        "lower_bound": None,
        "normalized": False,
        "skip_misclassified": False,
        "signed": False,
        "track_epochs": [],
        "track_method": None,
        "svm_reference": False,
    },
    # loss: what the gradient attacks ascend ("margin": the logit margin, immune to cross-entropy's
    # saturation; "xent": cross-entropy), see marginlab.experiments.robustness
    "robustness": {
        "attacks": ["fgsm"],
        "eps": [0.05, 0.1],
        "n_samples": 500,
        "steps": 10,
        "split": "val",
        "loss": "margin",
    },
    "constraint": {"kind": None, "max_norm": None, "layers": None},
}
_TRAIN_OVERRIDABLE = [k for k in SPEC_KEYS["variant"] if k != "name"]


def merge(base: dict, over: dict) -> dict:
    """Deep merge of JSON-able dicts (``over`` wins; lists are replaced, not merged)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _section(raw, where: str, kind: str) -> dict:
    """Defaults filled in; unknown keys rejected with the field path."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TypeError(f"{where} must be an object (dict), got {type(raw).__name__}")
    allowed = SPEC_KEYS[kind]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(allowed))})"
        )
    out = copy.deepcopy(allowed)
    out.update(copy.deepcopy(raw))
    return out


def _list(value, where: str, *, allow_empty=False) -> list:
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{where} must be a list, got {value!r}")
    value = list(value)
    if not value and not allow_empty:
        raise ValueError(f"{where} must not be empty: a sweep needs at least one value")
    return value


def _unique(values, where: str):
    keys = [json.dumps(v, sort_keys=True) for v in values]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"{where} has duplicate entries {', '.join(dup)}: every unit must be distinct")


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
        """Validate ``raw`` (see the module docstring); every error names the offending field."""
        top = _section(raw, "spec", "")
        name = top["name"]
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\"):
            raise ValueError(f"spec.name must be a non-empty string without slashes, got {name!r}")
        data = _section(top["data"], "spec.data", "data")
        data["dataset"] = check_choice(data["dataset"], "spec.data.dataset", DATASETS)
        if data["n_train"] is not None:
            check_int(data["n_train"], "spec.data.n_train", min_value=2)
        check_int(data["n_val"], "spec.data.n_val", min_value=0)
        check_int(data["seed"], "spec.data.seed", min_value=0)
        check_int(data["n_samples"], "spec.data.n_samples", min_value=4)
        check_float(data["noise"], "spec.data.noise", min_value=0.0)
        if data["classes"] is not None and data["binary"] is not None:
            raise ValueError("spec.data: give either classes or binary, not both")
        for key in ("classes", "binary"):
            if data[key] is not None:
                vals = _list(data[key], f"spec.data.{key}")
                for i, c in enumerate(vals):
                    check_int(c, f"spec.data.{key}[{i}]", min_value=0)
                _unique(vals, f"spec.data.{key}")
        if data["classes"] is not None and len(data["classes"]) < 2:
            raise ValueError("spec.data.classes must name at least two classes")
        if not isinstance(data["sphere"], bool):
            raise TypeError(f"spec.data.sphere must be true or false, got {data['sphere']!r}")

        corrs = []
        for i, c in enumerate(_list(top["corruptions"] or [{"kind": "none"}], "spec.corruptions")):
            c = _section(c, f"spec.corruptions[{i}]", "corruption")
            c["kind"] = check_choice(c["kind"], f"spec.corruptions[{i}].kind", CORRUPTION_KINDS)
            c["fraction"] = check_fraction(c["fraction"], f"spec.corruptions[{i}].fraction")
            if c["kind"] == "none":
                if c["fraction"] not in (0.0,):
                    raise ValueError(
                        f"spec.corruptions[{i}].fraction must be 0 for kind 'none', got {c['fraction']:g}"
                    )
            elif c["fraction"] == 0.0:
                raise ValueError(
                    f"spec.corruptions[{i}].fraction must be > 0 for kind {c['kind']!r} "
                    "(use kind 'none' for the clean set)"
                )
            corrs.append(c)
        _unique(corrs, "spec.corruptions")

        model = _section(top["model"], "spec.model", "model")
        model["family"] = check_choice(model["family"], "spec.model.family", FAMILIES)
        check_int(model["depth"], "spec.model.depth", min_value=1)
        check_int(model["fc"], "spec.model.fc", min_value=1)
        from ..models.base import ACTIVATIONS

        model["activation"] = check_choice(model["activation"], "spec.model.activation", ACTIVATIONS)
        if model["family"] == "cnn" and data["dataset"] not in IMAGE_DATASETS:
            raise ValueError(
                f"spec.model.family 'cnn' needs an image dataset ({', '.join(IMAGE_DATASETS)}); "
                f"spec.data.dataset is {data['dataset']!r} (2-D points: use 'mlp' or 'linear')"
            )
        caps = top["capacities"]
        if model["family"] == "linear":
            if caps not in (None, [None]):
                raise ValueError(
                    "spec.capacities must be omitted (or [null]) for model.family 'linear': a linear "
                    "model has no capacity knob"
                )
            caps = [None]
        else:
            caps = _list(
                caps if caps is not None else [], f"spec.capacities (model.family {model['family']!r})"
            )
            caps = [check_int(c, f"spec.capacities[{i}]", min_value=1) for i, c in enumerate(caps)]
            _unique(caps, "spec.capacities")

        seeds = [
            check_int(s, f"spec.seeds[{i}]", min_value=0)
            for i, s in enumerate(_list(top["seeds"], "spec.seeds"))
        ]
        _unique(seeds, "spec.seeds")
        sizes = top["train_sizes"]
        if sizes is None:
            sizes = [data["n_train"]]
        else:
            sizes = [
                check_int(s, f"spec.train_sizes[{i}]", min_value=2)
                for i, s in enumerate(_list(sizes, "spec.train_sizes"))
            ]
            _unique(sizes, "spec.train_sizes")

        train = _section(top["train"], "spec.train", "train")
        _check_train(train, "spec.train")
        variants = []
        for i, v in enumerate(
            _list(top["variants"] or [{"name": _loss_tag(train["loss"])}], "spec.variants")
        ):
            v = _section(v, f"spec.variants[{i}]", "variant")
            if not isinstance(v["name"], str) or not v["name"] or any(ch in v["name"] for ch in "/\\_ "):
                raise ValueError(
                    f"spec.variants[{i}].name must be a non-empty string without '/', '_' or spaces, "
                    f"got {v['name']!r}"
                )
            _check_train(
                merge(train, {k: v[k] for k in _TRAIN_OVERRIDABLE if v[k] is not None}), f"spec.variants[{i}]"
            )
            variants.append(v)
        _unique([v["name"] for v in variants], "spec.variants[].name")

        m = _section(top["margins"], "spec.margins", "margins")
        from ..margins import METHODS

        m["method"] = check_choice(m["method"], "spec.margins.method", METHODS)
        if m["track_method"] is not None:
            m["track_method"] = check_choice(m["track_method"], "spec.margins.track_method", METHODS)
        check_int(m["n_samples"], "spec.margins.n_samples", min_value=1)
        for i, s in enumerate(_list(m["splits"], "spec.margins.splits")):
            check_choice(s, f"spec.margins.splits[{i}]", ("train", "val"))
        _unique(m["splits"], "spec.margins.splits")
        if m["lower_bound"] is not None:
            check_choice(m["lower_bound"], "spec.margins.lower_bound", ("crown", "lipschitz"))
        for key in ("max_margin", "normalized", "skip_misclassified", "signed", "svm_reference"):
            if not isinstance(m[key], bool):
                raise TypeError(f"spec.margins.{key} must be true or false, got {m[key]!r}")
        if not isinstance(m["options"], dict):
            raise TypeError("spec.margins.options must be an object of method options")
        max_epochs = max(_merged_train(train, v)["epochs"] for v in variants)
        for i, e in enumerate(_list(m["track_epochs"], "spec.margins.track_epochs", allow_empty=True)):
            check_int(e, f"spec.margins.track_epochs[{i}]", min_value=0, max_value=max_epochs)
        if m["svm_reference"] and (model["family"] != "linear"):
            raise ValueError("spec.margins.svm_reference needs model.family 'linear' (seed 002's LR vs SVM)")

        rob = top["robustness"]
        if rob is not None:
            rob = _section(rob, "spec.robustness", "robustness")
            for i, a in enumerate(_list(rob["attacks"], "spec.robustness.attacks")):
                check_choice(a, f"spec.robustness.attacks[{i}]", ATTACKS)
            for i, e in enumerate(_list(rob["eps"], "spec.robustness.eps")):
                check_float(e, f"spec.robustness.eps[{i}]", min_value=0.0)
            check_int(rob["n_samples"], "spec.robustness.n_samples", min_value=1)
            check_int(rob["steps"], "spec.robustness.steps", min_value=1)
            rob["loss"] = check_choice(rob["loss"], "spec.robustness.loss", ATTACK_LOSSES)
            check_choice(rob["split"], "spec.robustness.split", ("train", "val"))
        quick = top["quick"] or {}
        if not isinstance(quick, dict):
            raise TypeError("spec.quick must be an object of overrides")
        if "quick" in quick or "name" in quick:
            raise ValueError("spec.quick may not override 'quick' or 'name'")
        spec = cls(
            name=name.strip(),
            data=data,
            corruptions=corrs,
            model=model,
            capacities=caps,
            seeds=seeds,
            train_sizes=sizes,
            variants=variants,
            train=train,
            margins=m,
            robustness=rob,
            description=str(top["description"]),
            paper=str(top["paper"]),
            quick=quick,
        )
        if data["n_val"] == 0 and ("val" in m["splits"] or (rob and rob["split"] == "val")):
            raise ValueError(
                "spec.data.n_val is 0 but spec.margins.splits or spec.robustness.split asks for 'val'"
            )
        return spec

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


def _check_train(t: dict, where: str) -> None:
    from ..train import LOSSES, OPTIMIZERS

    check_int(t["epochs"], f"{where}.epochs", min_value=1)
    check_choice(t["loss"], f"{where}.loss", LOSSES)
    check_choice(t["optimizer"], f"{where}.optimizer", OPTIMIZERS)
    check_float(t["lr"], f"{where}.lr", min_value=0.0, min_inclusive=False)
    check_int(t["batch_size"], f"{where}.batch_size", min_value=1)
    check_float(t["lr_decay"], f"{where}.lr_decay", min_value=0.0, max_value=1.0, min_inclusive=False)
    if t["lr_decay_every"] is not None:
        check_int(t["lr_decay_every"], f"{where}.lr_decay_every", min_value=1)
    if t["target_train_acc"] is not None:
        check_fraction(t["target_train_acc"], f"{where}.target_train_acc")
    for key in ("loss_options", "optimizer_options"):
        if not isinstance(t[key], dict):
            raise TypeError(f"{where}.{key} must be an object (dict)")
    for i, c in enumerate(_list(t["constraints"], f"{where}.constraints", allow_empty=True)):
        c = _section(c, f"{where}.constraints[{i}]", "constraint")
        check_choice(c["kind"], f"{where}.constraints[{i}].kind", ("frobenius", "spectral"))
        if c["max_norm"] is not None:
            check_float(
                c["max_norm"], f"{where}.constraints[{i}].max_norm", min_value=0.0, min_inclusive=False
            )
    if not isinstance(t["device"], str):
        raise TypeError(f"{where}.device must be a string such as 'cpu' or 'auto'")


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
