"""Downloaded-file plumbing shared by the dataset loaders: a streamed MD5 and an atomic, verified download."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def md5sum(path) -> str:
    """MD5 hex digest of a file, read in 1 MB chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_verified(url: str, dest, verify, *, timeout: float) -> Path:
    """Stream ``url`` into a temporary file beside ``dest``, call ``verify(tmp_path)`` (it raises on a bad
    file), then rename: the cache never holds a partial or corrupt file. Network errors propagate."""
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        verify(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
