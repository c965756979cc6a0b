"""Attacks: inputs perturbed within a budget eps (FGSM, iterative FGSM, l2 PGD, Gaussian noise) and the
accuracy that remains (robust accuracy).

Used for seed 002 Table 1 (l2 PGD at several eps) and seed 003/004's robustness curves (FGSM, iterative
FGSM, Gaussian noise). Whole batches are attacked at once; inputs are not clipped to a pixel range because
the margins of this package are measured in the unbounded input space as well.

The gradient attacks ascend the logit-margin loss ``max_{j != y} f_j - f_y`` (Carlini & Wagner) by default,
not cross-entropy: margin-shaping losses (large-margin, ODN) train logit gaps of 10^2-10^4, where the
cross-entropy gradient underflows to exactly zero in float32 and FGSM leaves the input unchanged (measured
here: 93 % of test samples of a large-margin MLP). That is gradient masking, not robustness. ``loss="xent"``
gives the textbook attacks; ``robust_accuracy`` reports, per attack, the fraction of samples whose first
attack gradient was exactly zero, so masking is visible either way.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_float, check_int

__all__ = ["ATTACKS", "ATTACK_LOSSES", "perturb", "robust_accuracy"]

# torch is imported where an attack runs: the experiment spec reads these names without loading it
ATTACKS = ("fgsm", "ifgsm", "pgd", "noise")
ATTACK_LOSSES = ("margin", "xent")  # what the gradient attacks ascend (module docstring)


def _grad(model, x, y, loss: str = "margin"):
    """Gradient (w.r.t. the input) of the loss the attack ascends, per sample (summed over the batch)."""
    import torch
    import torch.nn.functional as F

    x = x.detach().requires_grad_(True)
    z = model(x)
    if loss == "xent":
        value = F.cross_entropy(z, y, reduction="sum")
    else:
        own = z.gather(1, y[:, None]).squeeze(1)
        other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).amax(1)
        value = (other - own).sum()
    (g,) = torch.autograd.grad(value, x)
    return g


def _zero_fraction(g) -> float:
    return float((g.reshape(len(g), -1).abs().amax(1) == 0).float().mean()) if len(g) else 0.0


def _l2_normalize(g):
    flat = g.reshape(len(g), -1)
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).reshape(g.shape)


def _l2_project(delta, eps):
    flat = delta.reshape(len(delta), -1)
    scale = (eps / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale).reshape(delta.shape)


def perturb(
    model, X, y, attack: str, eps: float, *, steps: int = 10, seed: int = 0, loss: str = "margin",
    stats: dict | None = None,
):
    """Perturbed copies of ``X`` (tensor on the model's device): ``fgsm`` / ``ifgsm`` in l_inf, ``pgd`` in l2
    (step 2.5 eps / steps, Madry et al.), ``noise``: X + eps * N(0, I) drawn from ``seed``. Gradient attacks
    ascend ``loss`` (``margin``: the logit margin, default; ``xent``: cross-entropy). When given, ``stats``
    receives ``zero_grad``: the fraction of samples whose first gradient was exactly zero."""
    attack = check_choice(attack, "attack", ATTACKS)
    eps = check_float(eps, "eps", min_value=0.0)
    steps = check_int(steps, "steps", min_value=1)
    loss = check_choice(loss, "loss", ATTACK_LOSSES)
    import torch

    if eps == 0:
        return X.detach().clone()
    if attack == "noise":
        gen = torch.Generator(device="cpu").manual_seed(seed)
        return X + eps * torch.randn(X.shape, generator=gen, dtype=X.dtype).to(X.device)
    g = _grad(model, X, y, loss)
    if stats is not None:
        stats["zero_grad"] = _zero_fraction(g)
    if attack == "fgsm":
        return (X + eps * g.sign()).detach()
    alpha = 2.5 * eps / steps
    delta = torch.zeros_like(X)
    for i in range(steps):
        if i:
            g = _grad(model, X + delta, y, loss)
        if attack == "ifgsm":
            delta = (delta + alpha * g.sign()).clamp(-eps, eps)
        else:
            delta = _l2_project(delta + alpha * _l2_normalize(g), eps)
    return (X + delta).detach()


def robust_accuracy(
    model, X, y, *, attacks=("fgsm",), eps=(0.1,), steps: int = 10, seed: int = 0, batch_size: int = 512,
    loss: str = "margin",
):
    """Tidy DataFrame ``attack, eps, accuracy, n, loss, zero_grad``: accuracy of ``model`` on perturbed ``X``
    (numpy or tensor); ``zero_grad``: fraction of samples whose first attack gradient was exactly zero (NaN
    for noise and eps 0), a sign of gradient masking when it is not ~0."""
    import pandas as pd
    import torch

    loss = check_choice(loss, "loss", ATTACK_LOSSES)
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
                correct, zeros = 0, []
                for i in range(0, len(X), batch_size):
                    xb, yb = X[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev)
                    stats = {}
                    xa = perturb(
                        model, xb, yb, attack, float(e), steps=steps, seed=seed + i, loss=loss, stats=stats
                    )
                    if "zero_grad" in stats:
                        zeros.append(stats["zero_grad"] * len(xb))
                    with torch.no_grad():
                        correct += int((model(xa).argmax(1) == yb).sum())
                n = max(len(X), 1)
                rows.append(
                    {
                        "attack": attack,
                        "eps": float(e),
                        "accuracy": correct / n,
                        "n": len(X),
                        "loss": loss if attack != "noise" else None,
                        "zero_grad": sum(zeros) / n if zeros else float("nan"),
                    }
                )
    finally:
        model.train(was_training)
    return pd.DataFrame(rows)
