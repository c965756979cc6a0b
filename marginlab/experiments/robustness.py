"""Robust accuracy under small perturbations: FGSM, iterative FGSM, l2 PGD and Gaussian noise.

Used for seed 002 Table 1 (l2 PGD at several eps) and seed 003/004's robustness curves (FGSM, iterative
FGSM, Gaussian noise). Whole batches are attacked at once; inputs are not clipped to a pixel range because
the margins of this package are measured in the unbounded input space as well.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_choice, check_float, check_int

__all__ = ["ATTACKS", "perturb", "robust_accuracy"]

ATTACKS = ("fgsm", "ifgsm", "pgd", "noise")


def _grad(model, x, y):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def _l2_normalize(g):
    flat = g.reshape(len(g), -1)
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).reshape(g.shape)


def _l2_project(delta, eps):
    flat = delta.reshape(len(delta), -1)
    scale = (eps / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale).reshape(delta.shape)


def perturb(model, X, y, attack: str, eps: float, *, steps: int = 10, seed: int = 0) -> torch.Tensor:
    """Perturbed copies of ``X`` (tensor on the model's device): ``fgsm`` / ``ifgsm`` in l_inf, ``pgd`` in l2
    (step 2.5 eps / steps, Madry et al.), ``noise``: X + eps * N(0, I) drawn from ``seed``."""
    attack = check_choice(attack, "attack", ATTACKS)
    eps = check_float(eps, "eps", min_value=0.0)
    steps = check_int(steps, "steps", min_value=1)
    if eps == 0:
        return X.detach().clone()
    if attack == "noise":
        gen = torch.Generator(device="cpu").manual_seed(seed)
        return X + eps * torch.randn(X.shape, generator=gen, dtype=X.dtype).to(X.device)
    if attack == "fgsm":
        return (X + eps * _grad(model, X, y).sign()).detach()
    alpha = 2.5 * eps / steps
    delta = torch.zeros_like(X)
    for _ in range(steps):
        g = _grad(model, X + delta, y)
        if attack == "ifgsm":
            delta = (delta + alpha * g.sign()).clamp(-eps, eps)
        else:
            delta = _l2_project(delta + alpha * _l2_normalize(g), eps)
    return (X + delta).detach()


def robust_accuracy(
    model, X, y, *, attacks=("fgsm",), eps=(0.1,), steps: int = 10, seed: int = 0, batch_size: int = 512
):
    """Tidy DataFrame ``attack, eps, accuracy, n``: accuracy of ``model`` on perturbed ``X`` (numpy or
    tensor)."""
    import pandas as pd

    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    X = torch.as_tensor(np.asarray(X), dtype=dtype).reshape((-1,) + tuple(model.input_shape))
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for attack in attacks:
            for e in eps:
                correct = 0
                for i in range(0, len(X), batch_size):
                    xb, yb = X[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev)
                    xa = perturb(model, xb, yb, attack, float(e), steps=steps, seed=seed + i)
                    with torch.no_grad():
                        correct += int((model(xa).argmax(1) == yb).sum())
                rows.append(
                    {"attack": attack, "eps": float(e), "accuracy": correct / max(len(X), 1), "n": len(X)}
                )
    finally:
        model.train(was_training)
    return pd.DataFrame(rows)
