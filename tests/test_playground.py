"""Playground view tests: the widgets draw what the session returns, clicks and controls reach it."""

import html

import numpy as np
import pytest
import torch

from marginlab.margins import compute_margins
from marginlab.widgets import Playground


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # reference solves below run outside the app, which itself uses one thread: tiny nets, shared CI cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


DEFAULTS = dict(
    n_samples=80,
    hidden="16",
    lr=0.02,
    steps_per_tick=5,
    margin_every=2,
    dataset="moons",
    label_corruption=0.0,
    input_corruption=0.0,
    batch_size=32,
    loss="cross_entropy",
    optimizer="adam",
)


def make_app(**kw):
    # background=False: a refresh completes inside its tick, so what a tick draws is deterministic here
    settings = dict(
        n_samples=80, hidden="16", lr=0.02, steps_per_tick=5, margin_every=2, device="cpu", background=False
    )
    settings.update(kw)
    app = Playground(**settings)
    assert app.error is None, app.error
    return app


def ses(app):
    return app.session


def trace(app, name):
    return app.surface.data[app._trace[name]]


def frontend_click(app, trace_name, point_index, x, y):
    """Deliver a click as the plotly frontend does (a points-callback message naming the clicked trace);
    plotly then calls every trace's on_click, the others with empty ``point_inds``."""
    k = app._trace[trace_name]
    app.surface._handler_js2py_pointsCallback(
        {
            "new": {
                "event_type": "plotly_click",
                "points": {"xs": [x], "ys": [y], "point_indexes": [point_index], "trace_indexes": [k]},
            }
        }
    )


def click_sample(app, trace_name, k):
    tr = trace(app, trace_name)
    frontend_click(app, trace_name, k, float(tr.x[k]), float(tr.y[k]))


@pytest.fixture(scope="module")
def shared_app():
    return make_app()


@pytest.fixture
def app(shared_app):
    """One app reused across tests (building figures is the slow part), restarted with the defaults."""
    shared_app.set(**DEFAULTS)
    shared_app.reset()
    assert shared_app.error is None, shared_app.error
    return shared_app


@pytest.fixture(scope="module")
def trained():
    app = make_app(n_samples=120)
    for _ in range(8):
        app.tick()
    assert app.error is None, app.error
    return app


def test_tick_trains_and_updates_views(app):
    z0 = np.array(trace(app, "regions").z).copy()
    n_curves = len(app.curves.data[0].x)
    app.tick()
    assert app.session.trainer.global_step == 5 and app.error is None
    for _ in range(5):
        app.tick()
    assert app.session.trainer.global_step == 30
    assert len(app.session.trainer.history) >= 1 and len(app.curves.data[0].x) > n_curves
    assert not np.array_equal(np.array(trace(app, "regions").z), z0)  # the class regions moved
    assert len(trace(app, "boundary").x) > 0
    assert f"epoch {app.session.trainer.epoch}" in app.status.value
    # the margin panel refreshed every second tick (plus once at reset)
    assert len(app.session.margin_log["epoch"]) == 1 + 6 // 2


def test_play_widget_drives_the_same_tick(app):
    app.play.playing = True
    app.play.value += 1  # what the frontend timer does
    app.play.value += 1
    assert app.session.trainer.global_step == 10
    app.play.playing = False
    app.play.value += 1  # a paused Play (e.g. its stop button resetting the value) does not train
    assert app.session.trainer.global_step == 10
    app.step_button.click()
    assert app.session.trainer.global_step == 15


