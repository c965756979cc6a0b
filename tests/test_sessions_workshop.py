"""The playground session's workshop features, headless (#18 items 2-4, #14 item 4): TensorFlow-Playground
controls, point editing with only the affected margins re-solved, hidden-layer views, the selected sample's
certificate."""

import numpy as np
import pytest
import torch

from marginlab.analysis.representation import layer_values
from marginlab.margins import compute_margins
from marginlab.sessions import PlaygroundSession, SettingsError

SMALL = dict(n_samples=80, hidden="16", lr=0.02, steps_per_tick=5, margin_every=2, device="cpu",
             background=False)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make(**kw):
    return PlaygroundSession(**{**SMALL, **kw})


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def weight_norm(model):
    return float(sum(m.weight.detach().pow(2).sum() for m in model.weight_layers()))


# -- controls ---------------------------------------------------------------------------------------------
def test_regularization_is_wired_live_and_shrinks_weights():
    plain, reg = make(), make(l2=0.3)
    assert reg.trainer.l2 == 0.3 and plain.trainer.l2 == 0.0
    plain.step(150)
    reg.step(150)
    assert weight_norm(reg.model) < 0.8 * weight_norm(plain.model)
    run = reg.run_id
    reg.update(l1=0.01, l2=0.0)  # live: the run goes on
    assert reg.run_id == run and reg.trainer.l1 == 0.01 and reg.trainer.l2 == 0.0
    assert reg.events[-1][1:] == ["set", {"l1": 0.01, "l2": 0.0}]


def test_dropout_trains_with_masks_and_replays_to_the_same_weights():
    s = make(hidden="16, 16", dropout=0.3)
    drops = [m for m in s.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.3 for m in drops)
    s.step(7)
    s.update(dropout=0.1)  # live
    assert all(m.p == 0.1 for m in drops)
    s.step(12)
    again = PlaygroundSession.from_state(s.state(), background=False)
    assert same_weights(again.model, s.model)
    # margins are measured in eval mode (dropout off): the exact margins are the same deterministic numbers
    s.refresh_margins()
    np.testing.assert_array_equal(again.margins.margin, s.margins.margin)


def test_input_features_keep_margins_in_the_plane():
    s = make(features=("x", "y", "xy", "sin x"))
    assert s.model.features == ("x", "y", "xy", "sin x") and s.settings.features == "x, y, xy, sin x"
    s.step(40)
    s.refresh_margins()
    sel = s.select("train", 3)
    assert sel["point"].shape == (2,)  # a boundary point in the input plane, through the feature map
    with torch.no_grad():
        f = s.model.double()(torch.as_tensor(sel["point"][None]))[0].numpy()
    s.model.float()
    top = np.sort(f)[-2:]
    assert abs(top[1] - top[0]) <= 1e-5 * max(1.0, abs(top[1]))
    assert make().model.features is None  # x, y: the raw point, no feature map


def test_regenerate_data_keeps_the_model_seed():
    s = make()
    X0 = s.train.X.copy()
    init = PlaygroundSession(**SMALL).model
    s.regenerate_data()
    assert s.settings.data_seed == 1 and s.settings.seed == 0
    assert not np.array_equal(s.train.X, X0)
    assert same_weights(s.model, init)  # the same initial weights on new data
    assert np.array_equal(PlaygroundSession.from_state(s.state(), background=False).train.X, s.train.X)


def test_view_toggles_do_not_restart_and_are_kept_in_the_state():
    s = make()
    s.step(5)
    run, step = s.run_id, s.trainer.global_step
    s.update(discretize=True, show_test=False)
    assert s.run_id == run and s.trainer.global_step == step and not s.events
    st = PlaygroundSession.from_state(s.state(), background=False).settings
    assert st.discretize is True and st.show_test is False


@pytest.mark.parametrize("change, words", [
    ({"l1": -0.1}, "L1 rate"), ({"l2": 2}, "L2 rate"), ({"dropout": 0.95}, "Dropout"),
    ({"hidden": "", "dropout": 0.2}, "Dropout acts on hidden units"),
    ({"features": "x, z"}, "Input features"),
    ({"features": ""}, "Input features"), ({"representation": 2}, "Representation"),
    ({"discretize": "yes"}, "Discretize"), ({"data_seed": -1}, "Data seed"),
])
def test_bad_control_values_are_refused_with_the_setting_named(change, words):
    s = make()
    before = s.settings
    with pytest.raises(SettingsError, match=words):
        s.update(**change)
    assert s.settings == before


# -- point editing ----------------------------------------------------------------------------------------
def _trained():
    s = make()
    s.step(30)
    s.refresh_margins()
    return s


def test_shift_click_deletes_the_nearest_point_and_solves_nothing():
    s = _trained()
    n, old = len(s.train), s.margins
    target = s.train.X[7].astype(float) + 1e-3
    assert s.delete_nearest(*target) == 7
    assert len(s.train) == n - 1 and s.last_edit["solved"] == 0
    keep = np.delete(np.arange(len(old)), 7)
    np.testing.assert_array_equal(s.margins.margin, old.margin[keep])  # every other margin carried over
    assert s.delete_nearest(100.0, 100.0) is None and len(s.train) == n - 1  # nothing near: no change


