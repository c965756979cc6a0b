"""Save and load trained models with their configuration, dataset provenance and training history."""

from __future__ import annotations

from pathlib import Path

import torch

from .._files import atomic_write
from .base import MarginNet

__all__ = ["build_model", "save_model", "load_model"]


def build_model(config: dict) -> MarginNet:
    """Rebuild an (untrained) model from its ``config`` dict."""
    from .cnn import CNN
    from .mlp import MLP, LinearModel

    cfg = dict(config)
    family = cfg.pop("family", None)
    if family == "mlp":
        return MLP(cfg.pop("input_shape"), cfg.pop("hidden"), cfg.pop("n_classes"), **cfg)
    if family == "linear":
        return LinearModel(cfg.pop("input_shape"), cfg.pop("n_classes"), **cfg)
    if family == "cnn":
        return CNN(cfg.pop("k"), **cfg)
    raise ValueError(f"config['family'] must be one of 'mlp', 'linear', 'cnn'; got {family!r}")


def save_model(path, model: MarginNet, *, dataset=None, history=None, extra: dict | None = None) -> Path:
    """Write ``model`` (weights + config) and provenance to ``path`` atomically (temp file, then rename)."""
    if not isinstance(model, MarginNet):
        raise TypeError(f"model must be a marginlab MarginNet, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "marginlab-model/1",
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dataset": None if dataset is None else {
            "name": dataset.name, "source": dataset.source, "n": len(dataset),
            "corruption": dataset.corruption, "corruption_fraction": dataset.corruption_fraction},
        "history": None if history is None else (
            history.to_dict() if hasattr(history, "to_dict") else history),
        "extra": extra or {},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_model(path, *, device="cpu") -> MarginNet:
    """Load a model saved by :func:`save_model`; its provenance is in ``model.meta``."""
    from ..device import resolve_device

    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != "marginlab-model/1":
        raise ValueError(f"{path} is not a marginlab model file")
    model = build_model(payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.meta = {k: payload.get(k) for k in ("dataset", "history", "extra")}
    return model.to(resolve_device(device)).eval()
