"""MNIST: verified IDX files from a folder, fetch-and-cache when the network allows, and a bundled
offline subset so everything runs with no network.

Resolution order of :func:`load_mnist`: an explicit ``root`` folder; the cache folder
(``$MARGINLAB_DATA`` or ``~/.cache/marginlab/mnist``); a download into the cache (only when
``download=True``); the bundled offline subset (5,000 training images, the full 10,000-image test split).
The returned :class:`Dataset` says which one was used in ``source`` and ``meta["origin"]``.
"""

from __future__ import annotations

import gzip
import os
import struct
from importlib import resources
from pathlib import Path

import numpy as np

from .._validation import check_choice
from ._files import download_verified, md5sum
from .dataset import Dataset

__all__ = ["MNIST_FILES", "MNIST_MD5", "MNISTError", "load_mnist", "read_idx", "read_idx_split",
           "fetch_mnist", "cache_dir", "verify_md5"]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# The official MD5 sums of the four MNIST files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_OFFLINE_ASSET = "mnist_offline.npz"


class MNISTError(ValueError):
    """A missing, corrupt or truncated MNIST file."""


def cache_dir() -> Path:
    """Where downloaded files live: ``$MARGINLAB_DATA/mnist`` or ``~/.cache/marginlab/mnist``."""
    base = os.environ.get("MARGINLAB_DATA")
    return Path(base) / "mnist" if base else Path.home() / ".cache" / "marginlab" / "mnist"


def verify_md5(path, expected: str | None = None) -> None:
    """Raise :class:`MNISTError` unless ``path`` has the official (or ``expected``) MD5 sum."""
    path = Path(path)
    expected = expected or MNIST_MD5.get(path.name)
    if expected is None:
        raise MNISTError(f"no known MD5 sum for {path.name}; expected one of {sorted(MNIST_MD5)}")
    got = md5sum(path)
    if got != expected:
        raise MNISTError(f"{path} has MD5 {got}, expected {expected}: the file is corrupt, truncated or not "
                         "the official MNIST file; delete it and fetch it again")


def read_idx(path) -> np.ndarray:
    """Read one (gzip-compressed or plain) IDX file into a uint8 array, checking its header and size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise MNISTError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4:
        raise MNISTError(f"{path} is truncated (only {len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise MNISTError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTError(f"{path} is truncated inside its header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    n = int(np.prod(shape))
    if len(data) - header != n:
        raise MNISTError(f"{path} holds {len(data) - header} bytes of data, "
                         f"its header promises {n}: truncated")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_split(root, split: str = "train", *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 28, 28) uint8, labels (n,) uint8)`` of one split from a folder of IDX files."""
    split = check_choice(split, "split", MNIST_FILES)
    root = Path(root)
    paths = [root / f for f in MNIST_FILES[split]]
    for p in paths:
        if not p.exists():
            raise MNISTError(f"missing MNIST file {p}")
        if verify:
            verify_md5(p)
    X, y = read_idx(paths[0]), read_idx(paths[1])
    if X.ndim != 3 or y.ndim != 1 or len(X) != len(y):
        raise MNISTError(f"inconsistent MNIST {split} files: images {X.shape}, labels {y.shape}")
    return X, y


def fetch_mnist(split: str = "train", *, root=None, mirrors=MIRRORS, timeout: float = 30.0) -> Path:
    """Download the IDX files of ``split`` into ``root`` (default: :func:`cache_dir`), MD5-checked and
    written atomically. Returns the folder. Raises :class:`MNISTError` when no mirror answers."""
    split = check_choice(split, "split", MNIST_FILES)
    root = Path(root) if root is not None else cache_dir()
    for name in MNIST_FILES[split]:
        dest = root / name
        if dest.exists():
            try:
                verify_md5(dest)
                continue
            except MNISTError:
                dest.unlink()
        errors = []
        for base in mirrors:
            try:
                md5 = MNIST_MD5[name]
                download_verified(base + name, dest, lambda p, md5=md5: verify_md5(p, md5), timeout=timeout)
                break
            except Exception as exc:  # network errors vary by platform; collect and report them all
                errors.append(f"{base}: {exc}")
        else:
            raise MNISTError(f"could not fetch {name}: " + "; ".join(errors))
    return root


def _has_split(root: Path, split: str) -> bool:
    return all((root / f).exists() for f in MNIST_FILES[split])


def _offline(split: str):
    with resources.files("marginlab.data").joinpath("assets", _OFFLINE_ASSET).open("rb") as f:
        npz = np.load(f)
        X, y = npz[f"X_{split}"], npz[f"y_{split}"]
        prov = str(npz["provenance"])
    return X, y, prov


def load_mnist(split: str = "train", *, root=None, download: bool = False, offline_ok: bool = True,
               flatten: bool = False, scale: bool = True) -> Dataset:
    """Load one MNIST split as a :class:`Dataset` (inputs (n, 1, 28, 28), or (n, 784) with ``flatten``).

    ``root``: a folder of the official IDX ``.gz`` files (MD5-verified). Without it, the cache folder is
    used, then (``download=True``) a fetch into the cache, then (``offline_ok=True``) the bundled subset:
    5,000 training images (500 per class) or the full 10,000-image test split. ``scale`` maps pixels to
    [0, 1]. Corrupt or truncated files raise :class:`MNISTError`; they are never silently replaced.
    """
    split = check_choice(split, "split", MNIST_FILES)
    origin = None
    if root is not None:
        root = Path(root)
        X, y = read_idx_split(root, split)
        origin, source = "idx", f"MNIST {split} split, official IDX files in {root} (MD5 verified)"
    else:
        cdir = cache_dir()
        if not _has_split(cdir, split) and download:
            try:
                fetch_mnist(split, root=cdir)
            except MNISTError:
                if not offline_ok:
                    raise
        if _has_split(cdir, split):
            X, y = read_idx_split(cdir, split)
            origin, source = "cache", (f"MNIST {split} split, official IDX files cached in {cdir} "
                                       "(MD5 verified)")
        elif offline_ok:
            X, y, prov = _offline(split)
            origin = "offline"
            source = f"MNIST {split}, bundled offline subset ({len(y)} images): {prov}"
        else:
            raise MNISTError(f"MNIST {split} files not found in {cdir}; pass root=..., download=True or "
                             "offline_ok=True")
    X = X.astype(np.float32)
    if scale:
        X /= 255.0
    X = X.reshape(len(X), -1) if flatten else X.reshape(len(X), 1, 28, 28)
    return Dataset(X, y.astype(np.int64), n_classes=10, name=f"mnist-{split}", source=source,
                   meta={"origin": origin, "split": split, "scaled": scale})
