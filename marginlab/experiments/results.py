"""``Results``: read-only access to a finished (or partial) results folder written by the runner."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

__all__ = ["Results", "signed_margins"]


def _table(name: str, doc: str):
    """A results table read from ``<folder>/<name>.parquet`` on first access."""

    def read(self):
        import pandas as pd

        f = self.path / f"{name}.parquet"
        if not f.exists():
            raise FileNotFoundError(f"{f} does not exist: the run has not finished every unit")
        return pd.read_parquet(f)

    read.__doc__ = doc
    return cached_property(read)


class Results:
    """Tables of a results folder as pandas DataFrames (tidy: every row carries its unit's axes)."""

    samples = _table("samples", "One row per (unit, split, sample): margin, maximum margin, lower bound ...")
    units = _table("units", "One row per trained model: accuracies, timings, mean margins.")
    history = _table("history", "Per-epoch training records.")
    curves = _table("curves", "Robust accuracy per attack and eps.")
    trajectory = _table("trajectory", "Margins at the tracked epochs.")

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "spec.json").exists():
            raise ValueError(f"path: {self.path} is not a marginlab results folder (no spec.json)")

    def __repr__(self):
        done = sum(1 for u in self.spec.units() if (self.path / "units" / u.uid / "summary.json").exists())
        return f"Results({str(self.path)!r}, spec={self.spec.name!r}, units {done}/{len(self.spec.units())})"

    @cached_property
    def spec(self):
        from .spec import ExperimentSpec

        return ExperimentSpec.from_dict(json.loads((self.path / "spec.json").read_text()))

    @property
    def complete(self) -> bool:
        return (self.path / "units.parquet").exists()

    def unit(self, unit_id: str):
        """The :class:`~marginlab.experiments.spec.Unit` named ``unit_id``."""
        for u in self.spec.units():
            if u.uid == unit_id:
                return u
        raise ValueError(f"unit_id must be one of {[u.uid for u in self.spec.units()]}, got {unit_id!r}")

    def model(self, unit_id: str, *, device="cpu"):
        """The trained model of a unit."""
        from ..models import load_model

        self.unit(unit_id)
        return load_model(self.path / "units" / unit_id / "model.pt", device=device)

    def data(self, unit_id: str):
        """``(train, val)`` Datasets of a unit, rebuilt exactly as the runner used them."""
        from .prepare import prepare_data

        return prepare_data(self.spec, self.unit(unit_id))


def signed_margins(table) -> np.ndarray:
    """Margins of a samples or trajectory table with misclassified samples negative (distance to the boundary
    with the sign of correctness), whether the table stores distances or already signed margins."""
    m = np.abs(table["margin"].to_numpy(float))
    if "correct" not in table:
        return table["margin"].to_numpy(float)
    return np.where(table["correct"].to_numpy(bool), m, -m)
