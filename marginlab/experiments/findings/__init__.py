"""Does a run reproduce its paper's findings? One module per paper turns a results folder into a
:class:`Report`: every claim a stated test (an effect with a bootstrap interval and a one-sided test at
alpha = 0.05, Holm-corrected where any of several settings may show it, trends as slopes; see
:mod:`marginlab.experiments.stats`), and apart from the claims the setting checks that hold by construction.

    from marginlab.experiments.findings import report_for, load_results
    report_for(load_results("data/results/missing-margin"))      # or: marginlab findings PATH

Nothing here is tuned to pass: the tests build, for every claim, a table that contradicts it ("NOT
reproduced") and one that supports it ("reproduced").
"""

from __future__ import annotations

from pathlib import Path

from .base import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Check, Claim, Report
from .losses import load_variance, margin_losses, variance_ratio_table
from .seed000 import missing_margin
from .seed001 import normalized_margin
from .seed002 import average_margin_regularizer, min_vs_average_margin

__all__ = [
    "Report",
    "Claim",
    "Check",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "NOT_MEASURED",
    "FINDINGS",
    "report_for",
    "load_results",
    "study_of",
    "missing_margin",
    "normalized_margin",
    "min_vs_average_margin",
    "average_margin_regularizer",
    "margin_losses",
    "variance_ratio_table",
    "load_variance",
]

#: built-in study name -> the function that checks its paper's claims
FINDINGS = {
    "missing-margin": missing_margin,
    "missing-margin-cifar10": missing_margin,
    "normalized-margin": normalized_margin,
    "min-vs-average-margin": min_vs_average_margin,
    "average-margin-regularizer": average_margin_regularizer,
    "margin-losses": margin_losses,
}
#: name suffixes of a built-in study run at another size (smoke, medium): the same claims apply
SIZE_SUFFIXES = ("-quick", "-medium")


def study_of(name: str) -> str | None:
    """The built-in study a spec name belongs to (``margin-losses-medium`` -> ``margin-losses``), or None."""
    for suffix in SIZE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name if name in FINDINGS else None


def report_for(res) -> Report | None:
    """The :class:`Report` of a run of a built-in study (any size), ``None`` for a spec of another name.
    Specs are matched by name, so a user's own spec keeps its own name to opt out."""
    study = study_of(res.spec.name)
    return None if study is None else FINDINGS[study](res)


def load_results(path):
    """The :class:`~marginlab.experiments.Results` of a finished results folder (a runner's output or a
    shipped ``data/results/<study>`` folder); ``ValueError`` naming ``path`` when it is not one."""
    from ..results import Results

    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"path must be a results folder, got {str(path)!r} (not a folder)")
    res = Results(p)
    if not res.complete:
        raise ValueError(f"path: {p} has no units.parquet: the run has not finished every unit")
    return res
