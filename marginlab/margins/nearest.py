"""Maximum margin (seed 000 Eq. 4): each sample's distance to the nearest sample with a different label.

Half of it bounds how far the decision boundary between two differently labelled samples can be pushed
from both; seed 000 compares it with measured margins on original and corrupted labels.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_int
from ._core import _as_tensor

__all__ = ["maximum_margin"]


def maximum_margin(X, y, *, reference_X=None, reference_y=None, p=2, chunk_size: int = 1024,
                   return_index=False):
    """Distance from each row of ``X`` to the nearest row of the reference set with a different label.

    Parameters
    ----------
    X : array (n, ...) ; y : int array (n,)
        Samples and their labels (original or corrupted).
    reference_X, reference_y : optional
        Reference set (default: ``X, y`` themselves).
    p : float >= 1
        Norm of the distance.
    chunk_size : int
        Rows of ``X`` per cdist block (memory bound: chunk_size x n_reference distances).
    return_index : bool
        Also return the index of the nearest different-label reference sample.
    """
    from ._core import check_p

    p = check_p(p)
    chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    A = _as_tensor(X).to(torch.float64)
    A = A.reshape(A.shape[0], -1)
    yA = np.asarray(y).ravel()
    if yA.shape[0] != A.shape[0]:
        raise ValueError(f"y must have one label per row of X ({A.shape[0]}), got {yA.shape[0]}")
    if not torch.isfinite(A).all():
        raise ValueError("X contains NaN or inf values")
    if reference_X is None:
        B, yB = A, yA
    else:
        B = _as_tensor(reference_X).to(torch.float64)
        B = B.reshape(B.shape[0], -1)
        yB = np.asarray(reference_y).ravel()
        if B.shape[1] != A.shape[1] or yB.shape[0] != B.shape[0]:
            raise ValueError("reference_X must have the feature size of X and reference_y one label per row")
    yBt = torch.as_tensor(yB)
    out = np.full(A.shape[0], np.nan)
    idx = np.full(A.shape[0], -1, np.int64)
    for s in range(0, A.shape[0], chunk_size):
        D = torch.cdist(A[s:s + chunk_size], B, p=p)
        same = torch.as_tensor(yA[s:s + chunk_size])[:, None] == yBt[None, :]
        D = D.masked_fill(same, float("inf"))
        d, k = D.min(1)
        fin = torch.isfinite(d)
        out[s:s + chunk_size] = torch.where(fin, d, torch.full_like(d, float("nan"))).numpy()
        idx[s:s + chunk_size] = torch.where(fin, k, torch.full_like(k, -1)).numpy()
    return (out, idx) if return_index else out
