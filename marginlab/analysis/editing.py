"""Which margins a point edit leaves stale, and the margins after an edit with only those re-solved.

A sample's margin (seed 000 Eq. 1-3) is the distance from that sample's input to the decision boundary of
the model: it depends on the model's weights and on the sample alone (on its label only through the sign,
``signed=True``, or ``skip_misclassified``). So, for an edit (:mod:`marginlab.data.edit`):

- **model frozen** (the weights are those the margins were computed with: training paused, or the edit
  applied between two ticks before any further step): the stale margins are exactly those of the rows the
  edit ``changed`` (added, moved or relabelled samples). A deleted sample's margin is dropped; every other
  margin, boundary point and status carries over unchanged, and so do the margins of samples outside the
  edited set (the test set).
- **model retrained** (any optimizer step since the margins were computed, which is what training on the
  edited set does): the boundary itself moved, so every margin, train and test, is stale and nothing
  carries over.

:func:`model_fingerprint` tells the two cases apart (the digest of the weights the margins were computed
with against the current one).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["model_fingerprint", "stale_rows", "update_margins"]


def model_fingerprint(model) -> str:
    """A short digest of ``model``'s parameters and buffers (names, shapes, dtypes, values): equal digests
    mean the same function, so margins computed at one are valid at the other."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        a = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(a.shape)}:{a.dtype};".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes: any dtype, exact
    return h.hexdigest()


def _check_edited(edited):
    from ..data.edit import Edited

    if not isinstance(edited, Edited):
        raise TypeError("edited must be the Edited returned by marginlab.data.edit, "
                        f"got {type(edited).__name__}")
    return edited


def stale_rows(edited, *, model_changed: bool) -> np.ndarray:
    """Rows of ``edited.dataset`` whose margins must be (re-)solved: the ``changed`` rows when the model is
    frozen, every row when it changed (see the module docstring)."""
    edited = _check_edited(edited)
    if not isinstance(model_changed, (bool, np.bool_)):
        raise TypeError(f"model_changed must be True or False, got {model_changed!r}")
    if model_changed:
        return np.arange(len(edited.source), dtype=np.int64)
    return np.flatnonzero(edited.changed).astype(np.int64)


def update_margins(model, old, edited, *, model_changed: bool = False, **compute_options):
    """``(margins, solved)``: the margins of ``edited.dataset`` under ``model``, re-solving only the
    :func:`stale_rows` (``solved``) and carrying the others over from ``old`` (the margins of the dataset
    before the edit, at the same weights when ``model_changed`` is False).

    ``compute_options`` go to :func:`marginlab.margins.compute_margins` and must be those ``old`` was
    computed with (method, p, layer, signed, ...); labels are passed when ``old`` has them. For margins over
    train and test together, pass the train part and concatenate the (unchanged) test part after it."""
    from ..margins import MarginResult, compute_margins

    edited = _check_edited(edited)
    if not isinstance(old, MarginResult):
        raise TypeError(f"old must be a MarginResult, got {type(old).__name__}")
    if len(old) != edited.n_before:
        raise ValueError(f"old holds {len(old)} margins, the edited dataset had {edited.n_before} rows "
                         "before the edit: pass the margins of exactly that dataset")
    solve = stale_rows(edited, model_changed=model_changed)
    ds = edited.dataset
    keep = np.setdiff1d(np.arange(len(ds)), solve)
    parts = [old.subset(edited.source[keep])]
    if len(solve):
        y = ds.y[solve] if old.label is not None else None
        new = compute_margins(model, ds.X[solve], y=y, **compute_options)
        for attr in ("method", "p", "layer", "estimate"):
            if getattr(new, attr) != getattr(old, attr):
                raise ValueError(f"compute_options give {attr}={getattr(new, attr)!r} but old has "
                                 f"{getattr(old, attr)!r}: solve the edited rows like the others")
        parts.append(new)
    merged = MarginResult.concat(parts) if len(parts) > 1 else parts[0]
    position = np.empty(len(ds), np.int64)
    position[keep] = np.arange(len(keep))
    position[solve] = len(keep) + np.arange(len(solve))
    return merged.subset(position), solve
