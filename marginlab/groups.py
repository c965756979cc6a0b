"""Sample groups, once: seed 000's ``sample-type:model-type`` names and their colours.

Seed 000 §4.4 (Table 1, Figs. 3-5) groups the samples of a model trained on corrupted data by whether the
sample itself was corrupted (``clean`` / ``corrupt``) and by the model's corruption (``clean``,
``label-corrupted``, ``input-corrupted``); ``clean:clean`` is every sample of a clean model. ``viz`` (figures)
and ``experiments`` (findings) both read the groups from here, so neither imports the other.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MODEL_TYPES", "GROUP_COLORS", "sample_groups", "group_labels", "group_color", "group_dash"]

# corruption kind (marginlab.corruption, or a study's name for it) -> model type in seed 000's names
MODEL_TYPES = {
    None: "clean",
    "none": "clean",
    "label": "label-corrupted",
    "gaussian": "input-corrupted",
    "random": "random-labels",
}
GROUP_COLORS = {"clean": "#2CA02C", "corrupt": "#D62728"}  # seed 000 Figs. 3-5: green clean, red corrupt
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def sample_groups(corrupted, corruption=None) -> np.ndarray:
    """Seed 000 group name per sample: ``clean:clean`` for a clean model, else ``clean:<model>`` /
    ``corrupt:<model>`` with ``<model>`` e.g. ``label-corrupted`` or ``input-corrupted``."""
    if corruption not in MODEL_TYPES:
        raise ValueError(f"corruption must be one of {list(MODEL_TYPES)}, got {corruption!r}")
    corrupted = np.asarray(corrupted, dtype=bool)
    model = MODEL_TYPES[corruption]
    out = np.full(corrupted.shape, f"clean:{model}", dtype=object)
    if model != "clean":
        out[corrupted] = f"corrupt:{model}"
    elif corrupted.any():
        raise ValueError("samples are marked corrupted but the model is clean (corruption=None)")
    return out


def group_labels(df) -> np.ndarray:
    """Group names of a tidy samples table (columns ``corruption`` and ``corrupted``); unknown corruption
    kinds keep their own name as the model type."""
    model = df["corruption"].map(lambda c: MODEL_TYPES.get(c, c))
    sample = np.where(df["corrupted"].to_numpy(bool), "corrupt", "clean")
    return sample + ":" + model.to_numpy(str)


def group_color(group: str) -> str:
    """Red for corrupted samples, green for clean ones (seed 000's figures)."""
    return GROUP_COLORS["corrupt" if str(group).startswith("corrupt") else "clean"]


def group_dash(group: str) -> str:
    """A line dash per model type, so the same sample type under different corruptions stays apart."""
    model = str(group).split(":")[-1]
    types = list(dict.fromkeys(MODEL_TYPES.values()))
    return _DASHES[types.index(model) % len(_DASHES)] if model in types else "solid"
