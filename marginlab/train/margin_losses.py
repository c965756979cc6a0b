"""Margin-shaping losses: hinge, soft hinge, large-margin (seed 004), ODN (seed 003), rescaled square
(seed 001) and the average-margin regularizer (seed 002).

All are :class:`~marginlab.train.losses.Loss` objects, registered by name in
:data:`~marginlab.train.losses.LOSSES` (``fit(loss="large_margin", loss_options={...})``). Losses that need
gradients of the scores with respect to a representation (large-margin, ODN, linearized hinge) compute them
for the whole batch at once, one vector-Jacobian product per selected class (samples are independent).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_choice, check_float, check_int
from .losses import Batch, Loss, get_loss, register_loss

__all__ = ["MultiClassHinge", "SoftHinge", "LargeMarginLoss", "ODNLoss", "RescaledSquareLoss",
           "AverageMarginRegularizer", "dual_exponent", "linearized_gaps"]

_OUTPUT = ("output", "logits")


def dual_exponent(p) -> float:
    """The dual exponent q = p / (p - 1) of an l_p norm, p >= 1 (seed 004 Eq. 7): 1 -> inf, inf -> 1."""
    if isinstance(p, str) and p.lower() in ("inf", "infinity"):
        p = math.inf
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p) or p < 1:
        raise ValueError(f"p must be a real number >= 1 (or 'inf'), got {p!r}")
    p = float(p)
    if p == 1.0:
        return math.inf
    if math.isinf(p):
        return 1.0
    return p / (p - 1.0)


def _other_classes(scores: torch.Tensor, y: torch.Tensor, k: int | None) -> torch.Tensor:
    """Indices (B, k) of the k highest-scoring classes other than y (seed 004 §4.1: top classes only)."""
    C = scores.shape[1]
    k = C - 1 if k is None else min(k, C - 1)
    masked = scores.detach().scatter(1, y[:, None], -math.inf)
    return masked.topk(k, dim=1).indices


def _batched_grads(scores, reps, go, create_graph):
    """Vector-Jacobian products of ``scores`` with the K rows of ``go`` (K, B, C), for every rep: (K, B, ...).

    On CUDA one vmapped backward pass (``is_grads_batched``) saves kernel launches; on CPU a loop of K
    backward passes measured faster (about 0.7x the vmapped time for the MNIST CNN, 1 thread)."""
    if scores.is_cuda and len(go) > 1:
        try:
            return torch.autograd.grad(scores, reps, grad_outputs=go, retain_graph=True,
                                       create_graph=create_graph, is_grads_batched=True)
        except RuntimeError:  # an op without a vmap rule for its backward: fall back to the loop
            pass
    out = [torch.autograd.grad(scores, reps, grad_outputs=g, retain_graph=True, create_graph=create_graph)
           for g in go]
    return tuple(torch.stack([o[j] for o in out]) for j in range(len(reps)))


def linearized_gaps(scores, y, reps, others, q: float, *, stop_gradient: bool = True):
    """Score gaps ``s_i - s_y`` (B, K) for the classes ``others`` (B, K) and, for each representation in
    ``reps``, the dual norms ``||grad_h s_i - grad_h s_y||_q`` (B, K) (seed 004 Eq. 7 / 15).

    With ``stop_gradient`` the norms are constants for backpropagation (seed 004 §4.1, seed 003 §4.1)."""
    B, C = scores.shape
    K = others.shape[1]
    gaps = scores.gather(1, others) - scores.gather(1, y[:, None])
    for r in reps:
        if not r.requires_grad:
            raise ValueError("a representation used by a margin loss does not require grad; request the "
                             "input layer as 0 or 'input' so that fit() makes the inputs require grad")
    go = torch.zeros((K, B, C), dtype=scores.dtype, device=scores.device)
    rows = torch.arange(B, device=scores.device)
    go[torch.arange(K, device=scores.device)[:, None], rows[None, :], others.T] = 1.0
    go[:, rows, y] -= 1.0
    grads = _batched_grads(scores, list(reps), go, create_graph=not stop_gradient)
    norms = [torch.linalg.vector_norm(g.flatten(2), ord=q, dim=2).T for g in grads]
    if stop_gradient:
        norms = [n.detach() for n in norms]
    return gaps, norms


def _check_layers(layers):
    """Normalise a layer spec: ``'all'`` or a non-empty sequence of ints / names (``'output'`` allowed)."""
    if isinstance(layers, str) and layers.lower() == "all":
        return "all"
    if isinstance(layers, (int, np.integer, str)):
        layers = (layers,)
    try:
        layers = tuple(layers)
    except TypeError:
        raise TypeError(f"layers must be 'all', a layer index/name or a sequence of them, got {layers!r}"
                        ) from None
    if not layers:
        raise ValueError("layers must name at least one layer (an index, a name, 'output' or 'all'); got []")
    out = []
    for v in layers:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, str)):
            raise TypeError(f"layers[] must be an int index or a layer name, got {v!r}")
        out.append(v.lower() if isinstance(v, str) and v.lower() in _OUTPUT else
                   (int(v) if isinstance(v, (int, np.integer)) else v))
    if len(set(out)) != len(out):
        raise ValueError(f"layers must not repeat a layer, got {list(layers)}")
    return tuple(out)


class _GradMarginLoss(Loss):
    """Shared plumbing: which representations to keep, and resolving them at call time."""

    def _set_layers(self, layers):
        self._spec = _check_layers(layers)
        if self._spec == "all":
            self.layers = "all"  # fit's _forward keeps every representation
            self.needs_input_grad = True
            self._output = True
        else:
            self._output = any(v in _OUTPUT for v in self._spec)
            self.layers = tuple(v for v in self._spec if v not in _OUTPUT)
            self.needs_input_grad = any(v in (0, "input") for v in self.layers)

    def _selected(self, batch: Batch):
        """``[(key, tensor)]`` in the order of the layer spec (``'all'``: representations then output)."""
        model = batch.model
        if self._spec == "all":
            sel = [(k, r) for k, r in enumerate(batch.reps or []) if r is not None]
            return sel + [("output", batch.logits)]
        sel = []
        for v in self._spec:
            if v in _OUTPUT:
                sel.append(("output", batch.logits))
                continue
            k = model.resolve_layer(v)
            r = None if batch.reps is None else batch.reps[k]
            if r is None:
                raise ValueError(f"layer {v!r} was not kept by the forward pass (was the loss built with "
                                 "it?)")
            sel.append((k, r))
        return sel


class MultiClassHinge(_GradMarginLoss):
    """Multi-class hinge with margin γ₀: ``mean_k max(0, γ₀ − (f_y − max_{i≠y} f_i))`` (``aggregation='max'``,
    Crammer–Singer) or the sum over all i ≠ y (``'sum'``, Weston–Watkins).

    ``linearized=True`` uses seed 003's hinge on the linearized input margin γ_h = (f_y − max_{i≠y} f_i) /
    (ε + ||∇ₓf_y − ∇ₓf_i||₂) (seed 003 §4; its printed ``max[0, γ_h − γ₀]`` has the sign flipped — a hinge
    penalises margins *below* γ₀)."""

    name = "hinge"

    def __init__(self, gamma0: float = 1.0, *, aggregation: str = "max", linearized: bool = False,
                 eps: float = 1e-6):
        self.gamma0 = check_float(gamma0, "gamma0", min_value=0.0)
        self.aggregation = check_choice(aggregation, "aggregation", ("max", "sum"))
        self.linearized = bool(linearized)
        self.eps = check_float(eps, "eps", min_value=0.0)
        if self.linearized:
            if self.aggregation != "max":
                raise ValueError("linearized=True supports aggregation='max' only")
            self._set_layers((0,))

    def forward(self, batch: Batch) -> torch.Tensor:
        f, y = batch.logits, batch.y
        if self.linearized:
            others = _other_classes(f, y, 1)
            gaps, (norm,) = linearized_gaps(f, y, [batch.reps[0]], others, 2.0)
            margin = -gaps[:, 0] / (self.eps + norm[:, 0])
            return F.relu(self.gamma0 - margin).mean()
        fy = f.gather(1, y[:, None])
        if self.aggregation == "max":
            others = f.scatter(1, y[:, None], -math.inf).amax(1, keepdim=True)
            return F.relu(self.gamma0 - (fy - others)).mean()
        terms = F.relu(self.gamma0 - (fy - f)).scatter(1, y[:, None], 0.0)
        return terms.sum(1).mean()

    def __repr__(self):
        return (f"MultiClassHinge(gamma0={self.gamma0:g}, aggregation={self.aggregation!r}, "
                f"linearized={self.linearized})")


class SoftHinge(Loss):
    """Soft hinge of seed 003 §4, the one-vs-all logistic loss averaged over the k outputs::

        −(1/k)·[ln σ(f_y) + Σ_{i≠y} ln(1 − σ(f_i))] = (1/k)·[ln(1+e^{−f_y}) + Σ_{i≠y} ln(1+e^{f_i})]

    Seed 003 prints ``−(1/k)[ln(1+e^{−f_y}) − Σ_{i≠y} ln(1+e^{−f_i})]``, which has its signs flipped: taken
    literally it decreases as the true-class score falls. This is the form it evidently means."""

    name = "soft_hinge"

    def forward(self, batch: Batch) -> torch.Tensor:
        f, y = batch.logits, batch.y
        k = f.shape[1]
        onehot = F.one_hot(y, k).to(f.dtype)
        per = (onehot * F.softplus(-f) + (1 - onehot) * F.softplus(f)).sum(1)
        return (per / k).mean()

    def __repr__(self):
        return "SoftHinge()"


class LargeMarginLoss(_GradMarginLoss):
    """Large-margin loss of Elsayed et al. (seed 004 Eq. 15), mean over the batch::

        Σ_ℓ A_{i≠y} max{0, γ_ℓ + (f_i − f_y) / (ε + ||∇_{h_ℓ} f_i − ∇_{h_ℓ} f_y||_q)}

    ``p``: the l_p distance (p >= 1 or ``'inf'``); the gradient is measured in the dual norm q = p/(p−1).
    ``layers``: representations h_ℓ (indices or names, 0/``'input'`` = input, ``'output'`` = logits,
    ``'all'`` = every representation and the output). ``gamma``: γ_ℓ, a scalar or one per layer.
    ``aggregation``: A = ``'max'`` or ``'sum'`` over the ``top_k`` highest-scoring other classes (None: all).
    ``stop_gradient``: treat the denominator as a constant in backprop (seed 004 §4.1). ``clip``: clip each
    sample's per-layer loss at this value (§4.1; without it a near-zero gradient norm, e.g. dead ReLU paths,
    can blow the loss up). ``ce_weight``: add this multiple of cross-entropy (§4.2). ``scores``: ``'logits'``
    or ``'softmax'`` (the reference code uses probabilities). ``layer_reduction``: ``'sum'`` over layers
    (Eq. 15) or ``'mean'`` (reference code).
    """

    name = "large_margin"

    def __init__(self, gamma=1.0, *, p=2, layers=(0,), aggregation: str = "max", top_k: int | None = None,
                 eps: float = 1e-6, stop_gradient: bool = True, clip: float | None = None,
                 ce_weight: float = 0.0, scores: str = "logits", layer_reduction: str = "sum"):
        self.p = p
        self.q = dual_exponent(p)
        self._set_layers(layers)
        if isinstance(gamma, numbers.Real) and not isinstance(gamma, bool):
            self.gamma = check_float(gamma, "gamma", min_value=0.0)
        else:
            if self._spec == "all":
                raise ValueError("gamma must be a scalar with layers='all' (one value per layer needs a "
                                 "list)")
            gamma = tuple(gamma)
            if len(gamma) != len(self._spec):
                raise ValueError(f"gamma must be a scalar or one value per layer ({len(self._spec)}), "
                                 f"got {gamma}")
            self.gamma = tuple(check_float(g, f"gamma[{i}]", min_value=0.0) for i, g in enumerate(gamma))
        self.aggregation = check_choice(aggregation, "aggregation", ("max", "sum"))
        self.top_k = None if top_k is None else check_int(top_k, "top_k", min_value=1)
        self.eps = check_float(eps, "eps", min_value=0.0)
        self.stop_gradient = bool(stop_gradient)
        self.clip = None if clip is None else check_float(clip, "clip", min_value=0.0, min_inclusive=False)
        self.ce_weight = check_float(ce_weight, "ce_weight", min_value=0.0)
        self.scores = check_choice(scores, "scores", ("logits", "softmax"))
        self.layer_reduction = check_choice(layer_reduction, "layer_reduction", ("sum", "mean"))

    def per_sample(self, batch: Batch) -> torch.Tensor:
        """Per-sample, per-layer losses (B, n_layers) before clipping."""
        s = batch.logits if self.scores == "logits" else batch.logits.softmax(1)
        sel = self._selected(batch)
        others = _other_classes(s, batch.y, self.top_k)
        gaps, norms = linearized_gaps(s, batch.y, [t for _, t in sel], others, self.q,
                                      stop_gradient=self.stop_gradient)
        cols = []
        for j, norm in enumerate(norms):
            g = self.gamma if isinstance(self.gamma, float) else self.gamma[j]
            terms = F.relu(g + gaps / (self.eps + norm))
            cols.append(terms.amax(1) if self.aggregation == "max" else terms.sum(1))
        return torch.stack(cols, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        per = self.per_sample(batch)
        if self.clip is not None:
            per = per.clamp(max=self.clip)
        per = per.sum(1) if self.layer_reduction == "sum" else per.mean(1)
        loss = per.mean()
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(batch.logits, batch.y)
        return loss

    def __repr__(self):
        return (f"LargeMarginLoss(gamma={self.gamma}, p={self.p}, layers={self._spec}, "
                f"aggregation={self.aggregation!r}, top_k={self.top_k})")


def odn_loss(gamma_h: torch.Tensor, r: float, theta: float, mu: float) -> torch.Tensor:
    """Seed 003 Eq. 1 applied elementwise: linear below r−θ, zero in (r−θ, r+θ], μ-weighted square above."""
    lo, hi = r - theta, r + theta
    below = (lo - gamma_h) / lo
    above = mu * (gamma_h - hi) ** 2 / hi ** 2
    zero = torch.zeros_like(gamma_h)
    return torch.where(gamma_h <= lo, below, torch.where(gamma_h > hi, above, zero))


class ODNLoss(_GradMarginLoss):
    """Optimal margin Distribution Network loss (seed 003 Eq. 1) on the linearized margin

        γ_h = (f_y − max_{i≠y} f_i) / (ε + ||∇ₓf_y − ∇ₓf_{i*}||₂)

    (seed 003 §2), mean over the batch. ``r``: margin mean (> 0); ``theta``: half-width of the zero-loss band
    (0 <= θ < r); ``mu``: weight of the squared penalty above r+θ (>= 0). The gradient norm is a constant in
    backprop (seed 003 §4.1) unless ``stop_gradient=False``; ``layer`` moves the margin to a hidden layer."""

    name = "odn"

    def __init__(self, r: float = 1.0, theta: float = 0.1, mu: float = 0.1, *, eps: float = 1e-6, layer=0,
                 stop_gradient: bool = True):
        self.r = check_float(r, "r", min_value=0.0, min_inclusive=False)
        self.theta = check_float(theta, "theta", min_value=0.0)
        if self.theta >= self.r:
            raise ValueError(f"theta must be in [0, r) = [0, {self.r:g}), got {self.theta:g}")
        self.mu = check_float(mu, "mu", min_value=0.0)
        self.eps = check_float(eps, "eps", min_value=0.0)
        self.stop_gradient = bool(stop_gradient)
        if isinstance(layer, str) and layer.lower() in _OUTPUT or layer == "all":
            raise ValueError(f"layer must be a representation index or name, got {layer!r}")
        self._set_layers((layer,))

    def margins(self, batch: Batch) -> torch.Tensor:
        """γ_h per sample (B,)."""
        f, y = batch.logits, batch.y
        others = _other_classes(f, y, 1)
        (_, rep), = self._selected(batch)
        gaps, (norm,) = linearized_gaps(f, y, [rep], others, 2.0, stop_gradient=self.stop_gradient)
        return -gaps[:, 0] / (self.eps + norm[:, 0])

    def forward(self, batch: Batch) -> torch.Tensor:
        return odn_loss(self.margins(batch), self.r, self.theta, self.mu).mean()

    def __repr__(self):
        return f"ODNLoss(r={self.r:g}, theta={self.theta:g}, mu={self.mu:g})"


class RescaledSquareLoss(Loss):
    """Recipe 1 step ② (seed 001 §3.2): ``||f(x_i) − α_i·e_{y_i}||²`` (summed over outputs; mean over the
    batch, or ``reduction='sum'`` as printed). At zero loss the margin f_y − max_{i≠y} f_i equals α_i exactly.

    ``alpha``: a scalar target margin, or one per training sample (indexed by ``batch.idx``, the row in the
    training set; evaluating on other data then needs a scalar α)."""

    name = "rescaled_square"

    def __init__(self, alpha=1.0, *, reduction: str = "mean"):
        if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            self.alpha = check_float(alpha, "alpha", min_value=0.0, min_inclusive=False)
            self._alpha_t = None
        else:
            a = np.asarray(alpha, dtype=np.float64)
            if a.ndim != 1 or a.size == 0:
                raise ValueError("alpha must be a positive scalar or a 1-D array (one per sample), got "
                                 f"shape {a.shape}")
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise ValueError("alpha must be finite and > 0 for every sample")
            self.alpha = a
            self._alpha_t = torch.as_tensor(a)
        self.reduction = check_choice(reduction, "reduction", ("mean", "sum"))

    def targets(self, batch: Batch) -> torch.Tensor:
        f = batch.logits
        onehot = F.one_hot(batch.y, f.shape[1]).to(f.dtype)
        if self._alpha_t is None:
            return self.alpha * onehot
        if len(batch.idx) and int(batch.idx.max()) >= len(self._alpha_t):
            raise ValueError(f"per-sample alpha has {len(self._alpha_t)} entries but row "
                             f"{int(batch.idx.max())} was requested; per-sample targets only apply to the "
                             "training set (use a scalar alpha)")
        a = self._alpha_t.to(device=f.device, dtype=f.dtype)[batch.idx]
        return a[:, None] * onehot

    def forward(self, batch: Batch) -> torch.Tensor:
        per = ((batch.logits - self.targets(batch)) ** 2).sum(1)
        return per.mean() if self.reduction == "mean" else per.sum()

    def __repr__(self):
        a = f"{self.alpha:g}" if self._alpha_t is None else f"<{len(self.alpha)} per-sample>"
        return f"RescaledSquareLoss(alpha={a})"


class AverageMarginRegularizer(Loss):
    """Average-margin regularizer (seed 002 Eq. 4), per-sample terms averaged over the batch::

        φ(y, f(x)) − λ·[min_{k≠y} (w_y − w_k)ᵀΦ(x)]_0^τ + β·Σ_l ||W_l W_lᵀ − I||²_F

    Φ(x) is the last hidden representation and w_k the rows of the final linear layer, so the feature margin
    is the logit margin without the final bias. [·]_0^τ clips to [0, τ]. The orthogonality penalty runs over
    every Linear/Conv weight of the model, each parameter counted once (conv kernels as out × (in·kh·kw)).
    ``base``: the training loss φ (a name or Loss; cross-entropy by default)."""

    name = "average_margin"

    def __init__(self, lam: float = 0.1, tau: float = 5.0, beta: float = 1e-3, *, base="cross_entropy"):
        self.lam = check_float(lam, "lam", min_value=0.0)
        self.tau = check_float(tau, "tau", min_value=0.0, min_inclusive=False)
        self.beta = check_float(beta, "beta", min_value=0.0)
        self.base = get_loss(base)
        self.layers = self.base.layers
        self.needs_input_grad = self.base.needs_input_grad

    @staticmethod
    def _weights(model):
        seen, out = set(), []
        for m in model.weight_layers():
            if id(m.weight) not in seen:
                seen.add(id(m.weight))
                out.append(m)
        return out

    def feature_margins(self, batch: Batch) -> torch.Tensor:
        """min_{k≠y} (w_y − w_k)ᵀΦ(x) per sample (B,)."""
        last = self._weights(batch.model)[-1]
        z = batch.logits if last.bias is None else batch.logits - last.bias
        zy = z.gather(1, batch.y[:, None])[:, 0]
        return zy - z.scatter(1, batch.y[:, None], -math.inf).amax(1)

    def orthogonality(self, model) -> torch.Tensor:
        """Σ_l ||W_l W_lᵀ − I||²_F over every weight, each once."""
        total = None
        for m in self._weights(model):
            W = m.weight.reshape(m.weight.shape[0], -1)
            G = W @ W.T
            term = (G - torch.eye(G.shape[0], dtype=G.dtype, device=G.device)).pow(2).sum()
            total = term if total is None else total + term
        return total

    def forward(self, batch: Batch) -> torch.Tensor:
        loss = self.base(batch)
        if self.lam:
            loss = loss - self.lam * self.feature_margins(batch).clamp(0.0, self.tau).mean()
        if self.beta:
            loss = loss + self.beta * self.orthogonality(batch.model)
        return loss

    def __repr__(self):
        return (f"AverageMarginRegularizer(lam={self.lam:g}, tau={self.tau:g}, beta={self.beta:g}, "
                f"base={self.base!r})")


for _name, _cls in {"hinge": MultiClassHinge, "soft_hinge": SoftHinge, "large_margin": LargeMarginLoss,
                    "odn": ODNLoss, "rescaled_square": RescaledSquareLoss,
                    "average_margin": AverageMarginRegularizer, "amr": AverageMarginRegularizer}.items():
    register_loss(_name, _cls)
