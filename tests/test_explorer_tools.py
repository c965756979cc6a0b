"""The explorer view's toolkit headless: search box, lasso (plotly's per-trace selection callbacks), saved
selections, neighbours panel, embedding parameters and certify buttons; bad input is a message in place."""

import numpy as np
import pytest
import torch
from plotly.callbacks import LassoSelector, Points

from marginlab.widgets import MarginExplorer


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


@pytest.fixture(scope="module")
def app(digits, tmp_path_factory):
    torch.set_num_threads(1)
    a = MarginExplorer(data=digits, image_shape=(8, 8), cache_dir=tmp_path_factory.mktemp("c"), hidden=(32,),
                       epochs=3, lr=0.05, corruption="label", fraction=0.2, layers=("input", "hidden1"),
                       n_samples=60, embeddings=("pca", "tsne"), perplexity=10, umap_process=False, run=True)
    assert a.error is None, a.error
    return a


def lasso(app, side, picks):
    """What plotly does on a lasso: every trace's selection callback in order, each with its own points."""
    fw, sel = app.figs[side], LassoSelector(xs=[0, 1, 1], ys=[0, 0, 1])
    for i, tr in enumerate(fw.data):
        pts = picks.get(i, [])
        app.on_embedding_selection(side, tr, Points(point_inds=pts, xs=[], ys=[], trace_index=i), sel)


def test_search_box_highlights_and_bad_query_is_a_message(app):
    app.w_search.value = "label:3"
    y = app.session.train_data.y[app.session.rows]
    assert app.error is None and np.array_equal(app.session.highlighted, np.flatnonzero(y == 3))
    hx = app.figs[1].data[-2].x  # the highlight rings follow in both views
    assert len(hx) == (y == 3).sum()
    app.w_search.value = "colour:3"
    assert "unknown key 'colour'" in app.error and "marginlab-error" in app.w_message.value
    assert "Traceback" not in app.w_message.value


def test_lasso_gathers_rows_over_traces_then_saves_and_reloads(app):
    fw = app.figs[1]  # coloured by class: one data trace per class
    picks = {0: [0, 1], 2: [0]}
    cd = [np.asarray(t.customdata) for t in fw.data]
    want = sorted({int(cd[0][0]), int(cd[0][1]), int(cd[2][0])})
    lasso(app, 1, picks)
    assert app.error is None and app.session.highlighted.tolist() == want
    assert len(app.figs[0].data[-2].x) == 3
    app.w_sel_name.value = "my lasso"
    app.w_save.click()
    assert app.w_saved.options == ("my lasso",)
    app.clear_highlight()
    app.w_show_saved.click()
    assert app.session.highlighted.tolist() == want
    assert app.state()["selections"]["my lasso"] == sorted(app.session.rows[want].tolist())
    app.w_sel_name.value = ""
    app.w_save.click()
    assert "selection name" in app.error


def test_click_shows_neighbours_and_certify_shows_the_bracket(app):
    app.select(4)
    assert "5 nearest to row 4" in app.w_nb_table.value and len(app.fig_nb.data) == 5
    app.w_nb_space.value = "hidden1"
    assert "in hidden1 space" in app.w_nb_table.value
    app.w_nb_k.value = 3
    assert len(app.fig_nb.data) == 3
    assert "not checked" in app.w_details.value
    app.w_certify.click()
    b = app.session.bracket([4])
    assert app.error is None and b["lower"][0] <= b["upper"][0]
    assert f"[{b['lower'][0]:.4f}, {b['upper'][0]:.4f}]" in app.w_details.value
    app.w_hist_color.value = "certified"
    names = [t.name.split(" (")[0] for t in app.fig_hist.data]
    assert "not checked" in names and app.fig_hist.layout.title.text.startswith("margins by certification")


def test_embedding_parameter_out_of_range_is_a_message_and_a_good_one_re_embeds(app):
    before = np.array(app.figs[1].data[0].x)
    app.w_params["perplexity"].value = 500
    assert "perplexity must be in [2, 100]" in app.error and app.session.settings.perplexity == 10
    app.w_params["perplexity"].value = 5
    assert app.error is None and not np.allclose(np.array(app.figs[1].data[0].x), before)
    assert app.state()["settings"]["perplexity"] == 5


def test_the_link_carries_selections_search_and_neighbours(app, digits):
    app.select(4)
    app.neighbours(k=3, space="input")
    app.w_search.value = "label:1"
    state = app.state()
    again = MarginExplorer.from_state(state, data=digits, cache_dir=app.session.store.root,
                                      umap_process=False)
    assert again.error is None, again.error
    assert np.array_equal(again.session.highlighted, app.session.highlighted)
    assert again.w_saved.options == app.w_saved.options and "my lasso" in again.w_saved.options
    assert "3 nearest to row 4" in again.w_nb_table.value


def test_tools_before_a_run_say_what_to_do(tmp_path):
    fresh = MarginExplorer(cache_dir=tmp_path)
    fresh.search("label:3")
    assert "press" in fresh.error
    fresh.certify()
    assert "press" in fresh.error


def test_isolate_draws_only_the_highlighted_samples(app):
    app.search("label:7")
    want = set(app.session.highlighted.tolist())
    app.w_isolate.value = True

    def drawn(side):
        fw = app.figs[side]
        pairs = [(c, x) for tr in fw.data[:-2] for c, x in zip(tr.customdata, np.asarray(tr.x, float))]
        return {int(c) for c, x in pairs if np.isfinite(x)}

    assert app.error is None and drawn(0) == want and drawn(1) == want
    assert f"{len(want)} of 60 samples, isolated" in app.figs[0].layout.title.text
    assert app.state()["isolate"] is True
    app.clear_highlight()  # nothing highlighted: everything is drawn again
    assert len(drawn(0)) == 60
    app.w_isolate.value = False