@pytest.mark.parametrize(
    "trace_name, solved", [("train", "cached"), ("test", "cached"), ("train", "fresh"), ("test", "fresh")]
)
def test_click_sample_draws_verified_nearest_boundary_point(trained, trace_name, solved):
    app = trained
    if solved == "fresh":  # weights moved since the last margin refresh: the click solves the sample itself
        app.controls["margin_every"].value = 1000
        app.tick()
        app.controls["margin_every"].value = 2
    assert (app.session.margins_version == app.session.version) == (solved == "cached")
    tr = trace(app, trace_name)
    k = 3
    click_sample(app, trace_name, k)
    assert app.error is None, app.error
    sel = app.session.selection
    ds = app.session.train if trace_name == "train" else app.session.test
    row = int(tr.customdata[k])
    assert sel["split"] == trace_name and sel["row"] == row
    x = ds.X[row].astype(np.float64)
    # the drawn boundary point and segment
    bp = np.array([trace(app, "boundary_point").x[0], trace(app, "boundary_point").y[0]], dtype=np.float64)
    seg = trace(app, "segment")
    assert np.allclose([seg.x[0], seg.y[0]], x) and np.allclose([seg.x[1], seg.y[1]], bp)
    # residual check at the drawn point, in float64: classes i (pred) and j tie and are the top two
    with torch.no_grad():
        f = app.session.model.double()(torch.as_tensor(bp[None])).numpy()[0]
    app.session.model.float()
    i, j = sel["pred"], sel["boundary_class"]
    assert i != j
    assert abs(f[i] - f[j]) <= 1e-5 * max(1.0, abs(f[i]), abs(f[j]))
    assert set(np.argsort(f)[-2:]) == {i, j}
    # the reported margin is the solver's (the exact all-sample solve the margin panel shows, or a solve of
    # this sample alone), and the distance to the drawn point
    if solved == "cached":
        X_all = np.concatenate([app.session.train.X, app.session.test.X])
        k_all = row + (0 if trace_name == "train" else len(app.session.train))
        ref = compute_margins(app.session.model, X_all, method="batched").subset([k_all])
    else:
        ref = compute_margins(app.session.model, ds.X[row][None], method="batched")
    assert sel["exact"] and ref.converged[0]
    assert sel["margin"] == pytest.approx(float(ref.margin[0]), rel=1e-9)
    assert sel["margin"] == pytest.approx(np.linalg.norm(bp - x), rel=1e-9)
    assert f"{sel['margin']:.4f}" in app.info.value and f"class {j}" in app.info.value


def test_click_follows_training(trained):
    app = trained
    app.select("train", 5)
    m0 = app.session.selection["margin"]
    for _ in range(2):
        app.tick()  # margin_every=2: the selection is re-solved with the model
    ref = compute_margins(app.session.model, app.session.train.X[5][None], method="batched")
    assert app.session.selection["margin"] == pytest.approx(float(ref.margin[0]), rel=1e-6)
    assert np.isfinite(m0)
    # while playing, the margin panel uses a bounded solve; pausing re-solves exactly at the current weights
    app.play.playing = True
    app.tick()
    app.tick()
    assert not app.session.margins_exact and not app.session.selection["exact"] and "pause" in app.info.value
    app.controls["margin_every"].value = 1000
    app.tick()  # weights moved: a click while playing solves its sample with the bounded (live) solve
    app.controls["margin_every"].value = 2
    app.select("train", 6)
    assert app.error is None and not app.session.selection["exact"] and app.session.selection["converged"]
    app.play.playing = False
    s = app.session
    assert s.margins_exact and s.margins_version == s.version and s.selection["exact"]
    ref = compute_margins(s.model, np.concatenate([s.train.X, s.test.X]), method="batched")
    assert app.session.selection["margin"] == pytest.approx(float(ref.margin[6]), rel=1e-9)


