"""Downloads shared by the dataset loaders: an atomic, verified download (files and digests live in
:mod:`marginlab._files`)."""

from __future__ import annotations

from pathlib import Path

from .._files import atomic_path, md5sum

__all__ = ["download_verified", "md5sum"]


def download_verified(url: str, dest, verify, *, timeout: float) -> Path:
    """Stream ``url`` into a temporary file beside ``dest``, call ``verify(tmp_path)`` (it raises on a bad
    file), then rename: the cache never holds a partial or corrupt file. Network errors propagate."""
    import urllib.request

    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        verify(tmp)
    return dest
