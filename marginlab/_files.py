"""Files, once: atomic writes (readers never see a partial file) and streamed digests.

Every module that writes results, models, caches or downloads goes through :func:`atomic_write`, so a crash
or an interrupt leaves at worst a stray ``.part`` file beside the target, never a truncated one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "atomic_write_json", "file_digest", "md5sum"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on a clean exit it is renamed onto ``path`` (atomic on one
    file system), on an exception it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path, write, *, binary: bool = True) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as f:
        write(f)
    return path


def atomic_write_json(path, obj, **dump_options) -> Path:
    """``obj`` as JSON (indented, sorted keys unless told otherwise), written atomically."""
    dump_options.setdefault("indent", 2)
    return atomic_write(path, lambda f: json.dump(obj, f, **dump_options), binary=False)


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5sum(path) -> str:
    """MD5 hex digest of a file (the checksums MNIST and CIFAR-10 publish)."""
    return file_digest(path, "md5")
