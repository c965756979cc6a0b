"""One torch thread for the playground's tiny tensors (torch is imported on the first call, not here)."""

from __future__ import annotations

import functools

__all__ = ["one_thread"]


def one_thread(fn):
    """Tiny tensors: intra-op threads only add synchronisation (and slow a shared machine down)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..device import torch_threads

        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper
