"""Notebook helpers for the study notebooks (03-06): open the shipped results by default, re-run in smoke
mode with one switch, and write prose whose numbers come from the tables.

    from marginlab.experiments import notebook as nb
    res = nb.open_study("missing-margin", rerun=SMOKE)   # shipped tables, or a fresh smoke run
    nb.verdict_summary(res)                               # Markdown: "k of n claims reproduced" + provenance
    nb.paper_table(res)                                   # the paper-vs-ours table

Shipped results live in ``data/results/<study>/`` of the repository (``marginlab findings`` reads them
too); :func:`shipped_folder` finds them from the working directory upwards, next to the package, or under
``$MARGINLAB_SHIPPED``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["shipped_folder", "open_study", "verdict_summary", "paper_table", "smoke_requested"]


def smoke_requested() -> bool:
    """The notebooks' one switch: ``MARGINLAB_SMOKE`` set to anything but "", "0" or "false"."""
    return os.environ.get("MARGINLAB_SMOKE", "0") not in ("", "0", "false", "False")


def _candidates(study: str):
    if os.environ.get("MARGINLAB_SHIPPED"):
        yield Path(os.environ["MARGINLAB_SHIPPED"]) / study
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        yield d / "data" / "results" / study
    yield Path(__file__).resolve().parents[2] / "data" / "results" / study


def shipped_folder(study: str) -> Path:
    """The shipped results folder of ``study``; ``FileNotFoundError`` naming where it looked."""
    tried = []
    for p in _candidates(study):
        if (p / "spec.json").exists() and (p / "units.parquet").exists():
            return p
        tried.append(str(p))
    raise FileNotFoundError(
        f"no shipped results for study {study!r}; looked in {tried[:3]} ... (run "
        "data/results/ship.py, or open_study(..., rerun=True))"
    )


def open_study(study: str, *, rerun: bool = False, out=None, scheduler=None):
    """The :class:`~marginlab.experiments.Results` of a built-in study: the shipped tables (instant), or
    with ``rerun`` a fresh run of its smoke version into ``out`` (default: a temporary folder)."""
    from . import STUDIES, run_experiment
    from .findings import load_results

    if study not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}, got {study!r}")
    if not rerun:
        return load_results(shipped_folder(study))
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="marginlab-")) / f"{study}-quick"
    return run_experiment(study, quick=True, out=out, scheduler=scheduler)


def _provenance(res) -> str:
    f = res.path / "provenance.json"
    if not f.exists():
        return f"a fresh run ({res.spec.name}, {len(res.units)} models) in {res.path}"
    p = json.loads(f.read_text())
    size = "the full spec" if p.get("size") == "full spec" else f"a {p.get('size')} run"
    return (
        f"shipped results of {size} ({p['spec_name']}, {p['units']} models, "
        f"{p['unit_seconds_total'] / 60:.0f} CPU-minutes of units on {p['machine'].split(',')[0]}, "
        f"{p['date'][:10]}, commit {p['commit'][:8]})"
    )


def verdict_summary(res):
    """Markdown: how many claims the run reproduces, which do not, and where the tables come from."""
    from IPython.display import Markdown

    from .findings import REPRODUCED, report_for

    rep = report_for(res)
    failed = [c.text for c in rep.claims if c.verdict != REPRODUCED]
    text = (
        f"**{rep.reproduced} of {len(rep.claims)} claims reproduced** on {_provenance(res)}. "
        f"Setting checks: {sum(k.holds for k in rep.checks)} of {len(rep.checks)} hold."
    )
    if failed:
        text += " Not reproduced: " + "; ".join(failed) + "."
    return Markdown(text)


def paper_table(res):
    """The paper-vs-ours table (:func:`marginlab.experiments.paper.paper_vs_ours`), styled to wrap."""
    from .paper import paper_vs_ours

    df = paper_vs_ours(res)
    return df.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap"}).hide(axis="index")
