"""Input boxes ``bounds=(lo, hi)``: the margin restricted to inputs with ``lo <= z <= hi`` (e.g. pixels in
[0, 1]): the distance from x to the nearest point of the box where another class wins.

Seed 000's margin is unconstrained l2; a box can only make the margin larger (fewer candidate points).
Methods that honour a box take it as their ``bounds`` option; this module validates it once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_bounds", "box_for"]


def check_bounds(bounds, name: str = "bounds"):
    """``None`` or ``(lo, hi)`` as float64 arrays (scalars allowed) with ``lo <= hi`` everywhere; raises
    ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"{name} must be None or a pair (lo, hi) of numbers or arrays, got {bounds!r}")
    out = []
    for k, b in enumerate(bounds):
        if hasattr(b, "detach"):
            b = b.detach().cpu().numpy()
        try:
            arr = np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}[{k}] must be a number or a numeric array, got {b!r}") from None
        if np.isnan(arr).any():
            raise ValueError(f"{name}[{k}] contains NaN")
        out.append(arr)
    lo, hi = out
    try:
        bad = np.broadcast_arrays(lo, hi)
    except ValueError:
        raise ValueError(f"{name}: lo and hi have incompatible shapes {lo.shape} and {hi.shape}") from None
    if (bad[0] > bad[1]).any():
        raise ValueError(f"{name} must satisfy lo <= hi everywhere (got lo > hi at "
                         f"{int((bad[0] > bad[1]).sum())} positions)")
    return lo, hi


def box_for(bounds, prob):
    """The box as flattened float64 arrays (D,) for the problem's inputs, after checking that it fits
    the input shape, that the margin is taken at the input (layer 0) and that every sample lies inside."""
    if bounds is None:
        return None
    lo, hi = bounds
    if prob.layer != 0:
        raise ValueError(f"bounds apply to the input (layer 0), not to hidden layer {prob.layer}")
    try:
        lo = np.broadcast_to(lo, prob.shape).reshape(-1)
        hi = np.broadcast_to(hi, prob.shape).reshape(-1)
    except ValueError:
        raise ValueError(f"bounds must be scalars or arrays broadcastable to the input shape {prob.shape}, "
                         f"got shapes {np.shape(lo)} and {np.shape(hi)}") from None
    x = prob.x0.detach().double().cpu().numpy()
    outside = ((x < lo) | (x > hi)).any(1)
    if outside.any():
        raise ValueError(f"X must lie inside bounds=(lo, hi): {int(outside.sum())} of {len(x)} samples are "
                         f"outside (first: sample {int(np.argmax(outside))})")
    return lo.astype(np.float64), hi.astype(np.float64)
