"""CIFAR-10 ("python version"): the official archive or its extracted folder, MD5-checked fetch and cache.

CIFAR-10 is not bundled (163 MB); nothing here touches the network unless ``download=True``.

Where :func:`load_cifar10` looks: the folder ``root`` when given, else the cache folder
``$MARGINLAB_DATA/cifar10`` or ``~/.cache/marginlab/cifar10``. In that folder it accepts, in this order:

1. the extracted folder ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
   ``batches.meta``), or those files directly in the folder;
2. the official archive ``cifar-10-python.tar.gz``, read in place (not extracted) after its MD5 sum is
   checked.

``root`` may also be the path of the archive itself. With ``download=True`` and nothing found, the archive is
fetched into that folder (temporary file, MD5 check, atomic rename). Without data a :class:`FileNotFoundError`
says where to put the archive.

The batches are pickles. Unpickling is only done on files from the MD5-verified archive or from a folder the
user put there, and even then through a restricted unpickler that accepts nothing but plain containers and
numpy arrays (a pickle that asks for any other global is refused), so a tampered file cannot run code.
Every batch is checked: uint8 ``data`` of shape (n, 3072), ``labels`` of length n in 0..9, 10 class names.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np

from .._validation import check_choice
from ._files import download_verified, md5sum
from .dataset import Dataset

__all__ = ["CIFAR10_URL", "CIFAR10_ARCHIVE", "CIFAR10_MD5", "CIFAR10_FOLDER", "CIFAR10_FILES", "CIFARError",
           "load_cifar10", "cifar10_available", "fetch_cifar10", "cache_dir", "find_cifar10"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
# The official MD5 sum of the archive (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_META = "batches.meta"
_N_FEATURES = 3 * 32 * 32
_N_CLASSES = 10
# read-only cache of archives already checked in this process: (path, size, mtime_ns) -> md5
_CHECKED: dict = {}


class CIFARError(ValueError):
    """A corrupt, truncated or malformed CIFAR-10 file (wrong MD5 sum, shape, dtype or labels)."""


def cache_dir() -> Path:
    """Where the archive is looked for and downloaded to: ``$MARGINLAB_DATA/cifar10`` or
    ``~/.cache/marginlab/cifar10``."""
    base = os.environ.get("MARGINLAB_DATA")
    return Path(base) / "cifar10" if base else Path.home() / ".cache" / "marginlab" / "cifar10"


def _how_to_get(folder: Path) -> str:
    return (f"download {CIFAR10_URL} (CIFAR-10 python version, MD5 {CIFAR10_MD5}) and put "
            f"{CIFAR10_ARCHIVE} (or its extracted {CIFAR10_FOLDER}/ folder) in {folder}, pass root=..., set "
            f"$MARGINLAB_DATA, or call load_cifar10(download=True)")


# -- locating ----------------------------------------------------------------------------------------
def _needed(split: str | None) -> tuple[str, ...]:
    files = CIFAR10_FILES["train"] + CIFAR10_FILES["test"] if split is None else CIFAR10_FILES[split]
    return files + (_META,)


def _folder_candidates(base: Path) -> list[Path]:
    return [base / CIFAR10_FOLDER, base]


def find_cifar10(root=None, split: str | None = None) -> tuple[str, Path] | None:
    """``("folder", path)`` or ``("archive", path)`` of the CIFAR-10 data in ``root`` (default:
    :func:`cache_dir`) holding ``split`` (``None``: both splits), or ``None``. Only checks that files
    exist."""
    base = Path(root) if root is not None else cache_dir()
    if base.is_file():
        return ("archive", base)
    for folder in _folder_candidates(base):
        if folder.is_dir() and all((folder / f).is_file() for f in _needed(split)):
            return ("folder", folder)
    if (base / CIFAR10_ARCHIVE).is_file():
        return ("archive", base / CIFAR10_ARCHIVE)
    return None


def cifar10_available(root=None) -> bool:
    """True when both CIFAR-10 splits can be loaded without the network from ``root`` (default: the cache
    folder): the extracted folder or the archive is there. The MD5 sum is checked only on loading."""
    return find_cifar10(root) is not None


# -- checking and reading ----------------------------------------------------------------------------
def verify_archive(path, expected: str | None = None) -> None:
    """Raise :class:`CIFARError` unless ``path`` has the official MD5 sum (:data:`CIFAR10_MD5`)."""
    path = Path(path)
    expected = expected or CIFAR10_MD5
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    got = _CHECKED.get(key) or md5sum(path)
    if got != expected:
        raise CIFARError(f"{path} has MD5 {got}, expected {expected}: the file is corrupt, truncated or not "
                         "the official CIFAR-10 python archive; delete it and fetch it again (download=True)")
    _CHECKED[key] = got


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _frombuffer():
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy < 2
        from numpy.core.numeric import _frombuffer
    return _frombuffer


# The only globals a CIFAR-10 batch needs (numpy 1 / 2 module names, Python 2 / 3 pickles).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return make()


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # truncated data, foreign pickles: all reported as a bad file
        raise CIFARError(f"{where} is not a valid CIFAR-10 python batch: {exc}") from exc
    if not isinstance(obj, dict):
        raise CIFARError(f"{where} holds a {type(obj).__name__}, expected the CIFAR-10 batch dict")
    # Python 2 pickles (the official files) give bytes keys; accept str keys from re-pickled copies too
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _check_batch(d: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    for key in ("data", "labels"):
        if key not in d:
            raise CIFARError(f"{where} has no {key!r} entry (keys: {sorted(map(str, d))})")
    X = d["data"]
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != _N_FEATURES:
        desc = f"{X.dtype} array of shape {X.shape}" if isinstance(X, np.ndarray) else type(X).__name__
        raise CIFARError(f"{where}: 'data' must be a uint8 array of shape (n, {_N_FEATURES}), got {desc}")
    try:
        y = np.asarray(d["labels"])
    except Exception as exc:
        raise CIFARError(f"{where}: 'labels' is not a list of integers ({exc})") from exc
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise CIFARError(f"{where}: 'labels' must be a flat list of integers, got {y.dtype} shape {y.shape}")
    if len(y) != len(X):
        raise CIFARError(f"{where}: {len(X)} images but {len(y)} labels")
    if y.size and (y.min() < 0 or y.max() >= _N_CLASSES):
        raise CIFARError(f"{where}: labels must lie in 0..{_N_CLASSES - 1}, got range {y.min()}..{y.max()}")
    return X, y.astype(np.int64)


def _check_meta(d: dict, where: str) -> tuple[str, ...]:
    names = d.get("label_names")
    if not isinstance(names, (list, tuple)) or len(names) != _N_CLASSES:
        raise CIFARError(f"{where}: 'label_names' must list {_N_CLASSES} class names, got {names!r:.200}")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def _read_archive(path: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    import tarfile

    wanted = {f"{CIFAR10_FOLDER}/{n}": n for n in names}
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:  # one pass over the stream; nothing is written to disk
                n = wanted.get(member.name.lstrip("./"))
                if n is not None and member.isfile():
                    found[n] = tar.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise CIFARError(f"cannot read the CIFAR-10 archive {path}: {exc}") from exc
    missing = [f"{CIFAR10_FOLDER}/{n}" for n in names if n not in found]
    if missing:
        raise CIFARError(f"{path} lacks {', '.join(missing)}: not the CIFAR-10 python-version archive")
    return found


def _read_folder(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    out = {}
    for n in names:
        p = folder / n
        try:
            out[n] = p.read_bytes()
        except OSError as exc:
            raise CIFARError(f"cannot read {p}: {exc}") from exc
    return out


# -- fetching ----------------------------------------------------------------------------------------
def fetch_cifar10(root=None, *, url: str | None = None, timeout: float = 60.0) -> Path:
    """Download the archive from ``url`` (default :data:`CIFAR10_URL`) into ``root`` (default
    :func:`cache_dir`), MD5-checked and written atomically (temporary file, then rename). Returns the
    archive's path; an archive already there that passes the MD5 check is kept. Raises :class:`CIFARError`
    when the download fails or the MD5 sum is wrong."""
    url = url or CIFAR10_URL
    folder = Path(root) if root is not None else cache_dir()
    dest = folder / CIFAR10_ARCHIVE
    if dest.exists():
        try:
            verify_archive(dest)
            return dest
        except CIFARError:
            dest.unlink()
    try:
        return download_verified(url, dest, verify_archive, timeout=timeout)
    except CIFARError:  # the MD5 check's own message
        raise
    except Exception as exc:  # network errors vary by platform
        raise CIFARError(f"could not fetch {url}: {exc}; {_how_to_get(folder)}") from exc


# -- loading -----------------------------------------------------------------------------------------
def load_cifar10(split: str = "train", *, root=None, download: bool = False, flatten: bool = False,
                 scale: bool = True) -> Dataset:
    """Load one CIFAR-10 split as a :class:`Dataset`: inputs (n, 3, 32, 32) float32 (or (n, 3072) with
    ``flatten``), labels int64, the 10 class names from ``batches.meta``.

    ``split``: ``"train"`` (the five training batches, 50,000 images) or ``"test"`` (10,000). ``root``: a
    folder holding the archive or the extracted folder, or the archive itself (default: :func:`cache_dir`).
    ``download=True`` fetches the archive into that folder when nothing is found. ``scale`` maps pixels to
    [0, 1]. Missing data raises :class:`FileNotFoundError`; corrupt data :class:`CIFARError`.
    """
    split = check_choice(split, "split", CIFAR10_FILES)
    base = Path(root) if root is not None else cache_dir()
    found = find_cifar10(base, split)
    if found is None and download:
        if base.is_file():
            raise FileNotFoundError(f"root={str(base)!r} is a file but not a CIFAR-10 archive")
        found = ("archive", fetch_cifar10(base))
    if found is None:
        partial = [f for f in _folder_candidates(base) if any((f / n).is_file() for n in _needed(None))]
        extra = ""
        if partial:
            lacks = [n for n in _needed(split) if not (partial[0] / n).is_file()]
            extra = f" ({partial[0]} lacks {', '.join(lacks)})"
        raise FileNotFoundError(f"CIFAR-10 {split} split not found in {base}{extra}; {_how_to_get(base)}")
    kind, path = found
    names = CIFAR10_FILES[split] + (_META,)
    if kind == "archive":
        # verified before anything in it is unpickled
        verify_archive(path)
        raw = _read_archive(path, names)
        where = f"{path}:{CIFAR10_FOLDER}/"
        source = f"CIFAR-10 {split} split, official archive {path} (MD5 verified)"
    else:
        raw = _read_folder(path, names)
        where = f"{path}/"
        source = f"CIFAR-10 {split} split, python-version batches in {path} (user-provided folder)"
    class_names = _check_meta(_unpickle(raw[_META], where + _META), where + _META)
    Xs, ys = [], []
    for n in CIFAR10_FILES[split]:
        X, y = _check_batch(_unpickle(raw.pop(n), where + n), where + n)
        Xs.append(X)
        ys.append(y)
    X = np.concatenate(Xs) if len(Xs) > 1 else Xs[0]
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    del Xs, raw
    X = X.astype(np.float32)
    if scale:
        X /= 255.0
    # rows are 1024 red, then 1024 green, then 1024 blue values, each image row-major: (3, 32, 32)
    X = X.reshape(len(X), _N_FEATURES) if flatten else X.reshape(len(X), 3, 32, 32)
    return Dataset(X, y, n_classes=_N_CLASSES, name=f"cifar10-{split}", source=source,
                   class_names=class_names,
                   meta={"origin": kind, "split": split, "scaled": scale, "path": str(path)})
