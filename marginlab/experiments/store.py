"""Store a run: the results folder, atomic table writes, fingerprints and what counts as a finished unit.

Layout of a results folder ``OUT`` (one per spec)::

    OUT/spec.json                      the validated spec (its fingerprint guards against mixing specs)
    OUT/units/<unit_id>/model.pt       trained model (marginlab.models.save_model format)
    OUT/units/<unit_id>/*.parquet      samples / history / curves / trajectory of that unit
    OUT/units/<unit_id>/summary.json   per-unit scalars; written LAST, so its presence marks a finished unit
    OUT/samples.parquet ...            all units concatenated in spec order (rebuilt at the end of every run)
    OUT/units.parquet                  one row per unit: the summaries

Every file is written to a temporary name in the same folder and renamed (:mod:`marginlab._files`), so a
killed run leaves either a finished unit or none, and a restarted run resumes after the finished ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._files import atomic_path, atomic_write_json
from .spec import ExperimentSpec

__all__ = ["TABLES", "default_out", "check_folder", "claim_folder", "unit_dir", "write_unit", "is_done",
           "is_finished", "combine"]

TABLES = ("samples", "history", "curves", "trajectory")


def default_out(spec: ExperimentSpec) -> Path:
    """``$MARGINLAB_RESULTS/<name>`` or ``./marginlab-results/<name>``."""
    return Path(os.environ.get("MARGINLAB_RESULTS", "marginlab-results")) / spec.name


def unit_dir(out_dir: Path, unit) -> Path:
    return Path(out_dir) / "units" / unit.uid


def check_folder(out_dir: Path, spec: ExperimentSpec) -> None:
    """Refuse a results folder written by a different spec (another fingerprint): results are never mixed."""
    spec_file = Path(out_dir) / "spec.json"
    if spec_file.exists():
        old = ExperimentSpec.from_dict(json.loads(spec_file.read_text()))
        if old.fingerprint != spec.fingerprint:
            raise ValueError(
                f"out: {out_dir} holds results of a different spec ({old.name!r}, fingerprint "
                f"{old.fingerprint}); choose another --out folder or delete it"
            )


def claim_folder(out_dir: Path, spec: ExperimentSpec) -> None:
    """Write the spec into its results folder (after :func:`check_folder`)."""
    _write_json(Path(out_dir) / "spec.json", spec.to_dict())


def _write_json(path: Path, obj) -> None:
    atomic_write_json(path, obj, sort_keys=True, default=_json_default)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _write_parquet(path: Path, df) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def write_unit(udir: Path, out: dict, fingerprint: str, save_models: bool) -> None:
    """The unit's tables, its model (``save_models``) and, last, its summary: the mark of a finished unit."""
    from ..models import save_model

    for t in TABLES:
        _write_parquet(udir / f"{t}.parquet", out[t])
    if save_models:
        save_model(udir / "model.pt", out["model"], extra={"unit": out["summary"]["unit_id"]})
    _write_json(udir / "summary.json", {**out["summary"], "fingerprint": fingerprint})


def _summary(udir: Path) -> dict | None:
    try:
        return json.loads((udir / "summary.json").read_text())
    except (OSError, ValueError):  # absent, or left unreadable by something other than this runner
        return None


def is_done(udir: Path, fingerprint: str) -> bool:
    """Finished by this spec with every measurement made (folders written by older versions could record
    ``missing`` measurements: those units are redone)."""
    s = _summary(udir)
    return s is not None and s.get("fingerprint") == fingerprint and not s.get("missing")


def is_finished(udir: Path, fingerprint: str) -> bool:
    s = _summary(udir)
    return s is not None and s.get("fingerprint") == fingerprint


def combine(out_dir: Path, spec: ExperimentSpec) -> None:
    """Concatenate every unit's tables (in spec order) into the folder's tables and ``units.parquet``."""
    import pandas as pd

    units = spec.units()
    for t in TABLES:
        frames = [pd.read_parquet(unit_dir(out_dir, u) / f"{t}.parquet") for u in units]
        frames = [f for f in frames if len(f)]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        _write_parquet(out_dir / f"{t}.parquet", table)
    summaries = []
    for u in units:
        s = _summary(unit_dir(out_dir, u))
        s.pop("fingerprint", None)
        s["missing"] = ";".join(s.get("missing", []))
        summaries.append(s)
    _write_parquet(out_dir / "units.parquet", pd.DataFrame(summaries))
