"""Lower bounds on the margin.

* :class:`LipschitzEstimate` — seed 002 §4.1, Thm 2 (Hein & Andriushchenko), Eq. 3:
  d(x) >= min{ min_k (f_i - f_k)(x) / L_k, r } with L_k the local Lipschitz constant of f_i - f_k on the
  ball B(x, r). L_k is *estimated* as the largest gradient dual norm over random points of the ball, so the
  result is an estimate, not a guarantee (seed 002 used r = 5 and 50 x 1024 samples).
* :class:`CrownBound` — a *certified* lower bound for ReLU MLPs: linear relaxation of every unstable ReLU
  (CROWN, Zhang et al. 2018) bounds f_i - f_j over the l_p ball, and a bisection finds the largest radius
  at which every f_i - f_j stays positive. Computed in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import check_float, check_int
from ._core import assemble, dual_norm, lp_norm, pair_index
from .base import MarginMethod

__all__ = ["LipschitzEstimate", "CrownBound"]


def _bound_result(prob, rows, p, skipped, signed, name, S, I, J, dist, tol, info=None):
    P = len(S)
    return assemble(prob, method=name, p=p, tol=tol, S=S, I=I, J=J, dist=dist,
                    points=np.full((P, prob.dim), np.nan),
                    residual=np.full(P, np.nan), top2=np.zeros(P, bool), ok=np.zeros(P, bool),
                    iters=np.ones(P), evals=np.ones(P), seconds=0.0, skipped=skipped, signed=signed,
                    estimate=True, info=info)


class LipschitzEstimate(MarginMethod):
    """Seed 002's sampled local-Lipschitz estimate (``radius`` r, ``n_samples`` points per sample)."""

    name = "lipschitz"
    kind = "estimate"
    estimate = True

    def __init__(self, *, radius: float = 5.0, n_samples: int = 1024, batch: int = 256, seed: int = 0,
                 tol: float = 1e-6, chunk_size: int = 64):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.radius = check_float(radius, "radius", min_value=0.0, min_inclusive=False)
        self.n_samples = check_int(n_samples, "n_samples", min_value=1)
        self.batch = check_int(batch, "batch", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)

    def _solve(self, prob, rows, p, skipped, signed):
        S, I, J = pair_index(prob, rows)
        K, D, n = prob.n_classes, prob.dim, len(rows)
        dev = prob.device
        q = dual_norm(p)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        x = prob.x0[torch.as_tensor(rows, device=dev, dtype=torch.long)]
        pred = torch.as_tensor(prob.pred[rows], device=dev)
        L = torch.zeros((n, K), device=dev, dtype=x.dtype)
        for start in range(0, self.n_samples, self.batch):
            m = min(self.batch, self.n_samples - start)
            u = torch.randn((n, m, D), generator=gen).to(dev, x.dtype)
            # uniform in the l2 ball (seed 002 samples the ball of radius r around x)
            rad = self.radius * torch.rand((n, m, 1), generator=gen).to(dev, x.dtype) ** (1.0 / D)
            z = (x[:, None, :] + rad * u / torch.linalg.vector_norm(u, dim=2, keepdim=True)).reshape(n * m, D)
            z.requires_grad_(True)
            with torch.enable_grad():
                lg = prob.f(z)
                jac = torch.stack([torch.autograd.grad(lg[:, k].sum(), z, retain_graph=k < K - 1)[0]
                                   for k in range(K)], 1).reshape(n, m, K, D)
            gi = jac[torch.arange(n, device=dev), :, pred]  # (n, m, D)
            w = gi[:, :, None, :] - jac
            L = torch.maximum(L, lp_norm(w.reshape(-1, D), q).reshape(n, m, K).amax(1))
        pos = {int(s): k for k, s in enumerate(rows)}
        ridx = np.asarray([pos[int(s)] for s in S], dtype=np.int64)
        lg0 = prob.logits.double().cpu().numpy()
        gap = lg0[S, I] - lg0[S, J]
        Lp = L.double().cpu().numpy()[ridx, J]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.minimum(np.where(Lp > 0, gap / Lp, np.inf), self.radius)
        return _bound_result(prob, rows, p, skipped, signed, self.name, S, I, J, d, self.tol,
                             {"radius": self.radius, "n_samples": self.n_samples})


