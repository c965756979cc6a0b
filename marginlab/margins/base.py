"""``MarginMethod``: the small configured object every margin method is (foolbox style).

A method is configured once (``BatchedSolver(max_iter=200)``) and called with the same arguments as
every other method, ``method(model, X, y=..., layer=..., p=...)``, returning a :class:`MarginResult`.
Chunking (memory bound) and Dask distribution live here, so every method gets them.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ._core import Timer, check_p, check_tol, prepare, skip_mask
from .result import MarginResult

__all__ = ["MarginMethod"]


class MarginMethod:
    """Base class. Subclasses set ``name``, ``supported_p`` (None: any p) and implement ``_solve``.

    Parameters common to all methods
    --------------------------------
    tol : float > 0
        Verification tolerance: a boundary point verifies when ``|f_i - f_j| <= tol * max(1, |f_i|, |f_j|)``
        in float64 (absolute below logit scale 1, relative above) and i, j are the top-two classes there.
    chunk_size : int >= 1
        Samples per chunk (bounds memory: a chunk holds ``chunk_size * (K - 1)`` pairs).
    """

    name = "base"
    supported_p: tuple | None = None
    estimate = False
    # what the method is and needs, declared once (the apps and the contract tests read these):
    # kind: "exact" (searches the nearest boundary point), "upper" (verified boundary points, not the
    # nearest), "estimate" (an approximate distance), "lower" (a bound below the margin)
    kind = "exact"
    needs: tuple = ()          # constructor arguments without which it cannot run, e.g. ("reference",)
    interactive = True         # fast enough to answer a click in an app (well under a second per sample)

    def __init__(self, *, tol: float = 1e-6, chunk_size: int = 512):
        self.tol = check_tol(tol)
        self.chunk_size = check_int(chunk_size, "chunk_size", min_value=1)

    def __repr__(self):
        keys = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({keys})"

    def __call__(self, model, X, *, y=None, layer=0, p=2, skip_misclassified=False, signed=False,
                 classes=None, device=None, client=None, certify=False) -> MarginResult:
        """Margins of ``model`` at inputs ``X`` (n, *model.input_shape); see :func:`compute_margins`."""
        p = check_p(p)
        if not isinstance(certify, (bool, np.bool_)):
            raise TypeError(f"certify must be True or False, got {certify!r}")
        if self.supported_p is not None and p not in self.supported_p:
            raise ValueError(f"p={p:g} is not supported by method {self.name!r} (supported: "
                             f"{', '.join(f'{q:g}' for q in self.supported_p)}); use method='linearized' "
                             f"or 'deepfool' for other norms")
        if client is not None:
            return self._dask(client, model, X, y=y, layer=layer, p=p, skip_misclassified=skip_misclassified,
                              signed=signed, classes=classes, device=device, certify=certify)
        prob = prepare(model, X, y=y, layer=layer, classes=classes, device=device)
        if certify:
            from .certify import check_certifiable

            check_certifiable(prob.net)
        skipped = skip_mask(prob, skip_misclassified)
        parts = []
        for start in range(0, prob.n, self.chunk_size):
            rows = np.arange(start, min(prob.n, start + self.chunk_size))
            parts.append(self._run_chunk(prob, rows, p, skipped, signed, certify))
        return parts[0] if len(parts) == 1 else MarginResult.concat(parts)

    def _run_chunk(self, prob, rows, p, skipped, signed, certify=False):
        from ._core import Problem

        sub = Problem(net=prob.net, x0=prob.x0[rows], shape=prob.shape, n_classes=prob.n_classes,
                      layer=prob.layer, logits=prob.logits[rows], pred=prob.pred[rows],
                      label=None if prob.label is None else prob.label[rows], classes=prob.classes,
                      device=prob.device, dtype=prob.dtype)
        sk = skipped[rows]
        with Timer() as tm:
            res = self._solve(sub, np.nonzero(~sk)[0], p, sk, signed)
            if certify:  # proved lower bounds (linear relaxations); the box is the method's, if it has one
                from .certify import certify_result

                certify_result(sub, res, p, box=getattr(self, "bounds", None))
        res.seconds = np.where(sk, 0.0, tm.seconds / max(1, int((~sk).sum())))
        return res

    def _solve(self, prob, rows, p, skipped, signed) -> MarginResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def _dask(self, client, model, X, **kw) -> MarginResult:
        """Run the same chunks on a ``dask.distributed.Client``; chunk boundaries match the local run, and
        each chunk is solved independently, so the result equals the local one."""
        import torch

        Xn = X.detach().cpu() if isinstance(X, torch.Tensor) else np.asarray(X)
        if tuple(Xn.shape) == tuple(getattr(model, "input_shape", (None,))):
            Xn = Xn[None]  # a single sample without batch dimension: chunk along samples, not features
        n = Xn.shape[0]
        y = kw.pop("y")
        model_f = client.scatter(model, broadcast=True)
        futures = []
        for start in range(0, n, self.chunk_size):
            sl = slice(start, min(n, start + self.chunk_size))
            futures.append(client.submit(_call_method, self, model_f, Xn[sl],
                                         None if y is None else np.asarray(y)[sl], kw, pure=False))
        parts = client.gather(futures)
        return parts[0] if len(parts) == 1 else MarginResult.concat(parts)


def _call_method(method, model, X, y, kw):
    return method(model, X, y=y, **kw)