def test_click_empty_space_adds_a_point(app):
    n = len(app.session.train)
    app.add_class.value = 1
    i, j = 7, 11
    x, y = float(app.session.grid.xs[j]), float(app.session.grid.ys[i])
    # a heatmap click: plotly reports [row, col] indices and the cell's x, y
    frontend_click(app, "regions", [i, j], x, y)
    assert app.error is None, app.error
    assert len(app.session.train) == n + 1 and app.session.trainer.n_train == n + 1
    s = app.session
    assert np.allclose(s.train.X[-1], [x, y]) and s.train.y[-1] == 1 and not s.train.corrupted[-1]
    assert len(trace(app, "train").x) == int((~app.session.train.corrupted).sum())
    assert "Added a class-1 point" in app.message.value
    # the margins stay row-aligned (train rows, then test rows); only the new point was solved
    assert len(app.session.margins) == len(app.session.train) + len(app.session.test)
    ref = compute_margins(s.model, s.train.X[-1:], method="batched", y=s.train.y[-1:], signed=True)
    assert np.allclose(app.session.margins.margin[n], ref.margin[0], equal_nan=True)
    assert app.session.margins_version == app.session.version and app.session.margins_exact
    # the direct method, then training continues on the enlarged set
    app.on_background_click(0.25, -0.4)
    assert len(app.session.train) == n + 2 and app.session.train.y[-1] == 1
    app.tick()
    assert app.error is None and app.session.trainer.global_step == 5
    # the margin panel counts the new points
    assert sum(int(np.sum(t.y)) for t in app.histogram.data[:2]) + _unsolved(app, 2) == n + 2


def _unsolved(app, n_traces):
    return sum(int(np.isnan(v).sum()) for v in list(app.session.histogram_groups().values())[:n_traces])


def test_histogram_counts_match_clean_and_corrupted(app):
    app.set(n_samples=150, label_corruption=20.0, input_corruption=10.0)
    assert app.error is None, app.error
    for _ in range(2):
        app.tick()
    n_corr = int(app.session.train.corrupted.sum())
    n_clean = len(app.session.train) - n_corr
    assert n_corr == round(0.2 * len(app.session.train)) + round(0.1 * len(app.session.train)) - int(
        (app.session.train.meta["label_corrupted"] & app.session.train.meta["input_corrupted"]).sum()
    )
    groups = app.session.histogram_groups()
    counts = [int(np.sum(t.y)) for t in app.histogram.data]
    nan = [int(np.isnan(v).sum()) for v in groups.values()]
    assert counts[0] + nan[0] == n_clean
    assert counts[1] + nan[1] == n_corr
    assert counts[2] + nan[2] == len(app.session.test)
    assert app.histogram.data[0].name.startswith(f"train clean ({n_clean})")
    assert app.histogram.data[1].name.startswith(f"train corrupted ({n_corr})")
    # corrupted samples are drawn in their own trace with distinct symbols
    corr = trace(app, "train_corrupted")
    assert len(corr.x) == n_corr and {"x", "diamond"} & set(corr.marker.symbol)
    # min and mean margin over training are logged as curves
    assert len(app.margin_plot.data[0].x) == len(app.session.margin_log["epoch"]) >= 2


def test_all_segments_and_estimates_overlays(trained):
    app = trained
    app.show_all.value = True
    segs = trace(app, "all_segments")
    assert len(segs.x) == 3 * int(np.isfinite(app.session.margins.margin[: len(app.session.train)]).sum())
    app.show_all.value = False
    assert len(trace(app, "all_segments").x) == 0
    app.show_estimates["linearized"].value = True
    app.select("train", 2)
    assert app.error is None, app.error
    lin = trace(app, "linearized")
    est = app.session.selection["estimates"]["linearized"]
    assert len(lin.x) == 3 and np.allclose([lin.x[1], lin.y[1]], est["point"], atol=1e-6)
    assert f"linearized {est['margin']:.4f}" in app.info.value
    app.show_estimates["linearized"].value = False
    assert len(trace(app, "linearized").x) == 0