def _relu_mlp_layers(net):
    """Linear layers of a Linear/ReLU chain as float64 (W, b) pairs; raise for anything else."""
    out = []
    mods = [m for m in net.modules() if not list(m.children())]
    for m in mods:
        if isinstance(m, nn.Linear):
            b = m.bias.detach() if m.bias is not None else torch.zeros(m.out_features)
            out.append((m.weight.detach().double().cpu(), b.double().cpu()))
        elif isinstance(m, (nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout)):
            continue
        else:
            raise ValueError("CrownBound supports ReLU MLPs only (Linear/ReLU layers), "
                             f"found {type(m).__name__}")
    relus = sum(isinstance(m, nn.ReLU) for m in mods)
    if relus != len(out) - 1:
        raise ValueError("CrownBound needs a ReLU between consecutive Linear layers")
    return out


def crown_lower(layers, x0, eps, C, p):
    """Certified lower bounds of C f(x) over {||x - x0||_p <= eps} (n, S), CROWN back-substitution."""
    q = dual_norm(p)
    bounds = []  # pre-activation (l, u) of each hidden layer

    def back(A, upto):
        # A: (n, S, d_upto) coefficients on the pre-activation of linear layer `upto` (0-based)
        bias = torch.zeros(A.shape[:2], dtype=A.dtype)
        for k in range(upto, -1, -1):
            W, b = layers[k]
            bias = bias + A @ b
            A = A @ W
            if k > 0:
                l, u = bounds[k - 1]
                act = l >= 0
                uns = (l < 0) & (u > 0)
                s = torch.where(uns, u / (u - l).clamp(min=1e-300), act.double())
                alpha = torch.where(uns, (u > -l).double(), act.double())
                Ap, An = A.clamp(min=0), A.clamp(max=0)
                bu = torch.where(uns, -s * l, torch.zeros_like(l))
                bias = bias + (An * bu[:, None, :]).sum(2)
                A = Ap * alpha[:, None, :] + An * s[:, None, :]
        return ((A @ x0[:, :, None]).squeeze(2)
                - eps[:, None] * lp_norm(A.reshape(-1, A.shape[2]), q).reshape(A.shape[:2]) + bias)

    n = x0.shape[0]
    for k in range(len(layers) - 1):
        d = layers[k][0].shape[0]
        eye = torch.eye(d, dtype=torch.float64).expand(n, d, d)
        lo = back(eye, k)
        up = -back(-eye, k)
        bounds.append((lo, up))
    return back(C, len(layers) - 1)


class CrownBound(MarginMethod):
    """Certified l_p lower bound for ReLU MLPs: bisection (``steps``) on the radius certified by CROWN,
    between 0 and a verified DeepFool upper bound."""

    name = "crown"
    kind = "lower"
    estimate = True

    def __init__(self, *, steps: int = 20, tol: float = 1e-6, chunk_size: int = 8):
        super().__init__(tol=tol, chunk_size=chunk_size)
        self.steps = check_int(steps, "steps", min_value=1)

    def _solve(self, prob, rows, p, skipped, signed):
        from .deepfool import DeepFool

        layers = _relu_mlp_layers(prob.net)
        S, I, J = pair_index(prob, rows)
        K = prob.n_classes
        x0 = prob.x0[torch.as_tensor(rows, dtype=torch.long, device=prob.device)].double().cpu()
        n = len(rows)
        pred = prob.pred[rows]
        C = torch.zeros((n, K, K), dtype=torch.float64)
        C[torch.arange(n), :, torch.as_tensor(pred)] = 1.0
        C = C - torch.eye(K, dtype=torch.float64)[None]
        others = torch.ones((n, K), dtype=torch.bool)
        others[torch.arange(n), torch.as_tensor(pred)] = False
        cls_mask = torch.zeros(K, dtype=torch.bool)
        cls_mask[torch.as_tensor(prob.classes)] = True
        others &= cls_mask[None]
        up = DeepFool(tol=self.tol)._solve(prob, rows, p, skipped, False).margin[rows]
        hi = torch.as_tensor(np.where(np.isfinite(up), up, 10.0 * float(x0.abs().max() + 1)))
        lo = torch.zeros(n, dtype=torch.float64)
        for _ in range(self.steps):
            mid = 0.5 * (lo + hi)
            lb = crown_lower(layers, x0, mid, C, p)
            ok = torch.where(others, lb > 0, torch.ones_like(lb, dtype=torch.bool)).all(1)
            lo = torch.where(ok, mid, lo)
            hi = torch.where(ok, hi, mid)
        pos = {int(s): k for k, s in enumerate(rows)}
        d = lo.numpy()[np.asarray([pos[int(s)] for s in S], dtype=np.int64)]
        return _bound_result(prob, rows, p, skipped, signed, self.name, S, I, J, d, self.tol,
                             {"certified": True})
