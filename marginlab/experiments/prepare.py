"""Prepare a unit: its training and validation sets (loaded, subset, corrupted; cached per process), the rows
whose margins are measured, and its untrained model with its norm constraints.

A unit's data depend only on the spec's ``data`` section and the unit's corruption, fraction and training-set
size, never on its capacity, variant or seed: every model of a sweep point sees the same samples, and a
restarted, a Dask and a local run build identical sets.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from .spec import ExperimentSpec, Unit, load_spec

__all__ = ["prepare_data", "check_data_available", "prepare_all", "margin_rows", "attack_rows",
           "build_unit_model", "build_constraints", "as_unit"]


def as_unit(unit) -> Unit:
    """A :class:`Unit` from itself or from its ``to_dict()`` (how Dask ships it)."""
    if isinstance(unit, Unit):
        return unit
    d = dict(unit)
    d.pop("unit_id", None)
    return Unit(**d)


# -- data -------------------------------------------------------------------------------------------
def _data_key(spec: ExperimentSpec, unit: Unit) -> str:
    key = {"data": spec.data, "corruption": unit.corruption, "fraction": unit.fraction,
           "n_train": unit.n_train}
    if spec.data["dataset"] == "cifar10":  # the cache folder follows $MARGINLAB_DATA: part of the cache key
        from ..data.cifar import cache_dir

        key["location"] = str(cache_dir())
    return json.dumps(key, sort_keys=True)


def check_data_available(spec) -> None:
    """Raise :class:`FileNotFoundError` (naming the dataset, the spec and how to get the data) when the spec's
    dataset is not on this machine. Only CIFAR-10 can be missing: MNIST falls back on its bundled subset."""
    spec = load_spec(spec)
    if spec.data["dataset"] == "cifar10":
        from ..data.cifar import _how_to_get, cache_dir, cifar10_available

        if not cifar10_available():
            raise FileNotFoundError(
                f"spec {spec.name!r} needs the CIFAR-10 dataset, which is not in {cache_dir()} (nothing "
                f"was trained): {_how_to_get(cache_dir())}"
            )


def prepare_all(spec: ExperimentSpec, units) -> None:
    """Build every distinct data set of ``units`` now, so that data problems (dataset absent, too few
    samples ...) stop a run before any training."""
    check_data_available(spec)
    for key in {_data_key(spec, u) for u in units}:
        train, _ = _prepare_cached(key)
        if spec.margins["svm_reference"] and train.n_classes != 2:
            raise ValueError(f"spec.margins.svm_reference needs two classes (seed 002's binary task); "
                             f"spec.data gives {train.n_classes}: set data.classes to two classes or use "
                             "data.binary")


def prepare_data(spec, unit):
    """``(train, val)`` Datasets of ``unit`` exactly as the runner used them (cached per process)."""
    spec = load_spec(spec)
    return _prepare_cached(_data_key(spec, as_unit(unit)))


@lru_cache(maxsize=16)
def _prepare_cached(key: str):
    d = json.loads(key)
    return _prepare(d["data"], d["corruption"], d["fraction"], d["n_train"])


def _load_pools(data: dict):
    from ..data import binary_relabel, class_subset, load_cifar10, load_mnist, load_toy

    if data["dataset"] == "mnist":
        pool, vpool = load_mnist("train"), load_mnist("test")
    elif data["dataset"] == "cifar10":
        pool, vpool = load_cifar10("train"), load_cifar10("test")
    else:
        pool, vpool = load_toy(data["dataset"], data["n_samples"], noise=data["noise"], seed=data["seed"])
    if data["classes"] is not None:
        pool, vpool = class_subset(pool, data["classes"]), class_subset(vpool, data["classes"])
    if data["binary"] is not None:
        pool, vpool = binary_relabel(pool, data["binary"]), binary_relabel(vpool, data["binary"])
    return pool, vpool


def _prepare(data: dict, kind: str, fraction: float, n_train):
    from ..corruption import corrupt, randomize_labels
    from ..data import project_sphere

    pool, vpool = _load_pools(data)
    rng = np.random.default_rng(data["seed"])
    # one fixed permutation per pool: smaller training sets are prefixes of larger ones (nested sweeps)
    perm = rng.permutation(len(pool))
    if n_train is not None:
        if n_train > len(pool):
            raise ValueError(
                f"spec.data.n_train / spec.train_sizes asks for {n_train} training samples but "
                f"only {len(pool)} are available ({pool.source})"
            )
        perm = perm[:n_train]
    train = pool.subset(perm)
    if data["n_val"] > len(vpool):
        raise ValueError(
            f"spec.data.n_val={data['n_val']} exceeds the {len(vpool)} available validation samples"
        )
    val = vpool.subset(rng.permutation(len(vpool))[: data["n_val"]])
    if data["sphere"]:
        train, val = project_sphere(train), project_sphere(val)
    if kind == "random":
        train = randomize_labels(train, fraction, seed=data["seed"])
    else:
        train = corrupt(train, kind, fraction, seed=data["seed"])
    return train, val


def margin_rows(spec: ExperimentSpec, n: int, split: str) -> np.ndarray:
    """The rows of a split whose margins are measured: the same for every unit sharing a training set, so
    capacities and seeds are compared sample by sample."""
    rng = np.random.default_rng(spec.data["seed"] + (1 if split == "train" else 2))
    return np.sort(rng.permutation(n)[: spec.margins["n_samples"]])


def attack_rows(spec: ExperimentSpec, n: int) -> np.ndarray:
    """The rows of the robustness split that are attacked (fixed by the data seed)."""
    return np.random.default_rng(spec.data["seed"] + 3).permutation(n)[: spec.robustness["n_samples"]]


# -- model ------------------------------------------------------------------------------------------
def build_unit_model(spec, unit, input_shape, n_classes):
    """The untrained model of ``unit`` (initialised from ``unit.seed``)."""
    from ..models import CNN, MLP, LinearModel

    m = spec.model
    if m["family"] == "linear":
        return LinearModel(input_shape, n_classes, bias=m["bias"], seed=unit.seed)
    if m["family"] == "cnn":
        shape = tuple(input_shape)
        if len(shape) == 2:
            shape = (1,) + shape
        return CNN(unit.capacity, input_shape=shape, n_classes=n_classes, fc=m["fc"],
                   activation=m["activation"], seed=unit.seed)
    return MLP(input_shape, (unit.capacity,) * m["depth"], n_classes, activation=m["activation"],
               bias=m["bias"], seed=unit.seed)


def build_constraints(items) -> list:
    """The norm projections of ``train.constraints`` (run after every optimizer step)."""
    from ..train.optim import FrobeniusProjection, SpectralProjection

    out = []
    for c in items:
        scale = 1.0 if c.get("max_norm") is None else c["max_norm"]
        cls = FrobeniusProjection if c["kind"] == "frobenius" else SpectralProjection
        out.append(cls(scale, layers=c.get("layers")))
    return out