def test_move_and_brush_solve_only_their_own_margins():
    s = _trained()
    old = s.margins.margin.copy()
    n = len(s.train)
    s.move_point(4, 0.3, -0.2)
    assert s.last_edit == {"what": "move", "rows": [4], "solved": 1}
    fresh = compute_margins(s.model, np.array([[0.3, -0.2]], np.float32), y=[s.train.y[4]], signed=True)
    np.testing.assert_allclose(s.margins.margin[4], fresh.margin[0], rtol=1e-6)
    np.testing.assert_array_equal(np.delete(s.margins.margin, 4), np.delete(old, 4))
    s.brush(0.0, 0.5, 1, n=4)
    assert s.last_edit["solved"] == 4 and len(s.train) == n + 4
    assert (s.train.y[n:] == 1).all() and not s.train.corrupted[n:].any()
    fresh = compute_margins(s.model, s.train.X[n:], y=s.train.y[n:], signed=True)
    np.testing.assert_allclose(s.margins.margin[n:n + 4], fresh.margin, rtol=1e-6)
    assert len(s.margins) == len(s.train) + len(s.test)


def test_clear_then_paint_two_classes_to_train():
    s = _trained()
    s.clear_points()
    assert len(s.train) == 0 and len(s.margins) == len(s.test)
    with pytest.raises(SettingsError, match="two classes"):
        s.step()
    s.brush(-0.5, 0.0, 0)
    s.brush(1.0, 0.5, 1)
    s.step(5)
    assert s.trainer.global_step == 35


def test_edits_replay_from_a_link_and_follow_the_selection():
    s = _trained()
    s.select("train", 10)
    s.delete_nearest(*s.train.X[3])
    assert s.selection["row"] == 9  # row 10 moved up by one
    s.move_point(0, 0.1, 0.1)
    s.step(5)
    s.brush(0.2, 0.2, 0, n=3)
    s.step(5)
    again = PlaygroundSession.from_state(s.state(), background=False)
    np.testing.assert_array_equal(again.train.X, s.train.X)
    assert same_weights(again.model, s.model)


@pytest.mark.parametrize("call, words", [
    (lambda s: s.move_point(999, 0, 0), "row must be a training sample"),
    (lambda s: s.move_point(0, float("nan"), 0), "finite point"),
    (lambda s: s.brush(0, 0, 5), "class must be between 0 and 1"),
    (lambda s: s.brush(0, 0, 1, n=0), "brush points"),
])
def test_bad_edits_are_refused_and_change_nothing(call, words):
    s = _trained()
    n = len(s.train)
    with pytest.raises(ValueError, match=words):
        call(s)
    assert len(s.train) == n and not s.events


# -- hidden layers ------------------------------------------------------------------------------------------
def test_unit_strip_and_hovered_unit_are_the_layer_values():
    s = make(hidden="20, 3")
    s.step(10)
    strip = s.unit_strip(1)
    assert strip.shape == (16, 24, 24)  # at most 16 units are drawn
    g = s.strip_grid()
    expect = layer_values(s.model, g.points, 1)[:, :16].T.reshape(16, 24, 24)
    np.testing.assert_allclose(strip, expect, rtol=1e-5, atol=1e-6)
    unit = s.unit_surface(2, 1)
    np.testing.assert_allclose(unit.ravel(), layer_values(s.model, s.grid.points, 2)[:, 1], rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="layer must be a hidden layer, between 1 and 2"):
        s.unit_strip(3)
    with pytest.raises(ValueError, match="unit must be between 0 and 2"):
        s.unit_surface(2, 3)


def test_representation_of_a_2d_layer_is_exact_with_margins_measured_there():
    s = make(hidden="8, 2")
    s.step(30)
    assert s.representation_view() is None  # the input plane is the main surface
    s.update(representation=2)
    v = s.representation_view()
    assert v["kind"] == "identity" and v["exact"] and "2-D" in v["note"]
    direct = compute_margins(s.model, s.train.X, layer=2, y=s.train.y, signed=True)
    np.testing.assert_allclose(v["margins"].margin, direct.margin, rtol=1e-6)
    np.testing.assert_allclose(v["train"], layer_values(s.model, s.train.X, 2), rtol=1e-6)
    seg = np.linalg.norm(v["segments"][1] - v["segments"][0], axis=1)  # drawn length = margin there
    ok = np.isfinite(seg)
    np.testing.assert_allclose(seg[ok], np.abs(direct.margin[ok]), rtol=1e-5)


def test_representation_of_a_wide_layer_says_it_is_a_projection():
    s = make(hidden="16")
    s.update(representation=1)
    v = s.representation_view()
    assert v["kind"] == "pca" and not v["exact"] and "projection" in v["note"]


# -- certificate of the selected sample (#14 item 4) ------------------------------------------------------
def test_relu_selection_is_proved_global():
    s = _trained()
    sel = s.select("train", 2)
    cert = sel["certificate"]
    assert cert["kind"] == "proved" and cert["method"] == "mip"
    assert cert["lower"] >= cert["upper"] * (1 - 1e-4)
    assert cert["upper"] <= sel["margin"] * (1 + 1e-6)  # the proved optimum is never above batched's


def test_tanh_selection_gets_a_sound_bracket_and_features_none():
    s = make(activation="tanh")
    s.step(30)
    s.refresh_margins()
    cert = s.select("train", 2)["certificate"]
    assert cert["kind"] == "bracket" and 0 < cert["lower"] <= cert["upper"]
    f = make(features="x, y, x^2")
    f.step(5)
    assert f.select("train", 0)["certificate"]["kind"] == "none"
