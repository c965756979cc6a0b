"""CIFAR-10 loader (python-version batches, archive or folder) and the CIFAR-10 variant of the seed-000 study,
all on a tiny fake CIFAR-10 written here: no network, no real data."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

from marginlab.data import CIFARError, cifar10_available, fetch_cifar10, load_cifar10
from marginlab.data import cifar as cifar_mod
from marginlab.experiments import ExperimentSpec, load_spec, run_experiment
from marginlab.experiments.spec import merge

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
N_BATCH, N_TEST = 12, 30


def _batch(rng, n, label):
    return {
        b"batch_label": label.encode(),
        b"labels": rng.integers(0, 10, n).tolist(),  # a list of Python ints, as in the official files
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _dump(obj, path, *, legacy=False):
    raw = pickle.dumps(obj, protocol=2)
    if legacy:  # the official files were written with numpy 1 (module numpy.core.multiarray)
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(raw)


def make_fake_cifar(base, *, seed=0):
    """``base/cifar-10-batches-py`` with five training batches of N_BATCH images, a test batch and the meta
    file, in the official pickle layout. Returns (folder, {file name: batch dict})."""
    rng = np.random.default_rng(seed)
    folder = base / cifar_mod.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": _batch(rng, N_BATCH, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, N_TEST, "testing batch 1 of 1")
    for name, d in batches.items():
        _dump(d, folder / name, legacy=name == "data_batch_1")
    _dump({b"num_cases_per_batch": N_BATCH, b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072},
          folder / "batches.meta")
    (folder / "readme.html").write_text("<html>fake</html>")
    return folder, batches


def make_archive(folder, dest):
    with tarfile.open(dest, "w:gz") as tar:
        for p in sorted(folder.iterdir()):
            tar.add(p, arcname=f"{cifar_mod.CIFAR10_FOLDER}/{p.name}")
    return dest


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake(tmp_path):
    folder, batches = make_fake_cifar(tmp_path / "src")
    return folder, batches


@pytest.fixture
def fake_archive(fake, tmp_path, monkeypatch):
    """The fake folder packed as cifar-10-python.tar.gz; the expected MD5 is set to the fake archive's (the
    verification code itself runs unchanged)."""
    folder, batches = fake
    (tmp_path / "arc").mkdir()
    arc = make_archive(folder, tmp_path / "arc" / cifar_mod.CIFAR10_ARCHIVE)
    monkeypatch.setattr(cifar_mod, "CIFAR10_MD5", _md5(arc))
    return arc, batches


# -- loading ----------------------------------------------------------------------------------------
def test_folder_loads_with_layout_and_provenance(fake):
    folder, batches = fake
    tr = load_cifar10("train", root=folder.parent)
    te = load_cifar10("test", root=folder.parent)
    assert tr.X.shape == (5 * N_BATCH, 3, 32, 32) and te.X.shape == (N_TEST, 3, 32, 32)
    assert tr.X.dtype == np.float32 and tr.y.dtype == np.int64
    assert 0.0 <= tr.X.min() and tr.X.max() <= 1.0
    raw = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    labels = np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    np.testing.assert_array_equal(tr.y, labels)
    np.testing.assert_array_equal(te.y, batches["test_batch"][b"labels"])
    # row layout: 1024 red, 1024 green, 1024 blue values, each image row-major
    np.testing.assert_allclose(tr.X[7, 1, 3, 5], raw[7, 1024 + 3 * 32 + 5] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(tr.X.reshape(len(tr), -1), raw / np.float32(255.0), rtol=1e-6)
    assert tr.class_names == tuple(NAMES) and tr.n_classes == 10
    assert tr.meta["origin"] == "folder" and tr.meta["split"] == "train" and str(folder) in tr.source
    assert tr.name == "cifar10-train"
    # root may be the batches folder itself
    flat = load_cifar10("test", root=folder, flatten=True, scale=False)
    assert flat.X.shape == (N_TEST, 3072) and flat.X.max() > 1.0
    np.testing.assert_array_equal(flat.X, batches["test_batch"][b"data"].astype(np.float32))


def test_archive_loads_the_same_as_the_folder(fake, fake_archive):
    folder, _ = fake
    arc, _ = fake_archive
    for split in ("train", "test"):
        a = load_cifar10(split, root=arc.parent)
        b = load_cifar10(split, root=folder.parent)
        assert a.meta["origin"] == "archive" and "MD5 verified" in a.source
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.y, b.y)
        assert a.class_names == b.class_names
    assert load_cifar10("test", root=arc).meta["origin"] == "archive"  # root may be the archive itself
    assert list(arc.parent.iterdir()) == [arc]  # read in place, nothing extracted


def test_cache_dir_follows_marginlab_data(fake, tmp_path, monkeypatch):
    folder, _ = fake
    monkeypatch.setenv("MARGINLAB_DATA", str(tmp_path / "data"))
    assert cifar_mod.cache_dir() == tmp_path / "data" / "cifar10"
    assert not cifar10_available()
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    folder.rename(tmp_path / "data" / "cifar10" / folder.name)
    assert cifar10_available()
    assert load_cifar10("test").meta["origin"] == "folder"


def test_missing_data_says_what_to_do(no_network, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10("train", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "download=True" in msg and cifar_mod.CIFAR10_URL in msg
    assert cifar_mod.CIFAR10_ARCHIVE in msg
    with pytest.raises(FileNotFoundError, match="MARGINLAB_DATA"):
        load_cifar10("test")  # the cache folder (no_network points MARGINLAB_DATA at a non-existent place)
    assert not cifar10_available() and not cifar10_available(tmp_path)


def test_incomplete_folder_is_named(fake):
    folder, _ = fake
    (folder / "data_batch_3").unlink()
    assert not cifar10_available(folder.parent)
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3"):
        load_cifar10("train", root=folder.parent)
    assert len(load_cifar10("test", root=folder.parent)) == N_TEST  # the test split is complete


def test_md5_mismatch_rejected_before_unpickling(fake, tmp_path, monkeypatch):
    folder, _ = fake
    (tmp_path / "arc").mkdir()
    arc = make_archive(folder, tmp_path / "arc" / cifar_mod.CIFAR10_ARCHIVE)  # the official MD5 is expected

    def no_unpickle(*a, **k):
        raise AssertionError("unpickled a file from an unverified archive")

    monkeypatch.setattr(cifar_mod, "_unpickle", no_unpickle)
    with pytest.raises(CIFARError, match="MD5"):
        load_cifar10("train", root=arc.parent)
    assert cifar_mod.CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"


def test_truncated_archive_rejected(fake, fake_archive, monkeypatch):
    arc, _ = fake_archive
    arc.write_bytes(arc.read_bytes()[:-200])
    # even with a matching sum, reading fails cleanly
    monkeypatch.setattr(cifar_mod, "CIFAR10_MD5", _md5(arc))
    with pytest.raises(CIFARError, match="cannot read|lacks"):
        load_cifar10("train", root=arc.parent)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.update({b"data": d[b"data"][:, :3000]}), r"shape \(n, 3072\)"),
        (lambda d: d.update({b"data": d[b"data"].astype(np.float32)}), "uint8"),
        (lambda d: d.update({b"labels": [10] * len(d[b"labels"])}), r"labels must lie in 0\.\.9"),
        (lambda d: d.update({b"labels": [-1] + d[b"labels"][1:]}), r"labels must lie in 0\.\.9"),
        (lambda d: d.update({b"labels": d[b"labels"][:-1]}), "images but"),
        (lambda d: d.update({b"labels": [0.5] * len(d[b"labels"])}), "integers"),
        (lambda d: d.pop(b"labels"), "no 'labels' entry"),
        ("not-a-dict", "expected the CIFAR-10 batch dict"),
        ("truncated", "not a valid CIFAR-10 python batch"),
        ("evil", "not allowed"),
    ],
)
def test_corrupt_batches_give_clear_errors(fake, change, match):
    folder, batches = fake
    path = folder / "data_batch_2"
    if change == "not-a-dict":
        _dump([1, 2, 3], path)
    elif change == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif change == "evil":
        _dump({b"data": _Evil(), b"labels": []}, path)
    else:
        d = dict(batches["data_batch_2"])
        change(d)
        _dump(d, path)
    with pytest.raises(CIFARError, match=match) as err:
        load_cifar10("train", root=folder.parent)
    assert "data_batch_2" in str(err.value)


def test_bad_meta_and_split(fake):
    folder, _ = fake
    _dump({b"label_names": [b"a"] * 9}, folder / "batches.meta")
    with pytest.raises(CIFARError, match="10 class names"):
        load_cifar10("test", root=folder.parent)
    with pytest.raises(ValueError, match="split must be one of"):
        load_cifar10("validation", root=folder.parent)


# -- fetching ---------------------------------------------------------------------------------------
def test_download_offline_fails_cleanly(no_network, tmp_path):
    with pytest.raises(CIFARError, match="could not fetch") as err:
        load_cifar10("test", root=tmp_path / "dl", download=True)
    assert "download" in str(err.value)
    assert list((tmp_path / "dl").iterdir()) == []  # no partial file left behind


def test_fetch_is_md5_checked_and_atomic(no_network, fake, fake_archive, tmp_path, monkeypatch):
    arc, _ = fake_archive
    url = arc.as_uri()  # a file:// URL: the download code path without a network
    dest = fetch_cifar10(tmp_path / "cache", url=url)
    assert dest == tmp_path / "cache" / cifar_mod.CIFAR10_ARCHIVE and _md5(dest) == _md5(arc)
    assert load_cifar10("test", root=tmp_path / "cache").meta["origin"] == "archive"
    monkeypatch.setattr(cifar_mod, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(CIFARError, match="MD5"):
        fetch_cifar10(tmp_path / "other", url=url)
    assert list((tmp_path / "other").iterdir()) == []  # the bad download was never renamed into place
    # load_cifar10(download=True) fetches into the cache folder when nothing is there
    monkeypatch.setattr(cifar_mod, "CIFAR10_MD5", _md5(arc))
    monkeypatch.setattr(cifar_mod, "CIFAR10_URL", url)
    monkeypatch.setenv("MARGINLAB_DATA", str(tmp_path / "env"))
    assert load_cifar10("train", download=True).meta["origin"] == "archive"
    assert (tmp_path / "env" / "cifar10" / cifar_mod.CIFAR10_ARCHIVE).exists()


# -- the study --------------------------------------------------------------------------------------
def test_cifar_study_spec_and_validation():
    spec = load_spec("missing-margin-cifar10")
    assert spec.data["dataset"] == "cifar10" and spec.model["family"] == "cnn"
    assert {c["kind"] for c in spec.corruptions} == {"none", "label", "gaussian"}
    assert min(spec.capacities) >= 10 and max(spec.capacities) <= 64  # seed 000: k between 10 and 64
    quick = spec.quick_version()
    assert 0 < len(quick.units()) < len(spec.units())
    raw = {"name": "x", "data": {"dataset": "moons"}, "model": {"family": "cnn"}, "capacities": [4]}
    with pytest.raises(ValueError, match="spec.model.family 'cnn' needs an image dataset"):
        ExperimentSpec.from_dict(raw)
    # an MLP on flattened CIFAR-10 is a valid spec too
    ExperimentSpec.from_dict({**raw, "data": {"dataset": "cifar10"}, "model": {"family": "mlp"}})


def test_missing_cifar_stops_the_run_before_training(no_network, tmp_path, monkeypatch):
    from marginlab.experiments import runner

    def no_training(*a, **k):
        raise AssertionError("training started without the data")

    monkeypatch.setattr(runner, "compute_unit", no_training)
    monkeypatch.setenv("MARGINLAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as err:
        run_experiment("missing-margin-cifar10", quick=True, out=tmp_path / "r", progress=False)
    msg = str(err.value)
    assert "CIFAR-10" in msg and "missing-margin-cifar10" in msg and "download=True" in msg
    assert str(tmp_path / "empty" / "cifar10") in msg
    assert not (tmp_path / "r").exists()


def test_cli_reports_missing_cifar(no_network, tmp_path, monkeypatch, capsys):
    from marginlab.cli import main

    monkeypatch.setenv("MARGINLAB_DATA", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as exc:
        main(["run", "missing-margin-cifar10", "--quick", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "needs the CIFAR-10 dataset" in capsys.readouterr().err
    assert main(["info"]) == 0 and "CIFAR-10: not found" in capsys.readouterr().out


def test_quick_cifar_study_runs_on_fake_data(fake, tmp_path, monkeypatch):
    folder, _ = fake
    monkeypatch.setenv("MARGINLAB_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    folder.rename(tmp_path / "data" / "cifar10" / folder.name)
    quick = load_spec("missing-margin-cifar10").quick_version()
    # the quick spec shrunk to the fake's size (60 training, 30 test images) and to CPU-test cost: the
    # first-order margin (one pass) instead of the exact solver, which would spend seconds per unit here
    raw = merge(quick.to_dict(), {
        "data": {"n_train": 40, "n_val": 20},
        "capacities": [2, 3],
        "train": {"epochs": 2, "device": "cpu"},
        # margins of every sample: 2 epochs on 40 fake images leave most of them misclassified, and seed
        # 000's setting (correctly classified only) would leave nothing to check here
        "margins": {"n_samples": 6, "method": "linearized", "skip_misclassified": False},
    })
    res = run_experiment(raw, out=tmp_path / "r", progress=False, save_models=False)
    u, s = res.units, res.samples
    assert len(u) == 6 and set(u.corruption) == {"none", "label", "gaussian"}
    assert len(s) == 6 * 6 and s.margin.notna().all() and (s.margin > 0).all()
    assert s.max_margin.notna().all() and (s.max_margin > 0).all()
    assert {"max_margin", "max_margin_before", "corrupted", "label_original"} <= set(s.columns)
    train, val = res.data(u.unit_id.iloc[2])
    assert train.input_shape == (3, 32, 32) and len(train) == 40 and len(val) == 20
    assert train.corruption == "label" and train.corrupted.sum() == 4 and "CIFAR-10" in train.source
