"""Recipe 1 of seed 001 (§3.2): train a bias-free MLP to a chosen Frobenius-normalized margin.

① inputs projected onto the sphere of radius √d₀ (:func:`marginlab.data.project_sphere`); ② the rescaled
square loss to α_i·e_{y_i} (:class:`~.margin_losses.RescaledSquareLoss`); ③ ||W_l||_F = √d_l after every
step (Nero's unit-norm rows, plus :class:`~.optim.FrobeniusProjection` so any optimizer works). At zero loss
the Frobenius-normalized margin γ·∏_l √d_l/||W_l||_F·√d₀/||x|| of sample i equals α_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_int

__all__ = ["recipe1", "Recipe1Result"]


@dataclass
class Recipe1Result:
    """``history`` of the run, the projected training set ``train``, the target ``alpha`` and the achieved
    Frobenius-normalized margins on ``train`` (numpy, one per sample)."""

    history: object
    train: object
    alpha: object
    margins: np.ndarray


@torch.no_grad()
def _frobenius_margins(model, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Frobenius-normalized output margins (seed 001 Def. 3.1); a private helper for Recipe 1 checks (the
    public measurement lives in :mod:`marginlab.margins`)."""
    f = model(X)
    fy = f.gather(1, y[:, None])[:, 0]
    gamma = fy - f.scatter(1, y[:, None], -float("inf")).amax(1)
    scale = torch.ones((), dtype=f.dtype, device=f.device)
    for m in model.weight_layers():
        scale = scale * (m.weight.shape[0] ** 0.5) / m.weight.norm()
    xf = X.reshape(len(X), -1)
    return gamma * scale * (xf.shape[1] ** 0.5) / xf.norm(dim=1)


def recipe1(model, train, alpha=1.0, *, epochs: int = 200, optimizer="nero", lr: float = 0.01,
            optimizer_options: dict | None = None, batch_size: int | None = None, project_inputs: bool = True,
            seed: int = 0, device="auto", progress: bool = False, **fit_kwargs) -> Recipe1Result:
    """Train ``model`` (bias-free) on ``train`` so that every training sample's Frobenius-normalized margin is
    ``alpha`` (a scalar or one value per sample), following Recipe 1 (module docstring). Full batch by
    default, Nero by default (seed 001 A.5); other ``fit`` options pass through. The model is trained in
    place; returns a :class:`Recipe1Result`."""
    from ..data import project_sphere
    from .fit import fit
    from .margin_losses import RescaledSquareLoss
    from .optim import FrobeniusProjection

    if any(getattr(m, "bias", None) is not None for m in model.weight_layers()):
        raise ValueError("Recipe 1 needs a bias-free network (e.g. MLP(..., bias=False)): the normalized "
                         "margin relies on the network being positively homogeneous in its weights")
    epochs = check_int(epochs, "epochs", min_value=1)
    data = project_sphere(train) if project_inputs else train
    bs = len(data) if batch_size is None else check_int(batch_size, "batch_size", min_value=1)
    constraints = [FrobeniusProjection()] + list(fit_kwargs.pop("constraints", ()))
    loss = RescaledSquareLoss(alpha)
    history = fit(model, data, epochs=epochs, loss=loss, optimizer=optimizer, lr=lr,
                  optimizer_options=optimizer_options, batch_size=bs, seed=seed, device=device,
                  constraints=constraints, progress=progress, **fit_kwargs)
    X, y = data.tensors(model.device)
    X = X.reshape((len(X),) + tuple(model.input_shape))
    margins = _frobenius_margins(model, X, y).cpu().numpy()
    return Recipe1Result(history=history, train=data, alpha=loss.alpha, margins=margins)
