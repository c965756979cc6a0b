"""Output and normalized margins (seed 001 §3.1).

Output margin gamma(x, y) = f_y(x) - max_{i != y} f_i(x) (the strongest *wrong* class). Normalized margins
divide out the degree-L weight homogeneity and the degree-1 input homogeneity:

* Frobenius (Def. 3.1): gamma * prod_l sqrt(d_l) / ||W_l||_F * sqrt(d_0) / ||x||_2
* spectral (Def. 3.2):  gamma / R_w * sqrt(d_0) / ||x||_2, with the spectral complexity
  R_w = (prod_l ||W_l||_sigma) (sum_l ||W_l^T - M_l^T||_{2,1}^{2/3} / ||W_l||_sigma^{2/3})^{3/2}
  and reference weights M (seed 001 App. A.1 uses the initialisation; default zero). ||A||_{2,1} is the sum
  of the 2-norms of the columns of A, so ||W^T - M^T||_{2,1} sums the row norms of W - M.

Both normalizations assume a bias-free network: only then is f homogeneous of degree L in the weights and of
degree 1 in the input. With biases they are not scale invariant (scaling the first layer of a small biased MLP
by 3 changed its Frobenius-normalized margin by 226 %), so the functions refuse such nets with a
``ValueError`` unless ``allow_bias=True``.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import _as_tensor

__all__ = ["output_margin", "frobenius_normalized_margin", "spectrally_normalized_margin",
           "spectral_complexity", "normalized_margins"]


def _weights(model, allow_bias: bool = True):
    layers = model.weight_layers() if hasattr(model, "weight_layers") else [
        m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    if not layers:
        raise ValueError("model has no weight layers (Linear/Conv2d): normalized margins need them")
    if not allow_bias and any(getattr(m, "bias", None) is not None for m in layers):
        raise ValueError("model has biases: normalized margins (seed 001 Defs. 3.1/3.2) are scale invariant "
                         "only for bias-free networks (build it with bias=False), or pass allow_bias=True to "
                         "compute them anyway")
    return [m.weight.detach().double().reshape(m.weight.shape[0], -1).cpu() for m in layers]


def output_margin(model, X, y):
    """gamma(x, y) = f_y(x) - max_{i != y} f_i(x) (seed 001 §3.1), negative when misclassified."""
    X = _as_tensor(X)
    if not torch.isfinite(X.float()).all():
        raise ValueError("X contains NaN or inf values")
    import copy

    # float64 copy: float32 logits would blur the exact homogeneity the normalizations rely on
    net = copy.deepcopy(model).double().eval()
    p = next(net.parameters())
    with torch.no_grad():
        lg = net(X.to(p.device, torch.float64)).cpu()
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if y.shape != (lg.shape[0],):
        raise ValueError(f"y must have shape ({lg.shape[0]},), got {tuple(y.shape)}")
    r = torch.arange(lg.shape[0])
    fy = lg[r, y]
    other = lg.clone()
    other[r, y] = -torch.inf
    return (fy - other.amax(1)).numpy()


def _input_factor(X):
    X = _as_tensor(X).double().reshape(len(X), -1)
    return (np.sqrt(X.shape[1]) / torch.linalg.vector_norm(X, dim=1)).numpy()


def frobenius_normalized_margin(model, X, y, *, allow_bias: bool = False):
    """Frobenius-normalized margin, seed 001 Def. 3.1 (bias-free nets unless ``allow_bias``)."""
    prod = 1.0
    for W in _weights(model, allow_bias):
        prod *= np.sqrt(W.shape[0]) / float(torch.linalg.matrix_norm(W, "fro"))
    return output_margin(model, X, y) * prod * _input_factor(X)


def spectral_complexity(model, reference=None):
    """R_w of seed 001 Def. 3.2 (Bartlett et al. 2017 Eq. 1.2 for 1-Lipschitz activations).

    ``reference``: a model of the same architecture (e.g. at initialisation) or a list of weight tensors;
    None uses M = 0."""
    Ws = _weights(model)
    if reference is None:
        Ms = [torch.zeros_like(W) for W in Ws]
    elif isinstance(reference, torch.nn.Module):
        Ms = _weights(reference)
    else:
        Ms = [torch.as_tensor(np.asarray(M.detach().cpu() if isinstance(M, torch.Tensor) else M),
                              dtype=torch.float64).reshape(W.shape) for M, W in zip(reference, Ws)]
    if len(Ms) != len(Ws) or any(M.shape != W.shape for M, W in zip(Ms, Ws)):
        raise ValueError("reference weights must match the model's weight layers in number and shape")
    sig = [float(torch.linalg.matrix_norm(W, 2)) for W in Ws]
    total = 0.0
    for W, M, s in zip(Ws, Ms, sig):
        norm21 = float(torch.linalg.vector_norm(W - M, dim=1).sum())  # ||W^T - M^T||_{2,1}
        total += norm21 ** (2 / 3) / s ** (2 / 3)
    return float(np.prod(sig) * total ** 1.5)


def spectrally_normalized_margin(model, X, y, reference=None, *, allow_bias: bool = False):
    """Spectrally-normalized margin, seed 001 Def. 3.2 (bias-free nets unless ``allow_bias``);
    ``reference``: the weights M; seed 001 App. A.1 uses the initial ones (:func:`spectral_complexity`)."""
    _weights(model, allow_bias)
    return output_margin(model, X, y) / spectral_complexity(model, reference) * _input_factor(X)


def normalized_margins(model, X, y, reference=None, *, allow_bias: bool = False):
    """``{"output", "frobenius", "spectral"}`` margins per sample (numpy arrays); bias-free nets unless
    ``allow_bias``."""
    return {"output": output_margin(model, X, y),
            "frobenius": frobenius_normalized_margin(model, X, y, allow_bias=allow_bias),
            "spectral": spectrally_normalized_margin(model, X, y, reference, allow_bias=allow_bias)}
