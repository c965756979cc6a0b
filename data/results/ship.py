"""Run the built-in studies' larger modes on CPU and ship their tables under ``data/results/<study>/``.

    OMP_NUM_THREADS=1 python data/results/ship.py [STUDY ...] [--work DIR]

Each shipped folder holds the runner's combined tables (``*.parquet``, no per-unit folders, no models), the
``spec.json`` that produced them, ``provenance.json`` (commit, date, machine, wall time, the size actually run
and what differs from the full spec) and ``verdicts.json`` (the findings at shipping time; the test suite
re-derives them from the tables). Sizes: :data:`SIZES` lists, per study, the overrides merged into the full
spec ("medium" runs where the full one would take more than ~25 minutes on the 2 shared CPU cores this was
made on); the study keeps its name with a ``-medium`` suffix so the findings know what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: per study: overrides of the full spec (None: the full spec as it stands); the batched solver's refinement
#: is capped at 15 passes in the medium runs (10-20 changed mean margins by < 1e-4, see studies.py)
SIZES = {
    "min-vs-average-margin": None,
    "average-margin-regularizer": None,
    "normalized-margin": {"seeds": [0], "margins": {"n_samples": 200, "options": {"max_iter": 15}}},
    "missing-margin": {"data": {"n_train": 2000, "n_val": 2000}, "capacities": [16, 128, 1024],
                       "seeds": [0, 1], "train": {"epochs": 100},
                       "margins": {"n_samples": 200, "options": {"max_iter": 15}}},
    "margin-losses": {"train_sizes": [500, 1000], "train": {"epochs": 40},
                      "margins": {"n_samples": 200, "splits": ["val"], "options": {"max_iter": 15}},
                      "robustness": {"n_samples": 500}},
}
TABLES = ("samples", "units", "history", "curves", "trajectory")


def _git(*args) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def shipped_spec(name: str):
    """The spec shipped for ``name``: the full one, or the full one with :data:`SIZES` merged in."""
    from marginlab.experiments import load_spec
    from marginlab.experiments.spec import ExperimentSpec, merge

    spec = load_spec(name)
    over = SIZES[name]
    if over is None:
        return spec
    return ExperimentSpec.from_dict(merge(spec.to_dict(), {**over, "name": f"{name}-medium"}))


def ship(name: str, work: Path) -> Path:
    from marginlab.experiments import run_experiment
    from marginlab.experiments.findings import report_for

    spec = shipped_spec(name)
    t0 = time.perf_counter()
    res = run_experiment(spec, out=work / name, save_models=name == "margin-losses", progress=False)
    wall = time.perf_counter() - t0  # this call's time: units finished earlier in ``work`` are resumed
    dest = HERE / name
    dest.mkdir(parents=True, exist_ok=True)
    for t in TABLES:
        shutil.copyfile(res.path / f"{t}.parquet", dest / f"{t}.parquet")
    shutil.copyfile(res.path / "spec.json", dest / "spec.json")
    extra = {}
    if name == "margin-losses":  # seed 003 §4.4 needs the trained models: ship the variance ratios instead
        from marginlab.experiments.findings.losses import variance_ratio_table

        variance_ratio_table(res).to_parquet(dest / "variance.parquet", index=False)
        extra["variance"] = "variance.parquet: bootstrap replicates of the last-hidden-layer variance ratio"
    prov = {
        "study": name,
        "spec_name": spec.name,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "torch_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": sys.version.split()[0],
        "wall_seconds_this_call": round(wall, 1),
        "unit_seconds_total": round(float(res.units["seconds"].sum()), 1),
        "units": len(spec.units()),
        "size": "full spec" if SIZES[name] is None else "medium",
        "overrides_of_full_spec": SIZES[name],
        **extra,
    }
    (dest / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    from marginlab.experiments.findings import load_results

    report = report_for(load_results(dest))
    (dest / "verdicts.json").write_text(json.dumps(report.verdicts(), indent=2) + "\n")
    print(report.to_markdown(), flush=True)
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="*", default=list(SIZES), help=f"any of {list(SIZES)}")
    ap.add_argument("--work", default="marginlab-results/ship", help="the runner's working folder")
    args = ap.parse_args(argv)
    bad = [s for s in args.studies if s not in SIZES]
    if bad:
        ap.exit(2, f"ship.py: error: studies must be among {list(SIZES)}, got {bad}\n")
    for name in args.studies:
        print(f"== {name}", flush=True)
        ship(name, Path(args.work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
