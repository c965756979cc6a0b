"""Device selection: ``device="auto"`` picks CUDA, then MPS, then CPU."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["resolve_device", "available_devices", "torch_threads"]


def resolve_device(device="auto") -> torch.device:
    """Return a usable ``torch.device``.

    ``"auto"`` prefers CUDA, then Apple MPS, then CPU. An explicit device that is not available raises
    ``ValueError`` naming ``device`` and what is available here.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device is None or (isinstance(device, str) and device.lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; "
                             f"got {device!r}") from exc
    else:
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    available = available_devices()
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} is not available here (available: {', '.join(available)})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={device!r} is not available here (available: {', '.join(available)})")
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}")
    return dev


def available_devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch CPU threads, restoring the previous count after; ``None`` leaves it
    alone. Tiny full-batch networks and per-sample solves want 1: intra-op threads only add synchronisation,
    and on a busy machine oversubscribed threads made them 10-20x slower (measured here)."""
    from ._validation import check_int

    if n is None:
        yield
        return
    n = check_int(n, "torch_threads", min_value=1)
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
