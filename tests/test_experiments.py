"""Experiment specs, the resumable runner, Dask equivalence and the ``marginlab run`` command."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from marginlab.experiments import STUDIES, ExperimentSpec, Results, load_spec, run_experiment

TOY = {
    "name": "toy-sweep",
    "data": {"dataset": "moons", "n_samples": 200, "n_val": 40, "noise": 0.2},
    "corruptions": [{"kind": "none"}, {"kind": "label", "fraction": 0.2}],
    "model": {"family": "mlp", "depth": 1},
    "capacities": [8, 16],
    "seeds": [0],
    "train": {"epochs": 4, "lr": 0.1, "batch_size": 32},
    "margins": {"n_samples": 25, "max_margin": True, "options": {"max_iter": 20}},
    "robustness": {"attacks": ["fgsm", "noise"], "eps": [0.0, 0.2], "n_samples": 30},
}
TIMING = ("seconds", "train_seconds", "margin_seconds")


def _tables(res: Results) -> dict:
    """The result tables without wall-clock columns (the only thing allowed to differ between runs)."""
    out = {}
    for name in ("samples", "units", "history", "curves", "trajectory"):
        df = getattr(res, name)
        out[name] = df.drop(columns=[c for c in TIMING if c in df.columns]).reset_index(drop=True)
    return out


def _assert_same(a: Results, b: Results):
    ta, tb = _tables(a), _tables(b)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=True, obj=name)


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "patch, field",
    [
        ({"colour": 1}, "colour"),
        ({"data": {"dataset": "moons", "bogus": 1}}, "spec.data"),
        ({"corruptions": [{"kind": "label", "fraction": 1.5}]}, "spec.corruptions[0].fraction"),
        ({"corruptions": [{"kind": "label", "fraction": -0.1}]}, "spec.corruptions[0].fraction"),
        ({"corruptions": [{"kind": "label", "fraction": 0.0}]}, "spec.corruptions[0].fraction"),
        ({"corruptions": [{"kind": "salt", "fraction": 0.1}]}, "spec.corruptions[0].kind"),
        ({"capacities": []}, "spec.capacities"),
        ({"capacities": [8, 8]}, "spec.capacities"),
        ({"capacities": [0]}, "spec.capacities[0]"),
        ({"seeds": [0, 0]}, "spec.seeds"),
        ({"model": {"family": "linear"}}, "spec.capacities"),
        ({"train": {"epochs": 0}}, "spec.train.epochs"),
        ({"train": {"loss": "nope"}}, "spec.train.loss"),
        ({"train": {"lr": -1}}, "spec.train.lr"),
        ({"margins": {"method": "magic"}}, "spec.margins.method"),
        ({"margins": {"track_epochs": [10]}}, "spec.margins.track_epochs[0]"),
        ({"margins": {"svm_reference": True}}, "spec.margins.svm_reference"),
        ({"robustness": {"attacks": ["cw"]}}, "spec.robustness.attacks[0]"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "spec.variants[].name"),
        ({"variants": [{"name": "a", "lr": 0}]}, "spec.variants[0].lr"),
    ],
)
def test_invalid_specs_name_the_field(patch, field):
    raw = copy.deepcopy(TOY)
    raw.update(patch)
    with pytest.raises((ValueError, TypeError)) as err:
        ExperimentSpec.from_dict(raw)
    assert field in str(err.value)


def test_spec_roundtrip_units_and_builtin_studies():
    spec = ExperimentSpec.from_dict(TOY)
    assert [u.uid for u in spec.units()] == [
        "clean_nall_c8_xent_s0",
        "clean_nall_c16_xent_s0",
        "label-0.2_nall_c8_xent_s0",
        "label-0.2_nall_c16_xent_s0",
    ]
    again = ExperimentSpec.from_dict(json.loads(spec.to_json()))
    assert again.fingerprint == spec.fingerprint and again.units() == spec.units()
    for name in STUDIES:
        full, quick = load_spec(name), load_spec(name).quick_version()
        assert 0 < len(quick.units()) <= len(full.units())
        assert quick.name == name + "-quick"


def test_impossible_data_rejected_before_training(tmp_path):
    raw = copy.deepcopy(TOY)
    raw["data"]["n_train"] = 10_000  # moons(200) has 140 training samples
    with pytest.raises(ValueError, match="n_train"):
        run_experiment(raw, out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "units").exists()


# -- runner -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run_experiment(TOY, out=tmp_path_factory.mktemp("ref") / "r", progress=False)


def test_tables_are_tidy_and_complete(reference):
    s, u = reference.samples, reference.units
    assert len(u) == 4 and len(s) == 4 * 25
    for col in (
        "unit_id",
        "corruption",
        "capacity",
        "seed",
        "sample",
        "corrupted",
        "pred",
        "boundary_class",
        "margin",
        "max_margin",
        "max_margin_before",
        "converged",
    ):
        assert col in s.columns, col
    assert s["converged"].mean() > 0.9 and (s["margin"].dropna() > 0).all()
    lab = s[s.corruption == "label"]
    assert lab["corrupted"].any() and not s[s.corruption == "none"]["corrupted"].any()
    # label corruption can only lower the nearest different-label distance of a clean sample's neighbourhood:
    # before-corruption distances are the clean set's own
    clean = s[s.corruption == "none"]
    np.testing.assert_allclose(clean["max_margin"], clean["max_margin_before"])
    assert set(reference.curves["attack"]) == {"fgsm", "noise"}
    acc0 = reference.curves[reference.curves.eps == 0].groupby("unit_id")["accuracy"].agg(["min", "max"])
    assert (acc0["min"] == acc0["max"]).all()  # eps = 0 is the clean accuracy whatever the attack
    m = reference.model(u.unit_id[0])
    train, val = reference.data(u.unit_id[0])
    assert m.n_classes == 2 and len(val) == 40


def test_resume_after_interruption_gives_identical_tables(reference, tmp_path):
    out = tmp_path / "r"
    part = run_experiment(TOY, out=out, progress=False, max_units=2)  # "killed" after two units
    assert not part.complete
    done = sorted(p.parent.name for p in (out / "units").glob("*/summary.json"))
    assert len(done) == 2
    stamp = {d: (out / "units" / d / "summary.json").stat().st_mtime_ns for d in done}
    # a unit killed mid-way: some tables written, no summary, a stray temporary file
    victim = out / "units" / "label-0.2_nall_c8_xent_s0"
    victim.mkdir(parents=True)
    (victim / "samples.parquet").write_bytes(b"garbage from a killed writer")
    (victim / ".samples.parquet.x.part").write_bytes(b"partial")
    res = run_experiment(TOY, out=out, progress=False)
    assert res.complete
    _assert_same(reference, res)
    for d in done:  # finished units were skipped, not recomputed
        assert (out / "units" / d / "summary.json").stat().st_mtime_ns == stamp[d]


def test_results_folder_of_another_spec_is_refused(reference):
    raw = copy.deepcopy(TOY)
    raw["train"]["epochs"] = 5
    with pytest.raises(ValueError, match="different spec"):
        run_experiment(raw, out=reference.path, progress=False)


def test_dask_localcluster_equals_local(reference, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        # by address, as ``marginlab run --scheduler ADDR`` does; the runner opens and closes its own Client
        res = run_experiment(TOY, out=tmp_path / "d", scheduler=cluster.scheduler_address, progress=False)
    _assert_same(reference, res)


# -- console ----------------------------------------------------------------------------------------
def test_cli_run_quick_and_bad_spec(tmp_path, capsys):
    from marginlab.cli import main

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(TOY))
    assert main(["run", str(path), "--quick", "--out", str(tmp_path / "q")]) == 0
    res = Results(tmp_path / "q")
    assert res.spec.name == "toy-sweep-quick" and res.spec.train["epochs"] == 3  # generic quick: <= 3 epochs
    assert len(res.units) == 4 and res.spec.margins["n_samples"] == 25
    assert "done:" in capsys.readouterr().out
    bad = copy.deepcopy(TOY)
    bad["corruptions"] = [{"kind": "label", "fraction": 2}]
    path.write_text(json.dumps(bad))
    with pytest.raises(SystemExit) as exc:
        main(["run", str(path), "--out", str(tmp_path / "b")])
    assert exc.value.code == 2
    assert "spec.corruptions[0].fraction" in capsys.readouterr().err
    assert main(["run", "--list"]) == 0


def test_cli_prints_the_studys_findings(tmp_path, capsys):
    """``marginlab run STUDY`` ends with the paper's claims checked against the run's own numbers."""
    from marginlab.cli import main
    from marginlab.experiments.findings import report_for

    out = tmp_path / "mva"
    assert main(["run", "min-vs-average-margin", "--quick", "--out", str(out), "--no-models"]) == 0
    text = capsys.readouterr().out
    report = report_for(Results(out))
    assert report is not None and report.title.startswith("Seed 002")
    assert len(report.claims) == 2 and report.to_markdown() in text
    # the numbers in the claim come from the run's trajectory table, not from a fixed text
    traj = Results(out).trajectory
    mins = traj[traj.split == "train-all-min"].sort_values("epoch")
    assert f"{mins.margin.iloc[-1]:.4f} (epoch {int(mins.epoch.iloc[-1])})" in text
    assert main(["run", "min-vs-average-margin", "--quick", "--out", str(out), "--no-findings"]) == 0
    assert "claims reproduced" not in capsys.readouterr().out
    # a user's own spec has no paper to check against
    main(["run", json_spec(tmp_path), "--quick", "--out", str(tmp_path / "toy"), "--no-models"])
    assert report_for(Results(tmp_path / "toy")) is None
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # ... so `marginlab findings` refuses it, naming the spec
        main(["findings", str(tmp_path / "toy")])
    assert exc.value.code == 2 and "'toy-sweep-quick', not of a built-in study" in capsys.readouterr().err
    assert main(["findings", str(out)]) == 0 and report.to_markdown() in capsys.readouterr().out


def json_spec(tmp_path):
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(TOY))
    return str(path)


def _amr_tables(mean_by_epoch, min_by_epoch):
    """A synthetic average-margin-regularizer run: 4 tracked training samples per epoch whose mean and signed
    minimum are given; one sample misclassified while its target minimum is negative."""
    from types import SimpleNamespace

    rows = []
    for e, (mean, mn) in enumerate(zip(mean_by_epoch, min_by_epoch)):
        rest = (4 * mean - abs(mn)) / 3  # the other three share the rest of the mean of |margin|
        for r, (m, ok) in enumerate([(abs(mn), mn >= 0), (rest, True), (rest, True), (rest, True)]):
            for v in ("std", "amr"):
                rows.append(dict(variant=v, split="train", epoch=e, row=r, margin=m, correct=ok))
    units = pd.DataFrame(dict(variant=["std", "amr"], val_acc=[0.9, 0.9], mean_margin_val=[1.0, 1.1]))
    curves = pd.DataFrame(dict(variant=["std", "amr"], eps=[1.0, 1.0], accuracy=[0.2, 0.3]))
    spec = SimpleNamespace(name="average-margin-regularizer")
    return SimpleNamespace(units=units, curves=curves, trajectory=pd.DataFrame(rows), spec=spec)


def test_margin_trajectory_draws_signed_minimum():
    from marginlab.viz import studies as vs

    res = _amr_tables([0.2, 1.0, 0.9, 0.8], [-0.5, -0.1, 0.05, 0.2])
    fig = vs.margin_trajectory(res.trajectory, color="variant", show_min=True)
    mins = {tr.name: list(tr.y) for tr in fig.data if tr.name.startswith("minimum")}
    assert set(mins) == {"minimum (std)", "minimum (amr)"}
    np.testing.assert_allclose(mins["minimum (std)"], [-0.5, -0.1, 0.05, 0.2])
    assert len(vs.margin_trajectory(res.trajectory, color="variant").data) == 2  # averages only by default


def test_normalized_margins_use_the_initial_weights_and_bias_free_nets():
    """Seed 001 App. A.1: the spectral complexity is measured against the untrained weights (the runner keeps
    a copy); a spec asking for normalized margins of a net with biases stops before training."""
    from marginlab.experiments.prepare import build_unit_model, prepare_data
    from marginlab.experiments.runner import compute_unit
    from marginlab.margins import spectrally_normalized_margin

    raw = copy.deepcopy(TOY)
    raw.update(corruptions=[{"kind": "none"}], capacities=[8], robustness=None,
               model={"family": "mlp", "depth": 2, "bias": False},
               margins={"n_samples": 20, "max_margin": False, "normalized": True, "skip_misclassified": True})
    spec = load_spec(raw)
    unit = spec.units()[0]
    out = compute_unit(spec, unit)
    s = out["samples"]
    train, _ = prepare_data(spec, unit)
    init = build_unit_model(spec, unit, train.input_shape, train.n_classes)
    X, y = train.X[s.row.to_numpy()], train.y[s.row.to_numpy()]
    want = spectrally_normalized_margin(out["model"], X, y, reference=init)
    zero = spectrally_normalized_margin(out["model"], X, y)
    ok = s.correct.to_numpy()
    np.testing.assert_allclose(s.nm_spectral.to_numpy()[ok], want[ok], rtol=1e-9)
    assert not np.allclose(want[ok], zero[ok], rtol=1e-3)  # the reference matters
    assert s.nm_spectral[~ok].isna().all()  # misclassified samples are skipped, as their margins are
    raw["model"]["bias"] = True
    with pytest.raises(ValueError, match="spec.margins.normalized needs spec.model.bias false"):
        load_spec(raw)
