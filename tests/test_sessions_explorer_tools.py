"""The explorer's selection toolkit and certification, headless (8x8 digits, a small ReLU MLP)."""

import numpy as np
import pytest
import torch
from torch import nn

from marginlab.sessions import ExplorerSession, SessionError
from marginlab.sessions.explorer import CERT_GROUPS


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tools-cache")


SETUP = dict(image_shape=(8, 8), hidden=(32,), epochs=3, lr=0.05, corruption="label", fraction=0.2,
             layers=("input", "hidden1"), n_samples=60, embeddings=("pca", "tsne"), perplexity=10,
             umap_process=False)


@pytest.fixture(scope="module")
def ses(digits, cache):
    torch.set_num_threads(1)
    s = ExplorerSession(data=digits, cache_dir=cache, **SETUP)
    s.run()
    return s


def test_search_by_label_index_and_group(ses):
    y, idx = ses.train_data.y[ses.rows], ses.rows
    rows = ses.search("label:3,5")
    assert len(rows) and np.array_equal(rows, np.flatnonzero(np.isin(y, [3, 5])))
    assert np.array_equal(ses.highlighted, rows) and ses.query == "label:3,5"
    lo, hi = int(idx[10]), int(idx[40])
    rows = ses.search(f"group:corrupt {lo}-{hi}")
    want = np.flatnonzero((idx >= lo) & (idx <= hi) & np.char.startswith(ses.groups.astype(str), "corrupt"))
    assert len(want) and np.array_equal(rows, want)
    assert len(ses.search("")) == 0 and ses.query is None  # an empty query clears
    with pytest.raises(SessionError, match="unknown key 'colour'.*label, index, group, row"):
        ses.search("colour:3")
    with ses.guard("search"):
        ses.search("index:abc")
    assert ses.error.startswith("search: ") and "'10-20'" in ses.error


def test_neighbours_in_input_and_layer_space_are_the_nearest(ses):
    ses.select(7)
    for space in ("input", "hidden1"):
        nb = ses.neighbours(k=4, space=space)
        X = torch.as_tensor(ses.train_data.X[ses.rows])
        F = X.numpy() if space == "input" else ses.model.activations(X, 1).detach().numpy()
        d = np.linalg.norm(F.astype(np.float64) - F[7], axis=1)
        d[7] = np.inf
        assert np.array_equal(nb["rows"], np.argsort(d, kind="stable")[:4])
        np.testing.assert_allclose(nb["distance"], np.sort(d)[:4], rtol=1e-5)
        np.testing.assert_array_equal(nb["margin"], ses.result.margin[nb["rows"]])
    with pytest.raises(SessionError, match="space must be one of"):
        ses.neighbours(k=3, space="hidden9")
    with pytest.raises(ValueError, match="k must be"):
        ses.neighbours(k=0)


def test_saved_selections_survive_a_new_run_and_travel_in_the_state(ses, digits, cache):
    ses.select_rows([3, 1, 4, 1])
    saved = ses.save_selection("lasso A")
    assert saved == sorted(ses.rows[[1, 3, 4]].tolist())
    ses.search("label:2")
    ses.save_selection("twos")
    with pytest.raises(SessionError, match="selection name"):
        ses.save_selection("  ")
    with pytest.raises(SessionError, match="no saved selection 'nope'"):
        ses.load_selection("nope")
    state = ses.state()
    assert state["selections"]["lasso A"] == saved and state["search"] == "label:2"
    other = ExplorerSession.from_state(state, data=digits, cache_dir=cache, umap_process=False)
    assert np.array_equal(other.highlighted, ses.highlighted)  # the search was replayed
    assert np.array_equal(other.load_selection("lasso A"), [1, 3, 4])
    for bad in ({"k": "5", "space": "input"}, {"k": 0, "space": "input"}, [3]):
        with pytest.raises(SessionError, match="state.neighbours must be"):
            ExplorerSession.from_state({**state, "neighbours": bad}, run=False, data=digits, cache_dir=cache)
    # a run exploring other samples keeps the selection as training indices: present ones highlighted
    other.update(n_samples=80, seed=1)
    other.run()
    rows = other.load_selection("twos")
    assert np.array_equal(np.sort(other.rows[rows]), np.intersect1d(other.rows, state["selections"]["twos"]))


