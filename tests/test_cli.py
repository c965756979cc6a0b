"""The console command: bad input exits 2 with the parameter and its range and no traceback, before any
work; given values are used, never silently replaced; a spec typo is bad input too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from marginlab.cli import COMMANDS, main

FAST = ["--n-samples", "40", "--hidden", "4", "--n-margins", "5"]


@pytest.fixture
def no_training(monkeypatch):
    import marginlab.train

    def trained(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    monkeypatch.setattr(marginlab.train, "fit", trained)


@pytest.mark.parametrize("args, expected", [
    (["--n-margins", "0"], "--n-margins must be an integer in [1, inf], got 0"),
    (["--n-margins", "-3"], "--n-margins must be an integer in [1, inf], got -3"),
    (["--lr", "0"], "--lr must be in (0, inf), got 0"),
    (["--lr", "-0.1"], "--lr must be in (0, inf), got -0.1"),
    (["--epochs", "0"], "--epochs must be an integer in [1, inf], got 0"),
    (["--n-samples", "2"], "--n-samples must be an integer in [4, inf], got 2"),
    (["--fraction", "1.5"], "--fraction must be in [0, 1], got 1.5"),
    (["--fraction", "0.2"], "--fraction 0.2 needs --corruption label or gaussian"),
    (["--hidden", "0"], "--hidden[0] must be an integer in [1, inf], got 0"),
    (["--hidden", "8,x"], "--hidden must be integers separated by commas"),
    (["--dataset", "moon"], "--dataset must be one of 'moons'"),
    (["--method", "interpolation"], "--method must be one of 'batched'"),
    (["--corruption", "salt"], "--corruption must be one of 'none', 'label', 'gaussian'"),
    (["--seed", "-1"], "--seed must be an integer in [0, inf], got -1"),
    (["--noise", "-1"], "--noise must be in [0, inf), got -1"),
])
def test_demo_rejects_bad_input_before_any_work(args, expected, capsys, no_training):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and expected in err and "Traceback" not in err


def test_demo_uses_the_given_values(capsys):
    """--epochs 1 trains one epoch (0 and other falsy values are errors, not replaced by defaults)."""
    assert main(["demo", "--epochs", "1", "--lr", "0.5", *FAST, "--hidden", "4,3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "train:  1 epochs" in out and "MLP 2-4-3-2" in out and "on 5 training samples" in out


def test_a_spec_typo_exits_2_without_training(tmp_path, no_training):
    spec = {"name": "typo", "data": {"dataset": "moons", "n_samples": 60, "n_val": 10}, "capacities": [4],
            "margins": {"options": {"maxiter": 5}}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    # a real process: the exit status and stderr as a user sees them
    cmd = [sys.executable, "-m", "marginlab.cli", "run", str(path), "--out", str(tmp_path / "r")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "spec.margins.options.maxiter is not an option of margin method 'batched'" in proc.stderr
    assert "max_iter" in proc.stderr and not (tmp_path / "r").exists()


def test_every_subcommand_is_one_row_of_the_table():
    from marginlab.cli import _build_parser

    parser = _build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, cmd in COMMANDS.items():
        dests = {a.dest for a in sub.choices[name]._actions}
        assert set(cmd.checks) <= dests, name  # every declared check names a real option
