"""ExplorerSession headless, on your own data and models (scikit-learn's 8x8 digits; any torch classifier)."""

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from marginlab.margins import available_methods
from marginlab.sessions import ExplorerSession, SessionError
from marginlab.sessions.explorer_settings import ExplorerSettings, explorer_methods


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


@pytest.fixture(scope="module")
def linear(digits):
    """A fixed random linear classifier (a plain torch module, not a marginlab model)."""
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(64, 10)).eval()


SMALL = dict(n_samples=60, embeddings=("pca", "pca"), umap_process=False)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """An MLP the session trains on the digits (own data, no model given), with label corruption."""
    s = ExplorerSession(
        data=digits,
        image_shape=(8, 8),
        cache_dir=tmp_path_factory.mktemp("cache"),
        hidden=(32,),
        epochs=3,
        lr=0.05,
        corruption="label",
        fraction=0.2,
        layers=("input", "hidden1"),
        **SMALL,
    )
    s.run()
    return s


def test_import_and_run_need_no_widget_code(tmp_path):
    code = (
        "import sys, numpy as np\nimport marginlab.sessions as s\n"
        "assert not {'torch', 'ipywidgets', 'plotly'} & set(sys.modules)\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(80, 5)).astype('float32')\n"
        "y = (X[:, 0] > 0) * 1\n"
        "ses = s.ExplorerSession(data=(X, y), hidden=(8,), epochs=1, n_samples=30,"
        f" cache_dir={str(tmp_path)!r},"
        " embeddings=('pca', 'pca'))\n"
        "ses.run(); ses.select(0); ses.select_range(-1, 10); ses.export_csv(); ses.state()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'plotly', 'anywidget'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_any_torch_classifier_known_answer(digits, linear, tmp_path):
    """A plain linear module: every margin is the closed form min_j (f_i - f_j) / ||w_i - w_j||."""
    s = ExplorerSession(model=linear, data=digits, image_shape=None, cache_dir=tmp_path, **SMALL)
    s.run()
    assert s.layer_names == ("input",) and s.image_shape is None and s.from_cache["model"] is False
    X = torch.as_tensor(s.train_data.X[s.rows])
    W, b = linear[0].weight.detach().double(), linear[0].bias.detach().double()
    f = X.double() @ W.T + b
    i = f.argmax(1)
    gap = f.gather(1, i[:, None]) - f
    norm = torch.linalg.vector_norm(W[i][:, None, :] - W[None], dim=2)
    ref = torch.where(gap > 0, gap / norm, torch.full_like(gap, float("inf"))).min(1).values.numpy()
    ok = s.result.converged
    assert ok.mean() > 0.9
    np.testing.assert_allclose(s.result.margin[ok], ref[ok], rtol=1e-5)
    det = s.select(int(np.flatnonzero(ok)[0]))
    assert det["status"] == "converged" and det["sample"].shape == (64,)
    assert det["perturbation_norm"] == pytest.approx(det["margin"], rel=1e-6)


def test_own_data_trains_a_model_and_draws_images(trained):
    s = trained
    assert s.settings.data_source == "custom" and s.image_shape == (8, 8)
    assert s.layer_names == ("input", "hidden1") and s.embeddings[1].shape == (60, 2)
    assert set(s.groups) == {"clean:label-corrupted", "corrupt:label-corrupted"}
    det = s.select(3)
    assert det["point"].reshape(8, 8).shape == (8, 8) and det["status"] in s.result.status
    for when in ("before", "after"):  # the nearest other-label training sample really is the nearest
        nb = det["nearest"][when]
        X = s.train_data.X_original if when == "before" else s.train_data.X
        y = s.train_data.y_original if when == "before" else s.train_data.y
        d = np.linalg.norm(X - X[s.rows[3]], axis=1)
        d[y == y[s.rows[3]]] = np.inf
        assert nb["index"] == int(np.argmin(d)) and nb["distance"] == pytest.approx(d.min(), rel=1e-5)


def test_view_settings_apply_without_a_new_run(trained):
    s = trained
    left, margins = s.embeddings[0], s.result
    s.update(colors=("status", "group"), correct_only=False)
    assert s.embeddings[0] is left and s.result is margins
    values, kind, _ = s.color("status")
    assert kind == "categorical" and list(values) == list(s.result.status)
    s.update(embeddings=("pca", "tsne"))
    assert s.embeddings[0] is left and s.embeddings[1].shape == (60, 2)
    with pytest.raises(SessionError, match="layer must be one of"):
        s.update(layers=("input", "hidden5"))
    assert s.settings.layers == ("input", "hidden1")
    s.update(embeddings=("pca", "pca"), colors=("margin", "class"), correct_only=True)


def test_csv_export_of_a_range(trained, tmp_path):
    s = trained
    lo, hi = np.nanquantile(s.result.margin, [0.1, 0.7])
    rows = s.select_range(lo, hi, group="clean:label-corrupted")
    assert len(rows) > 0 and s.highlight == (lo, hi, "clean:label-corrupted")
    path = tmp_path / "sel.csv"
    text = s.export_csv(path)
    df = pd.read_csv(io.StringIO(text))
    assert path.read_text() == text and not list(tmp_path.glob("*.part"))
    assert list(df["row"]) == list(rows)
    assert {
        "row",
        "label",
        "prediction",
        "margin",
        "status",
        "max_margin",
        "group",
        "left_pca_input_x",
        "right_pca_hidden1_y",
    } <= set(df.columns)
    np.testing.assert_allclose(df["margin"], s.result.margin[rows])
    np.testing.assert_allclose(df["max_margin"], s.maxmargin["after"][0][rows], rtol=1e-6)
    np.testing.assert_allclose(df["left_pca_input_x"], s.embeddings[0][rows, 0], rtol=1e-6)
    assert (df["group"] == "clean:label-corrupted").all() and list(df["status"]) == list(
        s.result.status[rows]
    )
    s.clear_highlight()
    assert len(s.selection_frame()) == len(s.rows)


def test_state_round_trips_and_needs_your_data_again(trained, digits):
    s = trained
    s.select(5)
    s.select_range(0.0, 1.0)
    state = json.loads(json.dumps(s.state()))
    assert state["data"] == "custom" and state["selected"] == 5
    with pytest.raises(SessionError, match="pass it again"):
        ExplorerSession.from_state(state)
    again = ExplorerSession.from_query(
        s.share_query(), data=digits, image_shape=(8, 8), cache_dir=s.store.root, umap_process=False
    )
    assert again.settings == s.settings and again.from_cache == {"model": True, "margins": True}
    np.testing.assert_array_equal(again.result.margin, s.result.margin)
    np.testing.assert_array_equal(again.highlighted, s.highlighted)
    assert again.selected == 5 and again.state() == state


def test_methods_offered_are_the_ones_that_run_here(digits, linear, tmp_path):
    offered = explorer_methods()
    assert offered == available_methods(p=2, kinds=("exact", "upper"), interactive=True, have=("reference",))
    assert "batched" in offered and "nlopt" not in offered and "linearized" not in offered
    with pytest.raises(SessionError, match="method must be one of"):
        ExplorerSettings(method="nlopt").validate()
    if "interpolation" in offered:  # needs the training set as reference: the session passes it
        s = ExplorerSession(
            model=linear, data=digits, image_shape=None, cache_dir=tmp_path, method="interpolation", **SMALL
        )
        s.run()
        exact = ExplorerSession(model=linear, data=digits, image_shape=None, cache_dir=tmp_path, **SMALL)
        exact.run()
        both = s.result.verified & exact.result.converged
        assert both.any() and np.all(s.result.margin[both] >= exact.result.margin[both] * (1 - 1e-6))


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        (dict(model=nn.Linear(64, 1)), r"logits of shape \(n, K\) with K >= 2"),
        (dict(model=nn.Linear(5, 10)), "does not accept inputs of shape"),
        (dict(model="not a model"), "torch.nn.Module"),
        (dict(model=nn.Linear(64, 3)), r"labels must lie in \[0, 2\]"),
        (dict(image_shape=(7, 9)), "must hold all 64 input values"),
        (dict(image_shape="square"), "image_shape must be None"),
    ],
)
def test_bad_model_data_or_shape_is_stopped_with_a_reason(digits, kwargs, phrase, tmp_path):
    with pytest.raises(SessionError, match=phrase):
        ExplorerSession(data=digits, cache_dir=tmp_path, **kwargs)


def test_bad_data_is_stopped_naming_data(digits, tmp_path):
    X, y = digits
    for data, phrase in (
        ((X, y[:-1]), "one label per sample"),
        ((X, y.astype(str)), "integer class indices"),
        ((X[:5], y[:5]), "n >= 10"),
        ("digits.csv", "pair"),
    ):
        with pytest.raises(SessionError, match=phrase):
            ExplorerSession(data=data, cache_dir=tmp_path)
    with pytest.raises(SessionError, match="model needs data"):
        ExplorerSession(model=nn.Linear(784, 10), cache_dir=tmp_path)
    s = ExplorerSession(data=digits, cache_dir=tmp_path, n_samples=5000)
    with pytest.raises(SessionError, match="larger than the training set"):
        s.run()
    with pytest.raises(SessionError, match="press"):
        ExplorerSession(data=digits, cache_dir=tmp_path).select(0)
