"""The explorer's disk cache: models, margins, maximum margins and embeddings, each keyed by everything that
determines it (settings, data, solver and embedding code versions), written atomically so a crash never
leaves a half-written entry and reopening an app is instant."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .._files import atomic_write

__all__ = ["explorer_cache_dir", "key", "Store", "MARGIN_FIELDS"]

MARGIN_FIELDS = (
    "margin",
    "point",
    "pred",
    "boundary_class",
    "residual",
    "top_two",
    "converged",
    "distances",
    "label",
    "skipped",
    "iterations",
    "evaluations",
    "seconds",
    "status",
    "verified",
    "agree",
    "lower",
    "certified",
)


def explorer_cache_dir(cache_dir=None) -> Path:
    """``cache_dir``, else ``$MARGINLAB_CACHE/explorer``, else ``~/.cache/marginlab/explorer``."""
    if cache_dir is not None:
        return Path(cache_dir)
    base = os.environ.get("MARGINLAB_CACHE")
    return Path(base) / "explorer" if base else Path.home() / ".cache" / "marginlab" / "explorer"


def key(obj) -> str:
    """A short stable digest of a JSON-able description."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def source_digest(*modules) -> str:
    """Digest of the source files of ``modules``: results of older code are not reused."""
    return hashlib.sha1(b"".join(Path(m.__file__).read_bytes() for m in modules)).hexdigest()[:12]


def array_digest(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class Store:
    """Files under ``root/<model key>/``; every write is atomic."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, model_key: str, name: str) -> Path:
        return self.root / model_key / name

    def load_npz(self, path) -> dict | None:
        path = Path(path)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save_npz(self, path, arrays: dict) -> Path:
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    def load_npy(self, path):
        path = Path(path)
        return np.load(path) if path.exists() else None

    def save_npy(self, path, array) -> Path:
        return atomic_write(path, lambda f: np.save(f, array))

    # -- margins --------------------------------------------------------------------------------------------
    def save_margins(self, path, res) -> Path:
        arrays = {f: getattr(res, f) for f in MARGIN_FIELDS if getattr(res, f) is not None}
        arrays["status"] = np.asarray(res.status, dtype=str)  # not an object array: no pickle needed
        meta = {
            "method": res.method,
            "p": res.p,
            "layer": res.layer,
            "tol": res.tol,
            "estimate": bool(res.estimate),
        }
        arrays["meta"] = np.array(json.dumps(meta))
        return self.save_npz(path, arrays)

    def load_margins(self, path):
        from ..margins import MarginResult

        z = self.load_npz(path)
        if z is None:
            return None
        meta = json.loads(str(z.pop("meta")))
        kw = {f: z.get(f) for f in MARGIN_FIELDS}
        if kw["status"] is not None:
            kw["status"] = kw["status"].astype(object)
        return MarginResult(**kw, **meta)
