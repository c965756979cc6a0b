"""PlaygroundSession headless: no widget is built anywhere in this file."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from marginlab.margins import compute_margins
from marginlab.sessions import PlaygroundSession, SessionError, SettingsError, decode_state
from marginlab.viz.common import region_levels


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = dict(n_samples=80, hidden="16", lr=0.02, steps_per_tick=5, margin_every=2, device="cpu")


def make(**kw):
    return PlaygroundSession(**{**SMALL, **kw})


def weights(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))


def verify_point(model, point, i, j):
    with torch.no_grad():
        f = model.double()(torch.as_tensor(np.asarray(point, np.float64)[None]))[0].numpy()
    model.float()
    assert set(np.argsort(f)[-2:]) == {i, j}
    assert abs(f[i] - f[j]) <= 1e-5 * max(1.0, abs(f[i]), abs(f[j]))


def test_import_and_use_need_no_widget_code():
    code = (
        "import sys; import marginlab.sessions as s\n"
        "assert not {'torch', 'ipywidgets', 'plotly'} & set(sys.modules), 'heavy import at import time'\n"
        "ses = s.PlaygroundSession(n_samples=40, hidden='8', device='cpu', margin_every=1)\n"
        "ses.tick(); ses.select('train', 0); ses.add_point(0.0, 0.0, 1); ses.state()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'plotly', 'anywidget'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_tick_trains_and_publishes_exact_margins():
    s = make()
    assert s.margin_log["epoch"] == [0.0] and s.margins_exact
    z0 = region_levels(s.grid_logits(), s.grid.shape)
    results = [s.tick() for _ in range(4)]
    assert s.trainer.global_step == 20 and [r.margins for r in results] == [False, True, False, True]
    assert not np.array_equal(region_levels(results[-1].logits, s.grid.shape), z0)
    assert len(s.margin_log["epoch"]) == 3 and s.margins_version == s.version
    X, y = s._all_xy()
    ref = compute_margins(s.model, X, method="batched", y=y, signed=True)
    np.testing.assert_allclose(s.margins.margin, ref.margin, rtol=1e-9)
    groups = s.histogram_groups()
    assert sum(len(v) for v in groups.values()) == len(X)
    np.testing.assert_allclose(groups["test"], ref.margin[len(s.train):])


def test_select_gives_a_verified_nearest_point_with_status():
    s = make()
    for _ in range(3):
        s.tick()
    sel = s.select("test", 2)
    assert sel["status"] == "converged" and sel["verified"] and isinstance(sel["agree"], int)
    verify_point(s.model, sel["point"], sel["pred"], sel["boundary_class"])
    assert sel["margin"] == pytest.approx(np.linalg.norm(sel["point"] - sel["x"]), rel=1e-9)
    ref = compute_margins(s.model, s.test.X[2][None], method="batched")
    assert sel["margin"] == pytest.approx(float(ref.margin[0]), rel=1e-6)
    s.set_estimates(["linearized"])
    assert set(s.selection["estimates"]) == {"linearized"}
    with pytest.raises(SettingsError, match="No train sample #999"):
        s.select("train", 999)
    with pytest.raises(SessionError, match="estimates must be among"):
        s.set_estimates(["exact"])
    words = s.unverified()
    assert set(words) == {"train", "test"} and all(len(r) == len(w) for r, w in words.values())


def test_margins_refresh_beside_the_ticks_while_playing():
    s = make(margin_every=1)
    s.set_playing(True)
    s.select("train", 1)
    r = s.tick()  # starts a refresh on the worker thread, at a frozen copy of these weights
    job = s.refresh
    assert job is not None and job.version == s.version and job.model is not s.model
    assert not job.exact and job.options == {"max_iter": s.live_max_iter}
    snapshot = [p.clone() for p in job.model.parameters()]
    s.step(5)  # training goes on meanwhile; the snapshot does not move
    assert all(torch.equal(a, b) for a, b in zip(snapshot, job.model.parameters()))
    published = r.margins or s.wait_refresh()
    assert published and s.margins_version == job.version < s.version
    ref = compute_margins(job.model, *s._all_xy()[:1], method="batched", y=s._all_xy()[1], signed=True,
                          max_iter=s.live_max_iter)
    np.testing.assert_allclose(s.margins.margin, ref.margin, rtol=1e-9)
    # the selection follows the current weights (a bounded solve while playing), not the lagging margins
    now = compute_margins(s.model, s.train.X[1][None], method="batched", max_iter=s.live_max_iter)
    assert not s.selection["exact"] and s.selection["margin"] == pytest.approx(float(now.margin[0]), rel=1e-9)
    # pausing solves the current weights exactly
    assert s.set_playing(False) and s.margins_exact and s.margins_version == s.version


def test_points_added_meanwhile_discard_a_stale_refresh():
    s = make(margin_every=1)
    s.set_playing(True)
    s.tick()
    n = len(s.train)
    s.add_point(0.3, -0.2, 1)
    assert len(s.margins) == n + 1 + len(s.test)
    if s.refresh is not None:
        assert not s.wait_refresh()  # its rows no longer line up with the data
    assert len(s.margins) == len(s.train) + len(s.test)


def test_add_point_solves_only_the_new_point():
    s = make()
    s.tick()
    before = s.margins.margin.copy()
    n = len(s.train)
    row = s.add_point(0.25, -0.4, 1)
    assert row == n and len(s.train) == n + 1 and s.trainer.n_train == n + 1
    assert np.allclose(s.train.X[-1], [0.25, -0.4]) and s.train.y[-1] == 1 and not s.train.corrupted[-1]
    np.testing.assert_array_equal(s.margins.margin[:n], before[:n])
    np.testing.assert_array_equal(s.margins.margin[n + 1:], before[n:])
    ref = compute_margins(s.model, s.train.X[-1:], method="batched", y=s.train.y[-1:], signed=True)
    assert s.margins.margin[n] == pytest.approx(float(ref.margin[0]), rel=1e-9)
    with pytest.raises(SettingsError, match="Class must be between 0 and 1"):
        s.add_point(0, 0, 2)


def test_update_applies_live_settings_and_restarts_for_others():
    s = make()
    s.tick()
    run, step = s.run_id, s.trainer.global_step
    s.update(lr=0.005, batch_size=16)
    assert s.run_id == run and s.trainer.global_step == step and s.trainer.lr == pytest.approx(0.005)
    assert s.trainer.batch_size == 16
    s.update(hidden="8, 8")
    assert s.run_id == run + 1 and s.trainer.global_step == 0 and s.model.hidden == (8, 8)
    for bad, phrase in ((dict(lr=0), "Learning rate must be a number > 0"), (dict(hidden="8, 0"), "0-width"),
                        (dict(n_samples=5), "Number of samples"), (dict(colour="red"), "unknown setting")):
        with pytest.raises(SessionError, match=phrase):
            s.update(**bad)
        assert s.settings.hidden == "8, 8" and s.settings.lr == 0.005 and s.run_id == run + 1


def test_state_round_trips_through_json_and_a_link_with_the_same_weights():
    s = make(dataset="blobs", n_classes=4, label_corruption=10.0, hide=("optimizer",), lock=("dataset",))
    s.tick()
    s.add_point(0.1, 0.2, 3)
    s.tick()
    s.update(lr=0.005)
    s.tick()
    s.select("train", 4)
    state = json.loads(json.dumps(s.state()))
    for rebuilt in (PlaygroundSession.from_state(state, device="cpu"),
                    PlaygroundSession.from_query(s.share_query(), device="cpu")):
        assert rebuilt.settings == s.settings and rebuilt.trainer.global_step == s.trainer.global_step
        assert same_weights(rebuilt.model, s.model)
        np.testing.assert_array_equal(rebuilt.train.X, s.train.X)
        np.testing.assert_array_equal(rebuilt.train.y, s.train.y)
        assert (rebuilt.hide, rebuilt.lock) == (("optimizer",), ("dataset",))
        assert rebuilt.selection["row"] == 4 and rebuilt.selection["margin"] == pytest.approx(
            s.select("train", 4)["margin"], rel=1e-9)
        assert rebuilt.state() == state
    setup = PlaygroundSession.from_state(state, replay=False, device="cpu")
    assert setup.trainer.global_step == 0 and len(setup.train) == len(s.train)
    assert setup.settings.lr == 0.005


def test_damaged_or_foreign_states_are_refused_with_a_reason():
    s = make()
    with pytest.raises(SessionError, match="could not be read"):
        PlaygroundSession.from_query("state=abc")
    with pytest.raises(SessionError, match="not 'playground'"):
        PlaygroundSession.from_state({**s.state(), "app": "explorer"})
    with pytest.raises(SessionError, match="unknown setting"):
        PlaygroundSession.from_state({**s.state(), "settings": {"colour": 1}})
    with pytest.raises(SessionError, match="hide names unknown control"):
        make(hide=("volume",))
    assert decode_state(s.share_query().split("=", 1)[1])["settings"]["hidden"] == "16"


def test_own_data_any_labels_any_number_of_classes(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [3, 0], [0, 3], [3, 3], [6, 1]], float)
    y = np.repeat(np.array(["ant", "bee", "cat", "dog", "eel"]), 20)
    X = centres[np.repeat(np.arange(5), 20)] + rng.normal(0, 0.4, (100, 2))
    s = make(data=(X, y))
    assert s.settings.dataset == "custom" and s.n_classes == 5 and s.class_names[0] == "ant"
    assert len(s.train) + len(s.test) == 100 and s.model.n_classes == 5
    assert not s.settings.applies("noise") and not s.settings.applies("n_samples")
    s.tick()
    rebuilt = PlaygroundSession.from_state(json.loads(json.dumps(s.state())), device="cpu")
    assert rebuilt.class_names == s.class_names and same_weights(rebuilt.model, s.model)
    path = tmp_path / "points.csv"
    path.write_text("a,b,label\n" + "\n".join(f"{a},{b},{c}" for (a, b), c in zip(X, y)))
    from_csv = make(data=path)
    np.testing.assert_allclose(np.sort(from_csv.custom.X, 0), np.sort(X.astype(np.float32), 0))


@pytest.mark.parametrize("data, phrase", [
    ((np.zeros((10, 3)), np.arange(10) % 2), r"shape \(n, 2\)"),
    ((np.zeros((10, 2)), np.arange(9) % 2), "one label per point"),
    ((np.zeros((10, 2)), np.zeros(10)), "between 2 and 20 classes"),
    ((np.full((10, 2), np.nan), np.arange(10) % 2), "NaN"),
    ("/nonexistent/points.csv", "no CSV file"),
    (np.zeros((10, 2)), "pair"),
])
def test_own_data_errors_name_the_parameter(data, phrase):
    with pytest.raises(SessionError, match=phrase) as err:
        make(data=data)
    assert str(err.value).startswith("data")


def test_divergence_stops_training_with_a_message():
    s = make(optimizer="sgd", lr=10.0, loss="rescaled_square")
    with pytest.raises(SettingsError, match="diverged"):
        for _ in range(200):
            s.tick()
    with pytest.raises(SettingsError, match="diverged"):
        s.tick()
    s.update(lr=0.01)
    s.reset()
    s.tick()


def test_replay_export_matches_the_recorded_run(tmp_path):
    from marginlab.viz.replay import replay_figure

    s = make(max_frames=8)
    for k in range(20):
        s.tick()
        if k == 5:
            s.add_point(0.0, 0.5, 0)
    frames = s.recorder.frames
    assert 4 <= len(frames) <= 8 and frames[0]["step"] == 0 and frames[-1]["step"] <= 100
    steps = [f["step"] for f in frames]
    assert steps == sorted(steps) and len(set(np.diff(steps))) == 1  # evenly thinned
    fig = replay_figure(frames, s.recorder.datasets, s.grid, n_classes=2)
    assert len(fig.frames) == len(frames)
    last = fig.frames[-1].data
    np.testing.assert_array_equal(last[0].z, region_levels(frames[-1]["logits"].astype(float), s.grid.shape))
    n_train = len(s.recorder.datasets[frames[-1]["data"]]["train_X"])
    assert len(last[2].x) == n_train and n_train == len(s.train)
    path = s.export_replay(tmp_path / "run.html")
    text = path.read_text()
    assert text.count('"name":"') >= len(frames) and "plotly" in text and len(text) > 1_000_000
    assert not list(tmp_path.glob("*.part"))
