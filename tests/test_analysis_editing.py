"""After a point edit only the stale margins are re-solved, and the result equals a full re-solve."""

import copy

import numpy as np
import pytest

from marginlab.analysis.editing import model_fingerprint, stale_rows, update_margins
from marginlab.data import add_points, delete_points, make_toy, move_points
from marginlab.device import torch_threads
from marginlab.margins import compute_margins
from marginlab.models import MLP
from marginlab.train import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def setup():
    ds = make_toy("moons", 40, noise=0.15, seed=0)
    model = MLP((2,), (16,), 2, seed=0)
    with torch_threads(1):
        Trainer(model, ds, lr=0.1, batch_size=16, device="cpu").step(60)
    return ds, model.eval()


def _same(a, b):
    np.testing.assert_allclose(a.margin, b.margin, rtol=1e-6)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.pred, b.pred)
    np.testing.assert_array_equal(a.label, b.label)


def _edits(ds):
    rng = np.random.default_rng(3)
    yield "add", add_points(ds, rng.uniform(-1, 2, (3, 2)), [0, 1, 1])
    yield "delete", delete_points(ds, [0, 7, 39])
    yield "move", move_points(ds, [4, 9], [[0.5, 0.25], [1.5, -0.3]])
    yield "relabel", move_points(ds, [11], ds.X[11:12], y=1 - ds.y[11:12])
    a = add_points(ds, [[0.0, 0.0]], 1)
    d = delete_points(a.dataset, [2, 40])
    yield "chain", a.then(d).then(move_points(d.dataset, [5], [[1.0, 1.0]]))


@pytest.mark.parametrize("signed", [True, False])
def test_frozen_model_resolves_only_changed_rows_and_matches_a_full_solve(setup, signed):
    ds, model = setup
    old = compute_margins(model, ds.X, y=ds.y, signed=signed)
    for name, e in _edits(ds):
        new, solved = update_margins(model, old, e, signed=signed)
        assert solved.tolist() == np.flatnonzero(e.changed).tolist(), name
        full = compute_margins(model, e.dataset.X, y=e.dataset.y, signed=signed)
        _same(new, full)
    # a relabel flips the sign of a signed margin without moving the boundary point
    _, e = list(_edits(ds))[3]
    new, _ = update_margins(model, old, e, signed=signed)
    assert abs(new.margin[11]) == pytest.approx(abs(old.margin[11]), rel=1e-6)
    assert (np.sign(new.margin[11]) == -np.sign(old.margin[11])) == signed


def test_delete_solves_nothing(setup, monkeypatch):
    ds, model = setup
    old = compute_margins(model, ds.X, y=ds.y)
    import marginlab.margins as M

    monkeypatch.setattr(M, "compute_margins", lambda *a, **k: pytest.fail("nothing should be solved"))
    new, solved = update_margins(model, old, delete_points(ds, [1, 2]))
    assert len(solved) == 0 and len(new) == 38
    np.testing.assert_array_equal(new.point, old.point[np.r_[0, 3:40]])


def test_a_changed_model_makes_every_margin_stale(setup):
    ds, model = setup
    model = copy.deepcopy(model)
    old = compute_margins(model, ds.X, y=ds.y)
    before = model_fingerprint(model)
    assert model_fingerprint(copy.deepcopy(model)) == before
    e = add_points(ds, [[0.2, 0.2]], 0)
    Trainer(model, e.dataset, lr=0.1, batch_size=16, device="cpu").step(5)
    model.eval()
    changed = model_fingerprint(model) != before
    assert changed
    new, solved = update_margins(model, old, e, model_changed=changed)
    assert solved.tolist() == list(range(41))
    _same(new, compute_margins(model, e.dataset.X, y=e.dataset.y))
    assert not np.allclose(new.margin[:40], old.margin)
    assert stale_rows(e, model_changed=False).tolist() == [40]
    assert model_fingerprint(model.double()) != model_fingerprint(model.float())


def test_train_and_test_margins_together(setup):
    ds, model = setup
    test = make_toy("moons", 10, noise=0.15, seed=9)
    X = np.concatenate([ds.X, test.X])
    old = compute_margins(model, X, y=np.concatenate([ds.y, test.y]))
    e = add_points(ds, [[0.3, 0.1]], 1)
    train_part, solved = update_margins(model, old.subset(np.arange(40)), e)
    both = type(old).concat([train_part, old.subset(np.arange(40, 50))])
    _same(both, compute_margins(model, np.concatenate([e.dataset.X, test.X]),
                                y=np.concatenate([e.dataset.y, test.y])))


def test_bad_input_is_named(setup):
    ds, model = setup
    old = compute_margins(model, ds.X[:10], y=ds.y[:10])
    e = add_points(ds, [[0, 0]], 0)
    with pytest.raises(ValueError, match="old holds 10 margins, the edited dataset had 40 rows"):
        update_margins(model, old, e)
    full = compute_margins(model, ds.X, y=ds.y, method="linearized")
    with pytest.raises(ValueError, match="compute_options give method='batched' but old has 'linearized'"):
        update_margins(model, full, e)
    with pytest.raises(TypeError, match="edited must be the Edited"):
        update_margins(model, full, e.dataset)
    with pytest.raises(TypeError, match="model_changed must be True or False"):
        stale_rows(e, model_changed="no")
    with pytest.raises(TypeError, match="old must be a MarginResult"):
        update_margins(model, full.margin, e)
