"""Headless Playground tests: the same methods the Play tick and the plotly click callbacks call."""

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
    settings = dict(n_samples=80, hidden="16", lr=0.02, steps_per_tick=5, margin_every=2, device="cpu")
    settings.update(kw)
    app = Playground(**settings)
    assert app.error is None, app.error
    return app


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
    assert app.trainer.global_step == 5 and app.error is None
    for _ in range(5):
        app.tick()
    assert app.trainer.global_step == 30
    assert len(app.trainer.history) >= 1 and len(app.curves.data[0].x) > n_curves
    assert not np.array_equal(np.array(trace(app, "regions").z), z0)  # the class regions moved
    assert len(trace(app, "boundary").x) > 0
    assert f"epoch {app.trainer.epoch}" in app.status.value
    # the margin panel refreshed every second tick (plus once at reset)
    assert len(app.margin_log["epoch"]) == 1 + 6 // 2


def test_play_widget_drives_the_same_tick(app):
    app.play.playing = True
    app.play.value += 1  # what the frontend timer does
    app.play.value += 1
    assert app.trainer.global_step == 10
    app.play.playing = False
    app.play.value += 1  # a paused Play (e.g. its stop button resetting the value) does not train
    assert app.trainer.global_step == 10
    app.step_button.click()
    assert app.trainer.global_step == 15


@pytest.mark.parametrize(
    "trace_name, solved", [("train", "cached"), ("test", "cached"), ("train", "fresh"), ("test", "fresh")]
)
def test_click_sample_draws_verified_nearest_boundary_point(trained, trace_name, solved):
    app = trained
    if solved == "fresh":  # weights moved since the last margin refresh: the click solves the sample itself
        app.controls["margin_every"].value = 1000
        app.tick()
        app.controls["margin_every"].value = 2
    assert (app._margins_version == app._version) == (solved == "cached")
    tr = trace(app, trace_name)
    k = 3
    click_sample(app, trace_name, k)
    assert app.error is None, app.error
    sel = app.selection
    ds = app.train if trace_name == "train" else app.test
    row = int(tr.customdata[k])
    assert sel["split"] == trace_name and sel["row"] == row
    x = ds.X[row].astype(np.float64)
    # the drawn boundary point and segment
    bp = np.array([trace(app, "boundary_point").x[0], trace(app, "boundary_point").y[0]], dtype=np.float64)
    seg = trace(app, "segment")
    assert np.allclose([seg.x[0], seg.y[0]], x) and np.allclose([seg.x[1], seg.y[1]], bp)
    # residual check at the drawn point, in float64: classes i (pred) and j tie and are the top two
    with torch.no_grad():
        f = app.model.double()(torch.as_tensor(bp[None])).numpy()[0]
    app.model.float()
    i, j = sel["pred"], sel["boundary_class"]
    assert i != j
    assert abs(f[i] - f[j]) <= 1e-5 * max(1.0, abs(f[i]), abs(f[j]))
    assert set(np.argsort(f)[-2:]) == {i, j}
    # the reported margin is the solver's (the exact all-sample solve the margin panel shows, or a solve of
    # this sample alone), and the distance to the drawn point
    if solved == "cached":
        X_all = np.concatenate([app.train.X, app.test.X])
        k_all = row + (0 if trace_name == "train" else len(app.train))
        ref = compute_margins(app.model, X_all, method="batched").subset([k_all])
    else:
        ref = compute_margins(app.model, ds.X[row][None], method="batched")
    assert sel["exact"] and ref.converged[0]
    assert sel["margin"] == pytest.approx(float(ref.margin[0]), rel=1e-9)
    assert sel["margin"] == pytest.approx(np.linalg.norm(bp - x), rel=1e-9)
    assert f"{sel['margin']:.4f}" in app.info.value and f"class {j}" in app.info.value


def test_click_follows_training(trained):
    app = trained
    app.select("train", 5)
    m0 = app.selection["margin"]
    for _ in range(2):
        app.tick()  # margin_every=2: the selection is re-solved with the model
    ref = compute_margins(app.model, app.train.X[5][None], method="batched")
    assert app.selection["margin"] == pytest.approx(float(ref.margin[0]), rel=1e-6)
    assert np.isfinite(m0)
    # while playing, the margin panel uses a bounded solve; pausing re-solves exactly at the current weights
    app.play.playing = True
    app.tick()
    app.tick()
    assert not app.margins_exact and not app.selection["exact"] and "pause" in app.info.value
    app.controls["margin_every"].value = 1000
    app.tick()  # weights moved: a click while playing solves its sample with the bounded (live) solve
    app.controls["margin_every"].value = 2
    app.select("train", 6)
    assert app.error is None and not app.selection["exact"] and app.selection["converged"]
    app.play.playing = False
    assert app.margins_exact and app._margins_version == app._version and app.selection["exact"]
    ref = compute_margins(app.model, np.concatenate([app.train.X, app.test.X]), method="batched")
    assert app.selection["margin"] == pytest.approx(float(ref.margin[6]), rel=1e-9)