def test_embedding_parameters_are_range_checked_and_re_embed(ses):
    before = [z.copy() for z in ses.embeddings]
    ses.update(perplexity=5)
    assert np.array_equal(ses.embeddings[0], before[0])  # PCA does not read perplexity
    assert not np.allclose(ses.embeddings[1], before[1])  # t-SNE was recomputed
    for name, value, phrase in (("perplexity", 1.0, r"perplexity must be in \[2, 100\]"),
                                ("n_neighbors", 500, r"n_neighbors must be .*200"),
                                ("min_dist", -0.1, r"min_dist must be in \[0, 1\]")):
        with pytest.raises(SessionError, match=phrase):
            ses.update(**{name: value})
    assert ses.settings.perplexity == 5
    with pytest.raises(SessionError, match="perplexity = 80.*lower perplexity"):
        ses.update(perplexity=80)  # above the 60 explored samples
    ses.update(perplexity=10)


def test_certify_brackets_the_margin_with_the_mip(ses):
    ses.select(5)
    margin = ses.result.margin.copy()
    assert ses.certify_method() == "mip"
    b = ses.certify(list(range(12)), time_limit=20)
    assert np.all(b["lower"] <= b["upper"]) and np.all(b["upper"] <= margin[:12])
    assert b["certified"].mean() >= 0.9 and set(b["how"]) == {"mip"}
    np.testing.assert_array_equal(ses.result.margin[:12], b["upper"])  # nearer MIP points replace
    assert ses.details["bracket"]["how"] == "mip"  # the selected sample's details were refreshed
    ses.update(histogram_color="certified")
    counts = ses.histogram_counts()
    assert set(counts) <= set(CERT_GROUPS) and counts.get("not checked", 0) > 0
    ok = ses.histogram_mask()
    assert counts.get("certified", 0) == int((b["certified"] & ok[:12]).sum())
    ses.update(histogram_color="group")
    with pytest.raises(SessionError, match="at most 50 samples"):
        ses.certify(np.arange(55))


def test_certify_bounds_on_a_tanh_net(digits, tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10)).eval()
    s = ExplorerSession(model=net, data=digits, image_shape=None, cache_dir=tmp_path, n_samples=30,
                        embeddings=("pca", "pca"), umap_process=False)
    s.run()
    assert s.certify_method() == "bounds"
    b = s.certify(np.arange(30))
    assert np.all(np.isfinite(b["lower"])) and np.all(b["lower"] > 0)
    assert np.all(b["lower"] <= s.result.margin * (1 + 1e-9)) and set(b["how"]) == {"bounds"}
    assert np.median(b["lower"] / b["upper"]) > 0.3


def test_isolate_hides_the_others_and_travels_in_the_state(ses, digits, cache):
    ses.search("label:4")
    rows = ses.highlighted
    ses.set_isolate(True)
    Z = ses.shown_embedding(0)
    assert np.array_equal(np.flatnonzero(np.isfinite(Z[:, 0])), rows)
    np.testing.assert_array_equal(Z[rows], ses.embeddings[0][rows])
    with pytest.raises(SessionError, match="isolate must be True or False"):
        ses.set_isolate("yes")
    again = ExplorerSession.from_state(ses.state(), data=digits, cache_dir=cache, umap_process=False)
    assert again.isolate and np.array_equal(np.isfinite(again.shown_embedding(1)[:, 0]), np.isfinite(Z[:, 0]))
    ses.set_isolate(False)
    assert ses.shown_embedding(0) is ses.embeddings[0]
