"""Notes shared by the reports: the scale a run was made at, and gradient masking in robustness curves."""

from __future__ import annotations

__all__ = ["scale_note", "masking_note"]


def scale_note(res) -> str:
    """The run's name, model count and training-set sizes (a ``-medium`` / ``-quick`` name says its size)."""
    u = res.units
    sizes = sorted(set(u["n_train"].dropna().astype(int))) if "n_train" in u else []
    return f"run {res.spec.name!r}: {len(u)} models" + (
        f", training sets of {sizes} samples" if sizes else ""
    )


def masking_note(curves, threshold: float = 0.05) -> str | None:
    """The models whose attack gradients were exactly zero for more than ``threshold`` of the samples: their
    robust accuracy is overstated (gradient masking, see :mod:`marginlab.attacks`)."""
    if "zero_grad" not in curves or not (curves["zero_grad"] > threshold).any():
        return None
    bad = curves[curves["zero_grad"] > threshold]
    keys = [k for k in ("corruption", "n_train", "variant") if k in bad]
    worst = bad.groupby(keys + ["attack", "loss"], dropna=False)["zero_grad"].max().reset_index()
    parts = [
        " ".join(str(r[k]) for k in keys) + f" {r['attack']} ({r['loss']} loss): {r['zero_grad']:.0%}"
        for _, r in worst.iterrows()
    ]
    return "gradient masking: zero attack gradients for " + "; ".join(parts)