@pytest.mark.parametrize(
    "setting, value, phrase",
    [
        ("n_samples", 0, "Number of samples"),
        ("label_corruption", 150.0, "Label corruption"),
        ("input_corruption", -5.0, "Input corruption"),
        ("hidden", "16, 0", "0-width layer"),
        ("hidden", "sixteen", "Hidden layers"),
        ("lr", 0.0, "Learning rate must be a number > 0"),
        ("lr", -0.1, "Learning rate must be a number > 0"),
        ("batch_size", 0, "Batch size"),
    ],
)
def test_bad_settings_show_a_message_and_the_app_recovers(app, setting, value, phrase):
    step0 = app.session.trainer.global_step
    app.controls[setting].value = value  # what typing into the control does
    assert app.error is not None and phrase in app.error
    assert html.escape(phrase) in app.message.value and "Traceback" not in app.message.value
    app.tick()  # ticks do nothing while the settings are invalid (no freeze, no exception)
    assert app.session.trainer.global_step == step0
    good = {
        "n_samples": 80,
        "label_corruption": 0.0,
        "input_corruption": 0.0,
        "hidden": "16",
        "lr": 0.02,
        "batch_size": 32,
    }[setting]
    app.controls[setting].value = good
    assert app.error is None and app.message.value == ""
    app.tick()
    assert app.session.trainer.global_step > 0


def test_unavailable_loss_and_optimizer_are_reported(app, monkeypatch):
    from marginlab import train

    monkeypatch.delitem(train.LOSSES, "hinge", raising=False)
    app.set(loss="hinge")
    assert app.error is not None and "not available" in app.error and "hinge" in app.error
    app.set(loss="cross_entropy")
    assert app.error is None
    monkeypatch.delitem(train.OPTIMIZERS, "nero", raising=False)
    app.set(optimizer="nero")
    assert "not available" in app.error


def test_set_rejects_unknown_and_recovers(app):
    app.set(colour="red")
    assert "unknown setting(s) colour" in app.error
    app.set(dataset="blobs", n_classes=4)
    assert app.error is None and app.session.n_classes == 4 and app.session.model.n_classes == 4
    assert [o[1] for o in app.add_class.options] == [0, 1, 2, 3]
    app.tick()
    assert app.error is None


def test_learning_rate_applies_live(app):
    app.tick()
    step = app.session.trainer.global_step
    app.controls["lr"].value = 0.005
    assert app.session.trainer.global_step == step and app.session.trainer.lr == pytest.approx(0.005)


def test_widgets_package_is_lazy():
    import marginlab.widgets as w

    assert "MarginExplorer" in w.__all__ and "Playground" in w.__all__
    with pytest.raises(AttributeError):
        _ = w.NoSuchApp


def test_controls_that_do_not_apply_are_hidden(app):
    assert app.controls["n_classes"].layout.display == "none"  # moons: always two classes
    app.set(dataset="spirals", n_classes=3)
    assert app.controls["n_classes"].layout.display is None and app.session.n_classes == 3
    app.set(dataset="moons")
    assert app.controls["n_classes"].layout.display == "none"


def test_share_link_and_code_rebuild_the_same_app(app, monkeypatch):
    import html as html_mod
    import re

    app.set(dataset="blobs", n_classes=3, hidden="8")
    app.tick()
    app.add_point(0.5, 0.5, 2)
    app.select("train", 1)
    m = re.search(r"data-kind='link' data-copy='([^']+)'", app.share.value)
    query = html_mod.unescape(m.group(1))
    assert query == app.session.share_query() and app.share_url("http://x/voila/render/nb.ipynb?a=1") == (
        "http://x/voila/render/nb.ipynb?" + query
    )
    other = Playground.from_query(query, device="cpu", background=False)
    assert other.state() == app.state() and other.session.selection["row"] == 1
    assert len(trace(other, "train").x) + len(trace(other, "train_corrupted").x) == len(app.session.train)
    # Voila hands the page's query string to the kernel: notebook 01 opens that state
    monkeypatch.setenv("QUERY_STRING", query + "&voila-extra=1")
    opened = Playground.open(n_samples=40, device="cpu")
    assert opened.state() == app.state()
    monkeypatch.setenv("QUERY_STRING", "state=damaged")
    fallback = Playground.open(n_samples=40, device="cpu")
    assert fallback.settings.n_samples == 40 and "could not be read" in fallback.message.value
    code = html_mod.unescape(re.search(r"data-kind='code' data-copy='([^']+)'", app.share.value).group(1))
    assert code == app.code()
    ns = {}
    exec(code, ns)  # what pasting "copy as code" into a cell does
    assert ns["app"].state() == app.state()


