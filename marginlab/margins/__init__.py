"""Margins: distance of each sample to the nearest decision boundary, and related quantities.

One entry point, :func:`compute_margins`, over a registry of method objects that all take the same
arguments and return the same :class:`MarginResult` (seed 000 §3):

``"batched"`` (default)  all (sample, class) pairs solved together; verified exact boundary points
``"nlopt"``              seed 000's AUGLAG + CCSAQ reference (per pair, processes via joblib)
``"linearized"``         first-order distance |f_i - f_j| / ||grad f_i - grad f_j||_q (seeds 003/004)
``"deepfool"``           batched untargeted DeepFool, projected onto the boundary
``"interpolation"``      boundary on the segment to the nearest different-class reference sample
``"random_directions"``  mean of bisection distances along random directions (Somepalli et al.)
``"lipschitz"``          seed 002's sampled local-Lipschitz estimate (Thm 2, Eq. 3)
``"crown"``              certified lower bound (linear relaxations, any supported activation)
``"mip"``                proved global margin of ReLU networks (big-M MIQP/MILP, SCIP)

Other helpers: :func:`output_margin`, :func:`normalized_margins` (seed 001 Def. 3.1/3.2) and
:func:`maximum_margin` (seed 000 Eq. 4). Heavy optional dependencies (nlopt, joblib, dask) are imported
only when the corresponding method runs.
"""

from __future__ import annotations

import importlib

from .result import MarginResult

__all__ = [
    "MarginResult", "compute_margins", "get_method", "available_methods", "METHODS", "BatchedSolver",
    "NloptSolver", "Linearized",
    "DeepFool", "Interpolation", "RandomDirections", "LipschitzEstimate", "CrownBound", "MipSolver",
    "output_margin",
    "normalized_margins", "frobenius_normalized_margin", "spectrally_normalized_margin",
    "spectral_complexity",
    "maximum_margin",
]

# method name -> (module, class)
METHODS = {
    "batched": ("batched", "BatchedSolver"),
    "nlopt": ("nlopt", "NloptSolver"),
    "linearized": ("linearized", "Linearized"),
    "deepfool": ("deepfool", "DeepFool"),
    "interpolation": ("interpolation", "Interpolation"),
    "random_directions": ("interpolation", "RandomDirections"),
    "lipschitz": ("bounds", "LipschitzEstimate"),
    "crown": ("bounds", "CrownBound"),
    "mip": ("mip", "MipSolver"),
}

_LAZY = {cls: mod for mod, cls in METHODS.values()}
_LAZY.update({
    "output_margin": "normalized", "normalized_margins": "normalized",
    "frobenius_normalized_margin": "normalized",
    "spectrally_normalized_margin": "normalized", "spectral_complexity": "normalized",
    "maximum_margin": "nearest",
})


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_method(method, **options):
    """A configured method object from its name (or the object itself, returned unchanged)."""
    from .base import MarginMethod

    if isinstance(method, MarginMethod):
        if options:
            raise ValueError("method options cannot be given together with a configured method object")
        return method
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)} or a MarginMethod "
                         f"object; got {method!r}")
    mod, cls = METHODS[method.lower()]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)(**options)


def available_methods(*, p=2, kinds=None, interactive=None, have=()) -> list[str]:
    """Names of the registered methods that can run with norm ``p``, of the given ``kinds`` (e.g.
    ``("exact", "upper")``), ``interactive`` ones only if True, and whose required arguments are among
    ``have`` (e.g. ``("reference",)``). The apps offer exactly these."""
    from ._core import check_p

    p = check_p(p)
    out = []
    for name, (mod, cls_name) in METHODS.items():
        cls = getattr(importlib.import_module(f"{__name__}.{mod}"), cls_name)
        if cls.supported_p is not None and p not in cls.supported_p:
            continue
        if kinds is not None and cls.kind not in kinds:
            continue
        if interactive is not None and bool(cls.interactive) != bool(interactive):
            continue
        if not set(cls.needs) <= set(have):
            continue
        out.append(name)
    return out


def compute_margins(model, X, *, method="batched", y=None, layer=0, p=2, skip_misclassified=False,
                    signed=False, classes=None, device=None, client=None, certify=False,
                    **method_options) -> MarginResult:
    """Distance of each sample to the nearest decision boundary of ``model`` (seed 000 Eq. 1-3).

    Parameters
    ----------
    model : MarginNet or torch.nn.Module
        Classifier returning logits (n, K); it is evaluated in eval mode and not modified.
    X : tensor or array (n, *model.input_shape)
        Inputs (a single sample without batch dimension is accepted).
    method : str or MarginMethod
        See the module docstring; ``method_options`` configure it (e.g. ``max_iter``, ``tol``).
    y : array (n,), optional
        Labels: needed for ``skip_misclassified`` and ``signed``; stored in the result.
    layer : int or str
        Representation to measure at: 0 is the input; k > 0 solves on ``model.tail(k)`` at
        ``model.activations(X, k)`` (hidden-layer margin).
    p : float >= 1 or "inf"
        Norm of the distance (exact solvers: p = 2).
    skip_misclassified : bool
        Do not solve samples with ``pred != y`` (seed 000); they get ``skipped=True`` and NaN.
    signed : bool
        Negate the margin of misclassified samples (seed 002).
    classes : sequence of int, optional
        Only search boundaries with these classes j (default: all).
    device : str or torch.device, optional
        Where to solve (default: the model's device).
    client : dask.distributed.Client, optional
        Solve the chunks on a Dask cluster; the result equals the local one.
    certify : bool
        Also prove a lower bound on each margin (linear relaxations, :mod:`.certify`): fills
        ``result.lower`` and ``result.certified`` (``lower >= margin * (1 - 1e-4)``); needs a network of
        Linear/Conv/pooling layers and supported activations (ReLU, leaky ReLU, ELU, tanh, sigmoid, GELU,
        softplus), else ``ValueError``.

    Returns
    -------
    MarginResult
    """
    solver = get_method(method, **method_options)
    return solver(model, X, y=y, layer=layer, p=p, skip_misclassified=skip_misclassified, signed=signed,
                  classes=classes, device=device, client=client, certify=certify)