def test_click_empty_space_adds_a_point(app):
    n = len(app.train)
    app.add_class.value = 1
    i, j = 7, 11
    x, y = float(app.grid.xs[j]), float(app.grid.ys[i])
    # a heatmap click: plotly reports [row, col] indices and the cell's x, y
    frontend_click(app, "regions", [i, j], x, y)
    assert app.error is None, app.error
    assert len(app.train) == n + 1 and app.trainer.n_train == n + 1
    assert np.allclose(app.train.X[-1], [x, y]) and app.train.y[-1] == 1 and not app.train.corrupted[-1]
    assert len(trace(app, "train").x) == int((~app.train.corrupted).sum())
    assert "Added a class-1 point" in app.message.value
    # the margins stay row-aligned (train rows, then test rows); only the new point was solved
    assert len(app.margins) == len(app.train) + len(app.test)
    ref = compute_margins(app.model, app.train.X[-1:], method="batched", y=app.train.y[-1:], signed=True)
    assert np.allclose(app.margins.margin[n], ref.margin[0], equal_nan=True)
    assert app._margins_version == app._version and app.margins_exact
    # the direct method, then training continues on the enlarged set
    app.on_background_click(0.25, -0.4)
    assert len(app.train) == n + 2 and app.train.y[-1] == 1
    app.tick()
    assert app.error is None and app.trainer.global_step == 5
    # the margin panel counts the new points
    assert sum(int(np.sum(t.y)) for t in app.histogram.data[:2]) + _unsolved(app, 2) == n + 2


def _unsolved(app, n_traces):
    return sum(int(np.isnan(v).sum()) for v in list(app.histogram_groups.values())[:n_traces])


def test_histogram_counts_match_clean_and_corrupted(app):
    app.set(n_samples=150, label_corruption=20.0, input_corruption=10.0)
    assert app.error is None, app.error
    for _ in range(2):
        app.tick()
    n_corr = int(app.train.corrupted.sum())
    n_clean = len(app.train) - n_corr
    assert n_corr == round(0.2 * len(app.train)) + round(0.1 * len(app.train)) - int(
        (app.train.meta["label_corrupted"] & app.train.meta["input_corrupted"]).sum()
    )
    groups = app.histogram_groups
    counts = [int(np.sum(t.y)) for t in app.histogram.data]
    nan = [int(np.isnan(v).sum()) for v in groups.values()]
    assert counts[0] + nan[0] == n_clean
    assert counts[1] + nan[1] == n_corr
    assert counts[2] + nan[2] == len(app.test)
    assert app.histogram.data[0].name.startswith(f"train clean ({n_clean})")
    assert app.histogram.data[1].name.startswith(f"train corrupted ({n_corr})")
    # corrupted samples are drawn in their own trace with distinct symbols
    corr = trace(app, "train_corrupted")
    assert len(corr.x) == n_corr and {"x", "diamond"} & set(corr.marker.symbol)
    # min and mean margin over training are logged as curves
    assert len(app.margin_plot.data[0].x) == len(app.margin_log["epoch"]) >= 2


def test_all_segments_and_estimates_overlays(trained):
    app = trained
    app.show_all.value = True
    segs = trace(app, "all_segments")
    assert len(segs.x) == 3 * int(np.isfinite(app.margins.margin[: len(app.train)]).sum())
    app.show_all.value = False
    assert len(trace(app, "all_segments").x) == 0
    app.show_estimates["linearized"].value = True
    app.select("train", 2)
    assert app.error is None, app.error
    lin = trace(app, "linearized")
    if "linearized" in app.selection["estimates"]:
        assert len(lin.x) == 3 and "linearized" in app.info.value
    else:  # the method is not there yet: a note, not an error
        assert "linearized: not available" in app.info.value
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
    step0 = app.trainer.global_step
    app.controls[setting].value = value  # what typing into the control does
    assert app.error is not None and phrase in app.error
    assert html.escape(phrase) in app.message.value and "Traceback" not in app.message.value
    app.tick()  # ticks do nothing while the settings are invalid (no freeze, no exception)
    assert app.trainer.global_step == step0
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
    assert app.trainer.global_step > 0


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
    assert "Unknown setting" in app.error
    app.set(dataset="blobs", n_classes=4)
    assert app.error is None and app.n_classes == 4 and app.model.n_classes == 4
    assert [o[1] for o in app.add_class.options] == [0, 1, 2, 3]
    app.tick()
    assert app.error is None


def test_learning_rate_applies_live(app):
    app.tick()
    step = app.trainer.global_step
    app.controls["lr"].value = 0.005
    assert app.trainer.global_step == step and app.trainer.lr == pytest.approx(0.005)


def test_widgets_package_is_lazy():
    import marginlab.widgets as w

    assert "MarginExplorer" in w.__all__ and "Playground" in w.__all__
    with pytest.raises(AttributeError):
        _ = w.NoSuchApp