def test_plain_setups_copy_as_plain_arguments():
    code = Playground(n_samples=40, hidden="8", device="cpu", hide=("seed",)).code()
    assert "Playground(n_samples=40, hidden='8', hide=('seed',))" in code
    ns = {}
    exec(code, ns)
    assert ns["app"].settings.n_samples == 40 and ns["app"].session.hide == ("seed",)


def test_classroom_mode_hides_and_locks_controls():
    app = make_app(hide=("optimizer", "share"), lock=("dataset", "lr", "add_points"))
    assert app.controls["optimizer"].layout.display == "none" and app.share.layout.display == "none"
    assert app.controls["dataset"].disabled and app.controls["lr"].disabled
    assert not app.controls["hidden"].disabled and app.controls["hidden"].layout.display is None
    n = len(app.session.train)
    app.on_background_click(0.0, 0.0)  # adding points is locked
    assert len(app.session.train) == n
    again = Playground.from_state(app.state(), device="cpu")
    assert again.controls["dataset"].disabled and again.controls["optimizer"].layout.display == "none"


def test_status_words_are_shown_and_unconverged_samples_marked(trained, monkeypatch):
    app = trained
    app.select("train", 0)
    assert "status: " in app.info.value and app.session.selection["status"] in app.info.value
    # make the solver report two samples as not converged: they get rings with their status words
    res = app.session.margins
    res.status[[0, 3]] = "budget exhausted"
    res.status[5], res.margin[5] = (
        "no boundary point",
        np.nan,
    )  # no margin at all: counted as unsolved instead
    assert np.isfinite(res.margin[[0, 3]]).all()
    app._draw_margin_panel()
    ring = trace(app, "unverified")
    assert len(ring.x) == 2 and list(ring.text) == ["budget exhausted"] * 2
    assert np.allclose([ring.x[0], ring.y[0]], app.session.train.X[0])


def test_own_data_in_the_view(tmp_path):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 0.3, (30, 2)) for c in ((0, 0), (2, 2), (0, 2))])
    y = np.repeat([10, 20, 30], 30)
    app = Playground(data=(X, y), hidden="8", device="cpu")
    assert app.error is None and app.controls["dataset"].value == "custom"
    assert [o[0] for o in app.add_class.options] == ["10", "20", "30"]
    assert {app.controls[k].layout.display for k in ("noise", "n_samples")} == {"none"}
    with pytest.raises(ValueError, match=r"data: X must have shape \(n, 2\)"):
        Playground(data=(X[:, :1], y), device="cpu")


def test_export_writes_a_standalone_replay(trained, tmp_path):
    path = trained.export_replay(tmp_path / "replay.html")
    assert trained.error is None and path.exists() and "download the replay" in trained.download.value
    assert "Wrote" in trained.message.value and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    "first_use", ["import nbformat.v4", "from nbformat import v4", "import nbformat; nbformat.v4"]
)
def test_nbformat_loads_only_when_used(first_use):
    """The views defer nbformat (plotly's FigureWidget imported it only for fig.show(); 1-3 s of every app
    start): building figure widgets, importing torch (which scans sys.modules) leave it unloaded; any use
    loads it and it works as if imported normally."""
    import subprocess
    import sys

    code = (
        "import sys, inspect\nimport marginlab.widgets.playground\nimport torch, plotly.graph_objects as go\n"
        "go.FigureWidget(); inspect.getmodule(go.Figure)\n"
        "assert 'jsonschema' not in sys.modules, 'loaded too early'\n"
        f"{first_use}\nimport nbformat\n"
        "nb = nbformat.v4.new_notebook(); nbformat.validate(nb)\n"
        "assert nbformat.reads(nbformat.writes(nb), 4) == nb and nbformat.__version__\n"
        "assert type(sys.modules['nbformat']).__name__ == 'module'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
