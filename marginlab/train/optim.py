"""Optimizers by name and post-step constraints.

:data:`OPTIMIZERS` maps a name to ``factory(params, lr, **options) -> torch.optim.Optimizer``. A
*constraint* is a callable ``c(model)`` run under ``torch.no_grad()`` after every optimizer step (norm
projections, Recipe 1 step 3). Also here: the Nero optimizer (``"nero"``) and the Frobenius / spectral
projections.
"""

from __future__ import annotations

import math

import torch

from .._validation import check_float

__all__ = ["OPTIMIZERS", "make_optimizer", "register_optimizer", "Nero", "FrobeniusProjection",
           "SpectralProjection"]


def _sgd(params, lr, momentum=0.9, weight_decay=0.0, nesterov=False):
    momentum = check_float(momentum, "momentum", min_value=0.0, max_value=1.0, max_inclusive=False)
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _adam(params, lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8):
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps)


def _rmsprop(params, lr, alpha=0.99, momentum=0.0, weight_decay=0.0, eps=1e-8):
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, momentum=momentum, weight_decay=weight_decay,
                               eps=eps)


OPTIMIZERS: dict = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop}


def register_optimizer(name: str, factory) -> None:
    OPTIMIZERS[name] = factory


def make_optimizer(optimizer, params, lr: float, **options) -> torch.optim.Optimizer:
    """Build an optimizer from a name in :data:`OPTIMIZERS`, a ``torch.optim.Optimizer`` subclass, or a
    factory ``f(params, lr=..., **options)``. ``lr`` must be > 0."""
    lr = check_float(lr, "lr", min_value=0.0, min_inclusive=False)
    params = list(params)
    if not params:
        raise ValueError("the model has no trainable parameters")
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} (or an optimizer class); "
                             f"got {optimizer!r}")
        try:
            return OPTIMIZERS[key](params, lr, **options)
        except TypeError as exc:
            raise TypeError(f"bad option for optimizer {optimizer!r}: {exc}") from exc
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr, **options)
    if callable(optimizer):
        return optimizer(params, lr=lr, **options)
    raise TypeError("optimizer must be a name, an Optimizer class or a factory, "
                    f"got {type(optimizer).__name__}")


# -- Nero ---------------------------------------------------------------------------------------------------

def _rows(p: torch.Tensor) -> torch.Tensor:
    """A weight as a matrix with one row per neuron (conv kernels: out × in·kh·kw); a view, not a copy."""
    return p.view(p.shape[0], -1) if p.is_contiguous() else p.reshape(p.shape[0], -1)


@torch.no_grad()
def _project_neurons(p: torch.Tensor, zero_mean: bool, eps: float = 1e-12) -> None:
    """Nero's constraint set, in place: every row zero-mean (when it has > 1 entry) and of unit l2 norm."""
    W = _rows(p)
    if zero_mean and W.shape[1] > 1:
        W.sub_(W.mean(1, keepdim=True))
    W.div_(W.norm(dim=1, keepdim=True).clamp_min(eps))
    if W.data_ptr() != p.data_ptr():  # reshape had to copy: write back
        p.copy_(W.view_as(p))


