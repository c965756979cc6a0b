"""The workshop features in the views, without a browser (clicks simulated with plotly's points objects):
the playground's controls, edit tools, unit strip and certificate line, and the A/B comparison app."""

from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from marginlab.widgets import Compare, Playground, compare

SMALL = dict(n_samples=60, hidden="8, 2", device="cpu", background=False, margin_every=1, steps_per_tick=5)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def app():
    return Playground(**SMALL)


def click(trace, i, shift=False):
    return trace, NS(point_inds=[i], xs=[float(trace.x[i])], ys=[float(trace.y[i])]), NS(shift=shift)


def test_controls_reach_the_session_and_bad_values_show_in_place(app):
    app.controls["l2"].value = 0.01
    app.controls["dropout"].value = 0.2
    app.feature_boxes["xy"].value = True
    s = app.session
    assert app.error is None and s.trainer.l2 == 0.01 and s.model.dropout == 0.2
    assert s.model.features == ("x", "y", "xy")
    app.controls["l1"].value = -1.0
    assert "L1 rate must be between 0 and 1" in app.message.value and s.trainer.l1 == 0.0
    for box in app.feature_boxes.values():
        box.value = False
    assert "Input features" in app.message.value and s.model.features == ("xy",)  # the last accepted


def test_view_toggles_and_regenerate(app):
    regions = app.surface.data[app._trace["regions"]]
    app.controls["discretize"].value = True
    assert set(np.unique(regions.z) % 6) == {5}  # full colour only: the class, no confidence shading
    app.controls["show_test"].value = False
    assert app.surface.data[app._trace["test"]].visible is False
    X0 = app.session.train.X.copy()
    app.regen_button.click()
    assert app.error is None and app.session.settings.data_seed == 1
    assert not np.array_equal(app.session.train.X, X0)
    train = app.surface.data[app._trace["train"]]
    np.testing.assert_allclose(np.sort(np.asarray(train.x)), np.sort(app.session.train.X[:, 0]), rtol=1e-6)


def test_shift_click_brush_move_and_clear(app):
    s = app.session
    train = app.surface.data[app._trace["train"]]
    n = len(s.train)
    app.on_point_click(*click(train, 0, shift=True))
    assert len(s.train) == n - 1 and "re-solved 0 margin(s)" in app.message.value
    assert len(app.surface.data[app._trace["train"]].x) + len(
        app.surface.data[app._trace["train_corrupted"]].x) == n - 1
    app.edit_mode.value = "brush"
    regions = app.surface.data[app._trace["regions"]]
    app._on_regions_click(regions, NS(point_inds=[[1, 1]], xs=[0.1], ys=[0.2]), NS(shift=False))
    assert len(s.train) == n + 4 and "re-solved 5 margin(s)" in app.message.value
    app.edit_mode.value = "move"
    train = app.surface.data[app._trace["train"]]
    row = int(train.customdata[3])
    app.on_point_click(*click(train, 3))
    app._on_regions_click(regions, NS(point_inds=[[1, 1]], xs=[0.7], ys=[-0.3]), NS(shift=False))
    np.testing.assert_allclose(s.train.X[row], [0.7, -0.3], rtol=1e-6)
    app.clear_button.click()
    assert len(s.train) == 0 and app.edit_mode.value == "brush"
    app.tick()
    assert "at least two classes" in app.message.value  # a message in place, no traceback


def test_strip_hover_paints_the_surface_and_representation_note(app):
    assert len(app.strip.data) == 8 and app.strip_layer.options == (("layer 1", 1), ("layer 2", 2))
    unit = app.surface.data[app._trace["unit"]]
    app._on_unit_hover(app.strip.data[5], NS(point_inds=[[2, 2]]), None)
    assert unit.visible is True
    np.testing.assert_allclose(np.asarray(unit.z), app.session.unit_surface(1, 5), rtol=1e-6)
    app._on_unit_unhover(app.strip.data[5], NS(point_inds=[[2, 2]]), None)
    assert unit.visible is False
    app.controls["representation"].value = 2
    assert "exact" in app.rep_note.value and "layer 2 is 2-D" in app.rep_note.value
    app.set(hidden="8")
    app.controls["representation"].value = 1
    assert "fixed 2-D projection" in app.rep_note.value


def test_selected_sample_shows_proved_global(app):
    app.tick()
    app.select("train", 2)
    assert "proved global" in app.info.value


def test_compare_one_play_drives_both_and_click_selects_both():
    c = compare(a={"loss": "cross_entropy"}, b={"loss": "hinge"}, **{**SMALL, "hidden": "8"})
    c.play.playing = True
    c.play.value += 1  # what a Play tick does
    c.play.playing = False
    steps = {k: c.session.sides[k].trainer.global_step for k in ("a", "b")}
    assert steps == {"a": 5, "b": 5} and c.error is None
    assert "A" in c.status.value and "B" in c.status.value
    # margins at start, after the tick (bounded: it was playing) and at the pause (exact again)
    assert [len(t.x) for t in c.curves.data] == [3, 3, 3, 3]
    train = c.surfaces["a"].data[c._trace["train"]]
    c._on_point_click(*click(train, 4))
    row = int(train.customdata[4])
    for k in ("a", "b"):
        assert f"train #{row}: margin" in c.infos[k].value
        assert len(c.surfaces[k].data[c._trace["boundary_point"]].x) == 1
    assert "marginlab-copy-link" in c.share.value
    again = Compare.from_query(c.session.share_query(), background=False)
    assert again.session.sides["b"].trainer.global_step == 5


def test_compare_diverging_side_stops_with_a_message():
    c = compare(a={"lr": 0.01}, b={"lr": 10.0, "optimizer": "sgd", "loss": "rescaled_square"},
                **{**SMALL, "hidden": "8"})
    for _ in range(60):
        c.tick()
        if c.error:
            break
    assert "diverged" in c.error and "marginlab-error" in c.messages.widget.value
    steps = c.session.sides["a"].trainer.global_step
    c.tick()  # a diverged comparison does not tick on
    assert c.session.sides["a"].trainer.global_step == steps
