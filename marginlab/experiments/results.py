"""``Results``: read-only access to a finished (or partial) results folder written by the runner."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

__all__ = ["Results", "signed_margins"]


class Results:
    """Tables of a results folder as pandas DataFrames.

    ``samples``: one row per (unit, split, sample) with margin, maximum margin, lower bound ...; ``units``:
    one row per trained model (accuracies, timings, what was missing); ``history``: per-epoch training
    records;
    ``curves``: robust accuracy per attack and eps; ``trajectory``: margins at the tracked epochs.
    """

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

    def _table(self, name):
        import pandas as pd

        f = self.path / f"{name}.parquet"
        if not f.exists():
            raise FileNotFoundError(f"{f} does not exist yet: the run has not finished every unit")
        return pd.read_parquet(f)

    @cached_property
    def samples(self):
        return self._table("samples")

    @cached_property
    def units(self):
        return self._table("units")

    @cached_property
    def history(self):
        return self._table("history")

    @cached_property
    def curves(self):
        return self._table("curves")

    @cached_property
    def trajectory(self):
        return self._table("trajectory")

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
        from .runner import prepare_data

        return prepare_data(self.spec, self.unit(unit_id))

    @property
    def missing(self) -> list[str]:
        """Measurements the spec asked for that could not be made (a dependency was not installed)."""
        vals = self.units["missing"].dropna().tolist() if "missing" in self.units else []
        return sorted({m for v in vals for m in v.split(";") if m})


def signed_margins(table) -> np.ndarray:
    """Margins of a samples or trajectory table with misclassified samples negative (distance to the boundary
    with the sign of correctness), whether the table stores distances or already signed margins."""
    m = np.abs(table["margin"].to_numpy(float))
    if "correct" not in table:
        return table["margin"].to_numpy(float)
    return np.where(table["correct"].to_numpy(bool), m, -m)
