"""The spec table: defaults from one place, error paths generated from it, option dicts checked against the
callee that gets them, and every bad input stopped before any training."""

from __future__ import annotations

import copy
import json

import pytest

from marginlab.experiments import ExperimentSpec, run_experiment
from marginlab.experiments.spec import SPEC, SPEC_KEYS

TINY = {
    "name": "tiny",
    "data": {"dataset": "moons", "n_samples": 80, "n_val": 20},
    "model": {"family": "mlp", "depth": 1},
    "capacities": [4],
    "train": {"epochs": 2, "lr": 0.1, "batch_size": 16},
    "margins": {"n_samples": 8, "max_margin": False, "options": {"max_iter": 5}},
}


def _with(**sections):
    raw = copy.deepcopy(TINY)
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and key in raw else value
    return raw


@pytest.fixture
def no_training(monkeypatch):
    """Any unit that starts fails the test: the error must come before training."""
    from marginlab.experiments import runner

    def trained(*args, **kwargs):
        raise AssertionError("a unit started training before the bad input was reported")

    monkeypatch.setattr(runner, "compute_unit", trained)


# -- options against their callee -------------------------------------------------------------------
@pytest.mark.parametrize("patch, path, allowed", [
    ({"margins": {"options": {"maxiter": 5}}}, "spec.margins.options.maxiter", "max_iter"),
    ({"margins": {"method": "deepfool", "options": {"max_iter": 5, "restarts": 2}}},
     "spec.margins.options.restarts", "overshoot"),
    ({"train": {"loss_options": {"gama": 1.0}}}, "spec.train.loss_options.gama", "label_smoothing"),
    ({"train": {"loss": "odn", "loss_options": {"gamma": 1.0}}}, "spec.train.loss_options.gamma", "theta"),
    ({"train": {"optimizer_options": {"momentun": 0.9}}}, "spec.train.optimizer_options.momentun",
     "momentum"),
    ({"train": {"optimizer": "adam", "optimizer_options": {"momentum": 0.9}}},
     "spec.train.optimizer_options.momentum", "betas"),
    ({"variants": [{"name": "a"}, {"name": "b", "loss": "hinge", "loss_options": {"gamma": 1}}]},
     "spec.variants[1].loss_options.gamma", "gamma0"),
])
def test_misspelt_options_name_the_path_and_the_allowed_names(patch, path, allowed, tmp_path, no_training):
    raw = _with(**patch)
    with pytest.raises(ValueError) as err:
        ExperimentSpec.from_dict(raw)
    msg = str(err.value)
    assert path in msg and "allowed:" in msg and allowed in msg
    with pytest.raises(ValueError, match="allowed:"):
        run_experiment(raw, out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("patch, path, what", [
    ({"margins": {"options": {"max_iter": 0}}}, "spec.margins.options", "max_iter"),
    ({"train": {"loss": "large_margin", "loss_options": {"gamma": -1}}}, "spec.train.loss_options", "gamma"),
    ({"train": {"optimizer_options": {"momentum": 1.5}}}, "spec.train.optimizer_options", "momentum"),
])
def test_option_values_are_checked_by_the_callee_before_training(patch, path, what):
    with pytest.raises(ValueError) as err:
        ExperimentSpec.from_dict(_with(**patch))
    assert path in str(err.value) and what in str(err.value)


def test_a_variant_switching_optimizer_starts_from_its_defaults():
    # the base's SGD momentum does not follow a variant onto Adam (the variant's options start empty)
    spec = ExperimentSpec.from_dict(_with(train={"optimizer_options": {"momentum": 0.9}},
                                          variants=[{"name": "sgd"}, {"name": "adam", "optimizer": "adam"}]))
    assert spec.train_settings("adam")["optimizer_options"] == {}


# -- the table ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("patch, path", [
    ({"data": {"n_samples": 3}}, "spec.data.n_samples"),
    ({"data": {"classes": [1]}}, "spec.data.classes"),
    ({"data": {"classes": [0, 1], "binary": [1]}}, "spec.data"),
    ({"data": {"sphere": "yes"}}, "spec.data.sphere"),
    ({"model": {"bias": 1}}, "spec.model.bias"),
    ({"model": {"activation": "swish"}}, "spec.model.activation"),
    ({"train": {"constraints": [{"kind": "spectral", "max_norm": 0}]}}, "spec.train.constraints[0].max_norm"),
    ({"train": {"constraints": [{"kind": "frobenius", "bogus": 1}]}}, "spec.train.constraints[0]"),
    ({"train": {"lr_decay": 0}}, "spec.train.lr_decay"),
    ({"margins": {"n_samples": 0}}, "spec.margins.n_samples"),
    ({"margins": {"splits": ["train", "test"]}}, "spec.margins.splits[1]"),
    ({"margins": {"method": "interpolation"}}, "spec.margins.method"),  # needs reference data: not here
    ({"variants": [{"name": "a b"}]}, "spec.variants[0].name"),
    ({"variants": [{"name": "a", "device": "cuda"}]}, "spec.variants[0]"),
    ({"robustness": {"eps": [-0.1]}}, "spec.robustness.eps[0]"),
    ({"data": {"n_val": 0}, "robustness": {}}, "spec.data.n_val"),
    ({"quick": {"name": "other"}}, "spec.quick"),
    ({"name": "a/b"}, "spec.name"),
    ({"corruptions": []}, "spec.corruptions"),
])
def test_errors_name_the_field(patch, path):
    with pytest.raises((ValueError, TypeError)) as err:
        ExperimentSpec.from_dict(_with(**patch))
    assert path in str(err.value)


