"""CompareSession headless (#18 item 1): two playgrounds on the same data and seed, one tick for both."""

import numpy as np
import pytest
import torch

from marginlab.sessions import CompareSession, PlaygroundSession, SessionError

SMALL = dict(n_samples=80, hidden="16", lr=0.02, steps_per_tick=5, margin_every=2, device="cpu",
             background=False)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make(**kw):
    return CompareSession(**{"a": {"loss": "cross_entropy"}, "b": {"loss": "hinge"}, **SMALL, **kw})


def test_both_sides_share_data_and_seed_and_differ_only_as_asked():
    c = make(b={"loss": "hinge", "label_corruption": 20.0})
    a, b = c.sides["a"], c.sides["b"]
    np.testing.assert_array_equal(a.test.X, b.test.X)
    np.testing.assert_array_equal(a.train.y_original, b.train.y_original)
    assert b.train.corrupted.mean() == pytest.approx(0.2, abs=0.02) and not a.train.corrupted.any()
    wa, wb = a.model.state_dict().values(), b.model.state_dict().values()
    assert all(torch.equal(x, y) for x, y in zip(wa, wb))
    assert (a.settings.loss, b.settings.loss) == ("cross_entropy", "hinge")
    assert c.labels == {"a": "A: loss=cross_entropy", "b": "B: loss=hinge, label_corruption=20.0"}


def test_one_tick_drives_both_and_curves_and_histograms_follow():
    c = make()
    for _ in range(4):
        c.tick()
    assert c.sides["a"].trainer.global_step == c.sides["b"].trainer.global_step == 20
    groups = c.histogram_groups()
    assert list(groups) == ["A train", "B train"]
    np.testing.assert_array_equal(groups["B train"], c.sides["b"].margins.margin[:len(c.sides["b"].train)])
    epochs, curves = c.margin_curves()
    assert list(curves) == ["A min", "A mean", "B min", "B mean"]
    assert len(curves["A min"]) == len(epochs["A min"]) == 3  # at start and after ticks 2 and 4
    assert curves["B min"][-1] == pytest.approx(np.nanmin(groups["B train"]))


def test_a_common_change_reaches_both_sides_unless_a_side_sets_it():
    c = make(a={"lr": 0.05})
    c.update(lr=0.01, l2=0.001)
    assert c.sides["a"].settings.lr == 0.05 and c.sides["b"].settings.lr == 0.01
    assert c.sides["a"].trainer.l2 == c.sides["b"].trainer.l2 == 0.001
    c.set_side("b", hidden="4")
    assert c.sides["b"].settings.hidden_widths() == (4,) and c.diffs["b"] == {"loss": "hinge", "hidden": "4"}


def test_state_link_and_code_rebuild_the_comparison():
    c = make()
    assert "compare(a={'loss': 'cross_entropy'}, b={'loss': 'hinge'}" in c.code()
    c.tick()
    c.sides["b"].brush(0.0, 0.0, 1, n=2)
    c.tick()
    c.select("train", 3)
    again = CompareSession.from_query(c.share_query(), background=False)
    for k in ("a", "b"):
        np.testing.assert_array_equal(again.sides[k].train.X, c.sides[k].train.X)
        assert all(torch.equal(x, y) for x, y in zip(again.sides[k].model.state_dict().values(),
                                                     c.sides[k].model.state_dict().values()))
    assert again.diffs == c.diffs and "Compare.from_state(state)" in c.code()


@pytest.mark.parametrize("kw, words", [
    ({"a": {"seed": 3}}, "a sets seed, which both sides share"),
    ({"b": {"n_samples": 50}}, "b sets n_samples"),
    ({"a": ["loss"]}, "a must be a dict"),
    ({"b": {"los": "hinge"}}, "b names unknown setting"),
    ({"b": {"hidden": "0"}}, "b: Hidden layers"),
    ({"lr": -1}, "Learning rate"),
])
def test_bad_comparisons_are_refused_naming_the_side(kw, words):
    with pytest.raises(SessionError, match=words):
        make(**kw)


def test_a_refused_common_change_changes_neither_side():
    c = make(b={"hidden": ""})
    before = (c.settings, c.sides["a"].settings, c.sides["b"].settings)
    with pytest.raises(SessionError, match="Dropout acts on hidden units"):
        c.update(dropout=0.2)  # fine for A, refused by B (no hidden layer)
    assert (c.settings, c.sides["a"].settings, c.sides["b"].settings) == before
    assert isinstance(c.sides["a"], PlaygroundSession)


def test_from_state_refuses_a_foreign_state():
    with pytest.raises(SessionError, match="not 'compare'"):
        CompareSession.from_state(PlaygroundSession(**SMALL).state())
