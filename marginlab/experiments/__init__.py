"""Experiments: declarative specs, a resumable runner (local or Dask) and the built-in studies.

    from marginlab.experiments import run_experiment
    res = run_experiment("missing-margin", quick=True)        # or a dict / JSON path
    res.samples     # tidy per-sample table (pandas), res.units, res.history, res.curves, res.trajectory

Console: ``marginlab run SPEC.json|NAME [--quick] [--out DIR] [--scheduler ADDR]``.
Submodules load lazily (torch, pandas and dask only when a run starts).
"""

from __future__ import annotations

import importlib

__all__ = [
    "ExperimentSpec",
    "Unit",
    "load_spec",
    "run_experiment",
    "compute_unit",
    "prepare_data",
    "Results",
    "STUDIES",
]

_LAZY = {
    "ExperimentSpec": "spec",
    "Unit": "spec",
    "load_spec": "spec",
    "run_experiment": "runner",
    "compute_unit": "runner",
    "prepare_data": "prepare",
    "Results": "results",
    "STUDIES": "studies",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