def test_defaults_come_from_the_table():
    spec = ExperimentSpec.from_dict({"name": "d", "capacities": [4]})
    for section in ("data", "model", "train", "margins"):
        assert getattr(spec, section) == SPEC_KEYS[section], section
    assert spec.corruptions == [{"kind": "none", "fraction": 0.0}] and spec.seeds == SPEC_KEYS[""]["seeds"]
    assert [v["name"] for v in spec.variants] == ["xent"] and spec.train_sizes == [None]
    assert set(SPEC.keys) == set(SPEC_KEYS[""])


def test_stored_form_is_unchanged_by_validation():
    """Values keep the type they were written with (an integer lr stays 1, not 1.0), and constraint entries
    keep only their own keys: a spec's JSON, hence its fingerprint, is what the user wrote plus defaults."""
    raw = _with(train={"lr": 1, "constraints": [{"kind": "frobenius", "max_norm": 2}]})
    d = ExperimentSpec.from_dict(raw).to_dict()
    assert json.dumps(d["train"]["lr"]) == "1" and d["train"]["constraints"] == [{"kind": "frobenius",
                                                                                   "max_norm": 2}]
    assert ExperimentSpec.from_dict(d).fingerprint == ExperimentSpec.from_dict(raw).fingerprint


def test_svm_reference_needs_two_classes_before_training(tmp_path, no_training):
    raw = {"name": "svm3", "data": {"dataset": "blobs", "n_samples": 60, "n_val": 10},
           "model": {"family": "linear"}, "margins": {"svm_reference": True, "max_margin": False}}
    with pytest.raises(ValueError, match="spec.margins.svm_reference needs two classes"):
        run_experiment(raw, out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


# -- the runner ----------------------------------------------------------------------------------------
def test_samples_carry_the_margin_status(tmp_path):
    res = run_experiment(TINY, out=tmp_path / "r", progress=False, save_models=False)
    s = res.samples
    assert ((s["status"] == "converged") == s["converged"]).all()
    assert s["status"].map(type).eq(str).all() and res.units["missing"].eq("").all()


def test_a_failing_unit_is_reported_after_the_others_are_saved(tmp_path, monkeypatch):
    from marginlab.experiments import runner

    real = runner.compute_unit

    def flaky(spec, unit):
        if unit.seed == 1:
            raise RuntimeError("boom")
        return real(spec, unit)

    monkeypatch.setattr(runner, "compute_unit", flaky)
    raw = _with(seeds=[0, 1])
    with pytest.raises(runner.UnitsFailed, match="(?s)1 unit\\(s\\) failed.*boom"):
        run_experiment(raw, out=tmp_path / "r", progress=False, save_models=False)
    assert (tmp_path / "r" / "units" / "clean_nall_c4_xent_s0" / "summary.json").exists()
    monkeypatch.setattr(runner, "compute_unit", real)
    assert run_experiment(raw, out=tmp_path / "r", progress=False, save_models=False).complete