class Nero(torch.optim.Optimizer):
    """Nero ("Learning by Turning", Liu et al. 2021), written from the paper's description (seed 001 §3.2).

    Every weight matrix (conv kernels: one row per output channel) is treated neuron by neuron:

    * a running average of the neuron's squared gradient norm, v ← β·v + (1−β)·||g||², bias-corrected;
    * the step w ← w − lr·s·g/√v̂, so each neuron turns by about ``lr`` radians per step whatever its gradient
      scale (s = 1 for constrained neurons, whose norm is 1; s = ||w|| for unconstrained ones);
    * then the constraint is re-applied: the row is centred (zero mean) and rescaled to unit norm, so
      ||W_l||_F = √d_l (Recipe 1 step ③) holds after every step.

    Parameters with fewer than two dimensions (biases, gains) are handled separately: no constraint, the same
    normalised step per entry, scaled by the vector's RMS (at least ``bias_floor`` so zero-initialised
    biases can move). ``constraints=False`` turns the projection off (only the normalised steps remain);
    ``zero_mean=False`` keeps unit-norm rows without centring. Weights are projected when the optimizer is
    built, so training starts on the constraint set."""

    def __init__(self, params, lr: float = 0.01, beta: float = 0.999, eps: float = 1e-8, *,
                 constraints: bool = True, zero_mean: bool = True, bias_floor: float = 0.01):
        lr = check_float(lr, "lr", min_value=0.0, min_inclusive=False)
        beta = check_float(beta, "beta", min_value=0.0, max_value=1.0, max_inclusive=False)
        eps = check_float(eps, "eps", min_value=0.0, min_inclusive=False)
        bias_floor = check_float(bias_floor, "bias_floor", min_value=0.0)
        defaults = dict(lr=lr, beta=beta, eps=eps, constraints=bool(constraints), zero_mean=bool(zero_mean),
                        bias_floor=bias_floor)
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["constraints"]:
                for p in group["params"]:
                    if p.dim() >= 2:
                        _project_neurons(p, group["zero_mean"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta, eps = group["lr"], group["beta"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    shape = (p.shape[0],) if p.dim() >= 2 else p.shape
                    state["v"] = torch.zeros(shape, dtype=p.dtype, device=p.device)
                state["step"] += 1
                correction = 1.0 - beta ** state["step"]
                v = state["v"]
                if p.dim() >= 2:
                    G = _rows(p.grad)
                    v.mul_(beta).add_(G.pow(2).sum(1), alpha=1.0 - beta)
                    denom = (v / correction).sqrt_().add_(eps)
                    W = _rows(p)
                    scale = 1.0 if group["constraints"] else W.norm(dim=1, keepdim=True).clamp_min(eps)
                    W.sub_(lr * scale * G / denom[:, None])
                    if W.data_ptr() != p.data_ptr():
                        p.copy_(W.view_as(p))
                    if group["constraints"]:
                        _project_neurons(p, group["zero_mean"])
                else:
                    g = p.grad
                    v.mul_(beta).addcmul_(g, g, value=1.0 - beta)
                    denom = (v / correction).sqrt_().add_(eps)
                    rms = p.pow(2).mean().sqrt().clamp_min(group["bias_floor"]) if p.numel() else 1.0
                    p.sub_(lr * rms * g / denom)
        return loss


def _nero(params, lr, beta=0.999, eps=1e-8, constraints=True, zero_mean=True, bias_floor=0.01):
    return Nero(params, lr=lr, beta=beta, eps=eps, constraints=constraints, zero_mean=zero_mean,
                bias_floor=bias_floor)


OPTIMIZERS["nero"] = _nero


# -- norm projections (post-step constraints) ---------------------------------------------------------------

def _weight_modules(model, layers):
    """The Linear/Conv modules to constrain: all of ``model.weight_layers()`` or the given positions."""
    mods = model.weight_layers() if hasattr(model, "weight_layers") else [
        m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    if layers is None:
        return mods
    out = []
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, int) or not -len(mods) <= i < len(mods):
            raise ValueError(f"layers[] must be weight-layer positions in [{-len(mods)}, {len(mods) - 1}], "
                             f"got {i!r}")
        out.append(mods[i])
    return out


class FrobeniusProjection:
    """Recipe 1 step ③ (seed 001 §3.2): after each step W_l ← W_l·scale·√d_l/||W_l||_F, d_l = rows of W_l
    (output units / channels). Use as ``fit(..., constraints=[FrobeniusProjection()])``. ``layers``: weight
    layer positions (default all)."""

    def __init__(self, scale: float = 1.0, layers=None):
        self.scale = check_float(scale, "scale", min_value=0.0, min_inclusive=False)
        self.layers = None if layers is None else tuple(layers)

    @torch.no_grad()
    def __call__(self, model) -> None:
        for m in _weight_modules(model, self.layers):
            W = m.weight
            target = self.scale * math.sqrt(W.shape[0])
            W.mul_(target / W.norm().clamp_min(1e-12))

    def __repr__(self):
        return f"FrobeniusProjection(scale={self.scale:g})"


class SpectralProjection:
    """Spectral-norm control after each step: ``mode='clip'`` projects onto ||W||_σ <= max_norm
    (W ← W·min(1, max_norm/||W||_σ)); ``mode='normalize'`` sets ||W||_σ = max_norm. Conv kernels use the
    spectral norm of the out × (in·kh·kw) matrix (as spectral normalisation does; it is not the operator norm
    of the convolution). ``n_power_iterations=None`` computes σ exactly (SVD); an integer uses that many power
    iterations per call with the vectors kept between calls (cheap, converges as training proceeds)."""

    def __init__(self, max_norm: float = 1.0, *, mode: str = "clip", n_power_iterations: int | None = None,
                 layers=None):
        from .._validation import check_choice, check_int

        self.max_norm = check_float(max_norm, "max_norm", min_value=0.0, min_inclusive=False)
        self.mode = check_choice(mode, "mode", ("clip", "normalize"))
        self.n_power_iterations = None if n_power_iterations is None else check_int(
            n_power_iterations, "n_power_iterations", min_value=1)
        self.layers = None if layers is None else tuple(layers)
        self._u: dict = {}

    def sigma(self, W: torch.Tensor) -> torch.Tensor:
        M = W.reshape(W.shape[0], -1)
        if self.n_power_iterations is None:
            return torch.linalg.matrix_norm(M, ord=2)
        u = self._u.get(id(W))
        if u is None or u.shape[0] != M.shape[0]:
            u = torch.nn.functional.normalize(torch.randn(M.shape[0], dtype=M.dtype, device=M.device), dim=0)
        for _ in range(self.n_power_iterations):
            v = torch.nn.functional.normalize(M.T @ u, dim=0)
            u = torch.nn.functional.normalize(M @ v, dim=0)
        self._u[id(W)] = u
        return u @ M @ v

    @torch.no_grad()
    def __call__(self, model) -> None:
        for m in _weight_modules(model, self.layers):
            s = self.sigma(m.weight).clamp_min(1e-12)
            factor = self.max_norm / s
            if self.mode == "clip":
                factor = factor.clamp(max=1.0)
            m.weight.mul_(factor)

    def __repr__(self):
        return f"SpectralProjection(max_norm={self.max_norm:g}, mode={self.mode!r})"
