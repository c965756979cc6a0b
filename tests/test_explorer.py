"""Headless tests of the MNIST margin explorer: no frontend, clicks simulated through the callbacks."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from plotly.callbacks import BoxSelector, Points

from marginlab.viz.histograms import sample_groups
from marginlab.widgets.explorer import MarginExplorer

SMALL = dict(
    n_train=600,
    hidden=(32,),
    epochs=3,
    lr=0.05,
    corruption="label",
    fraction=0.2,
    n_samples=60,
    embeddings=("pca", "pca"),
    layers=("input", "hidden1"),
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("explorer-cache")


@pytest.fixture(scope="module")
def app(cache):
    a = MarginExplorer(cache_dir=cache, **SMALL)
    a.run()
    assert a.error is None, a.error
    # the result as first computed (a later test re-solves one row in place)
    a.snapshot = {
        f: getattr(a.session.result, f).copy()
        for f in ("margin", "point", "distances", "pred", "boundary_class", "converged")
    }
    return a


def click(app, side, k, trace=0):
    tr = app.figs[side].data[trace]
    app.on_embedding_click(tr, Points(point_inds=[k], xs=[tr.x[k]], ys=[tr.y[k]], trace_index=trace))
    return int(tr.customdata[k])


def test_click_shows_verified_boundary_point(app):
    # every trace's callback fires on a click; the ones not clicked get no indices and must be ignored
    app.on_embedding_click(app.figs[0].data[0], Points(point_inds=[], xs=[], ys=[]))
    assert app.details is None
    conv = np.flatnonzero(app.session.result.converged)
    assert len(conv) > len(app.session.rows) // 2
    tr = app.figs[0].data[0]
    k = int(np.flatnonzero(np.isin(np.asarray(tr.customdata), conv))[0])
    r = click(app, 0, k)
    det = app.details
    assert app.error is None and det["row"] == r and app.session.selected == r
    i, j = det["pred"], det["boundary_class"]
    assert i != j
    # the boundary image is classified as the i/j tie: i and j are the top two logits and (nearly) equal
    model = app.session.model.double()
    with torch.no_grad():
        f = model(torch.as_tensor(det["point"][None], dtype=torch.float64))[0].numpy()
    app.session.model.float()
    assert set(np.argsort(f)[-2:]) == {i, j}
    assert abs(f[i] - f[j]) <= 1e-5 * max(1.0, abs(f[i]))
    # the difference image has the reported norm, which is the margin
    x = app.session.train_data.X[app.session.rows[r]].astype(np.float64)
    assert np.linalg.norm(det["perturbation"]) == pytest.approx(det["margin"], rel=1e-6)
    np.testing.assert_allclose(det["perturbation"], det["point"] - x, atol=1e-12)
    assert det["margin"] == pytest.approx(np.nanmin(det["distances"]), rel=1e-9)
    # figures show it: images, bars and the selected mark in both linked views
    np.testing.assert_allclose(np.asarray(app.fig_images.data[1].z), det["point"][0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(app.fig_images.data[2].z), det["perturbation"][0], atol=1e-6)
    bars = np.asarray(app.fig_bars.data[0].y, dtype=float)
    assert np.isnan(bars[i]) and bars[j] == pytest.approx(det["margin"])
    for side in range(2):
        Z = app.session.embeddings[side]
        assert tuple(app.figs[side].data[-1].x) == pytest.approx((Z[r, 0],))
    # the nearest different-label training samples really are the nearest
    ds = app.session.train_data
    for when, X, y in (("before", ds.X_original, ds.y_original), ("after", ds.X, ds.y)):
        nb = det["nearest"][when]
        xq = (ds.X_original if when == "before" else ds.X)[app.session.rows[r]].reshape(-1)
        yq = y[app.session.rows[r]]
        d = np.linalg.norm(X.reshape(len(X), -1) - xq, axis=1)
        d[y == yq] = np.inf
        assert nb["index"] == int(np.argmin(d)) and nb["distance"] == pytest.approx(d.min(), rel=1e-5)
        assert nb["label"] != yq


def test_histogram_groups_match_corruption_mask(app):
    mask = app.session.train_data.corrupted[app.session.rows]
    assert mask.any() and not mask.all()
    np.testing.assert_array_equal(app.session.groups == "corrupt:label-corrupted", mask)
    app.w_correct_only.value = False
    ok = np.isfinite(app.session.result.margin)
    assert app.histogram_counts() == {
        "clean:label-corrupted": int((~mask & ok).sum()),
        "corrupt:label-corrupted": int((mask & ok).sum()),
    }
    n_hist = {tr.name.split(" ")[0]: int(np.sum(tr.y)) for tr in app.fig_hist.data}
    assert n_hist == app.histogram_counts()
    app.w_correct_only.value = True
    correct = app.session.result.pred == app.session.train_data.y[app.session.rows]
    assert app.histogram_counts().get("corrupt:label-corrupted", 0) == int((mask & ok & correct).sum())
    assert sample_groups(np.zeros(3, bool), None).tolist() == ["clean:clean"] * 3
    assert sample_groups(np.array([True, False]), "gaussian").tolist() == [
        "corrupt:input-corrupted",
        "clean:input-corrupted",
    ]


def test_range_selection_highlights_in_both_views(app):
    m = app.session.result.margin
    lo, hi = np.nanquantile(m, [0.2, 0.6])
    rows = app.select_range(lo, hi, group="clean:label-corrupted")
    expect = np.flatnonzero(
        app.session.histogram_mask() & (m >= lo) & (m <= hi) & (app.session.groups == "clean:label-corrupted")
    )
    np.testing.assert_array_equal(rows, expect)
    assert len(rows) > 0
    for side in range(2):
        assert len(app.figs[side].data[-2].x) == len(rows)
    assert app.fig_hist.layout.shapes[0].x0 == pytest.approx(lo)
    # a box selection on the histogram drives the same highlight
    app.on_histogram_selection(app.fig_hist.data[0], Points(), BoxSelector(xrange=[hi, lo]))
    np.testing.assert_array_equal(app.session.highlighted, app.select_range(lo, hi, group=app.w_group.value))
    app.clear_highlight()
    assert len(app.figs[0].data[-2].x) == 0
    for key in ("max margin", "group", "correct/incorrect", "clean/corrupted", "class", "margin"):
        app.w_embed[0]["color"].value = key
        assert app.error is None
        idx = np.concatenate([np.asarray(t.customdata) for t in app.figs[0].data[:-2]])
        assert sorted(idx.tolist()) == list(range(len(app.session.rows)))


def test_click_on_unsolved_sample_solves_all_classes(app):
    r = int(np.flatnonzero(app.session.result.converged)[0])
    before = app.session.result.margin[r], app.session.result.distances[r].copy()
    app.session.solved[r] = False
    app.session.result.margin[r] = np.nan
    app.session.result.distances[r] = np.nan
    det = app.select(r)
    assert app.session.solved[r] and det["margin"] == pytest.approx(before[0], rel=1e-6)
    np.testing.assert_allclose(det["distances"], before[1], rtol=1e-6)


def test_cache_round_trip_is_identical_and_instant(app, cache):
    again = MarginExplorer(cache_dir=cache, **SMALL)
    again.run()
    assert again.error is None
    assert again.session.from_cache == {"model": True, "margins": True}
    for f in ("margin", "point", "distances", "pred", "boundary_class", "converged"):
        np.testing.assert_array_equal(getattr(again.session.result, f), app.snapshot[f])
    for side in range(2):
        np.testing.assert_array_equal(again.session.embeddings[side], app.session.embeddings[side])
    assert not list(Path(cache).rglob("*.part"))  # atomic writes leave nothing half-written
    # a different corruption fraction is a different model
    other = MarginExplorer(cache_dir=cache, **{**SMALL, "fraction": 0.1, "epochs": 1})
    other.run()
    assert other.session.from_cache == {"model": False, "margins": False}


def test_saved_model_file_loads(app, tmp_path):
    from marginlab.models import save_model

    path = save_model(tmp_path / "m.pt", app.session.model)
    b = MarginExplorer(cache_dir=tmp_path / "c", model_path=path, **SMALL)
    b.run()
    assert b.error is None and b.session.from_cache["model"] is False
    np.testing.assert_array_equal(b.session.result.margin, app.snapshot["margin"])
    b.controls["model_path"].value = str(tmp_path / "missing.pt")
    b.run()
    assert "does not exist" in b.error and "does not exist" in b.w_message.value


def test_bad_input_shows_messages_not_tracebacks(app, tmp_path, no_network):
    b = MarginExplorer(cache_dir=tmp_path, **{**SMALL, "n_samples": 10_000})
    b.run()  # must not raise
    assert "larger than the training set" in b.error and b.session.result is None
    b.controls["n_samples"].value = 10
    b.w_embed[0]["method"].value = "tsne"
    b.run()
    assert "tsne embedding needs at least" in b.error
    b.update_embedding(1, layer="hidden5")
    assert "layer must be one of" in b.error
    b.controls["hidden"].value = "wide"
    b.run()
    assert "hidden must be integers separated by commas" in b.error
    full = MarginExplorer(cache_dir=tmp_path, data="full", **SMALL)
    full.run()  # no cached full MNIST and no network
    assert "not found" in full.error and "<" not in full.error
    fresh = MarginExplorer(cache_dir=tmp_path)
    fresh.select(0)
    fresh.select_range(0, 1)
    assert "press" in fresh.error


@pytest.mark.notebook
def test_notebook_runs_in_smoke_mode(tmp_path):
    nb = Path(__file__).resolve().parents[1] / "notebooks" / "02_mnist_explorer.ipynb"
    env = {**os.environ, "MARGINLAB_SMOKE": "1", "MARGINLAB_CACHE": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake", str(nb)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def test_your_own_model_without_images(digits, tmp_path):
    import base64
    import re

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    app = MarginExplorer(
        model=net,
        data=digits,
        image_shape=None,
        cache_dir=tmp_path,
        n_samples=50,
        embeddings=("pca", "pca"),
        umap_process=False,
        run=True,
    )
    assert app.error is None, app.error
    assert app.images_box.layout.display == "none"  # no image panels for non-image data
    assert app.w_embed[0]["layer"].layout.display == "none"  # a plain module: only its input to embed
    assert app.controls["hidden"].disabled and app.controls["epochs"].disabled  # nothing is trained
    assert app.controls["corruption"].disabled and app.controls["data_source"].value == "custom"
    det = click(app, 0, 2)
    assert app.details["row"] == det and "status" in app.w_details.value
    app.select_range(-1.0, 100.0)
    text = app.export_csv(tmp_path / "out.csv")
    link = re.search(r"base64,([^']+)'", app.w_download.value).group(1)
    assert base64.b64decode(link).decode() == text == (tmp_path / "out.csv").read_text()
    assert "model=model, data=(X, y)" in app.code()
    again = MarginExplorer.from_state(
        app.state(), model=net, data=digits, image_shape=None, cache_dir=tmp_path, umap_process=False
    )
    assert again.error is None and again.state() == app.state()
    np.testing.assert_array_equal(again.session.highlighted, app.session.highlighted)


def test_state_and_link_rebuild_the_app(app, cache):
    app.select(4)
    other = MarginExplorer.from_query(app.session.share_query(), cache_dir=cache)
    assert other.error is None and other.session.from_cache == {"model": True, "margins": True}
    assert other.session.selected == 4 and other.details["margin"] == app.session.select(4)["margin"]
    assert other.settings == app.settings


def test_open_follows_a_link_under_voila(app, cache, monkeypatch):
    monkeypatch.setenv("QUERY_STRING", app.session.share_query())
    opened = MarginExplorer.open(cache_dir=cache, n_samples=5)
    assert opened.error is None and opened.settings == app.settings and opened.session.result is not None
    monkeypatch.setenv("QUERY_STRING", "state=broken")
    fallback = MarginExplorer.open(cache_dir=cache, n_samples=5)
    assert fallback.settings.n_samples == 5 and "could not be opened" in fallback.w_message.value
