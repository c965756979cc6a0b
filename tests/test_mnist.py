import gzip
import shutil

import numpy as np
import pytest

from marginlab.data import MNISTError, load_mnist, read_idx
from marginlab.data import mnist as mnist_mod


def test_offline_default_without_network(no_network):
    tr = load_mnist("train")
    te = load_mnist("test")
    assert tr.meta["origin"] == "offline" and "offline" in tr.source
    assert tr.X.shape == (5000, 1, 28, 28) and np.bincount(tr.y).tolist() == [500] * 10
    assert te.X.shape == (10000, 1, 28, 28)
    assert 0.0 <= tr.X.min() and tr.X.max() <= 1.0
    flat = load_mnist("test", flatten=True, scale=False)
    assert flat.X.shape == (10000, 784) and flat.X.max() == 255.0


def test_download_fails_cleanly_offline(no_network, tmp_path):
    with pytest.raises(MNISTError, match="could not fetch"):
        mnist_mod.fetch_mnist("test", root=tmp_path, timeout=1)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    with pytest.raises(MNISTError):
        load_mnist("test", download=True, offline_ok=False)
    # with the offline fallback allowed, it still loads
    assert load_mnist("test", download=True).meta["origin"] == "offline"


def test_reads_genuine_idx_and_matches_bundle(shared_mnist):
    ds = load_mnist("test", root=shared_mnist)
    assert ds.meta["origin"] == "idx" and "MD5 verified" in ds.source
    X_off, y_off, _ = mnist_mod._offline("test")
    np.testing.assert_array_equal(ds.y, y_off)
    np.testing.assert_array_equal((ds.X * 255).round().astype(np.uint8).reshape(-1, 28, 28), X_off)


def test_md5_mismatch_rejected(shared_mnist, tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_mnist / name, tmp_path / name)
    raw = gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz").read()
    bad = bytearray(raw)
    bad[100] = (bad[100] + 1) % 10
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes(bad))
    with pytest.raises(MNISTError, match="MD5"):
        load_mnist("test", root=tmp_path)


def test_truncated_idx_rejected(tmp_path):
    header = (0x00000801).to_bytes(4, "big") + (100).to_bytes(4, "big")
    p = tmp_path / "labels-idx1-ubyte"
    p.write_bytes(header + bytes(50))
    with pytest.raises(MNISTError, match="truncated"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(MNISTError, match="truncated"):
        read_idx(p)
    g = tmp_path / "x.gz"
    g.write_bytes(gzip.compress(header + bytes(100))[:-10])
    with pytest.raises(MNISTError):
        read_idx(g)


def test_cache_is_used_and_verified(shared_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("MARGINLAB_DATA", str(tmp_path))
    cache = tmp_path / "mnist"
    cache.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_mnist / name, cache / name)
    ds = load_mnist("test")
    assert ds.meta["origin"] == "cache"
    (cache / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(MNISTError, match="MD5"):
        load_mnist("test")


def test_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("validation")


def test_fetch_verifies_md5_and_writes_atomically(shared_mnist, tmp_path):
    """A mirror serving the genuine files fills the cache; one serving corrupt files leaves nothing behind."""
    good = shared_mnist.resolve().as_uri() + "/"
    root = mnist_mod.fetch_mnist("test", root=tmp_path / "ok", mirrors=(good,), timeout=5)
    names = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in root.iterdir()) == names
    assert load_mnist("test", root=root).meta["origin"] == "idx"
    bad = tmp_path / "mirror"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (bad / name).write_bytes(b"not mnist")
    with pytest.raises(MNISTError, match="MD5"):
        mnist_mod.fetch_mnist("test", root=tmp_path / "bad", mirrors=(bad.as_uri() + "/",), timeout=5)
    assert list((tmp_path / "bad").iterdir()) == []
