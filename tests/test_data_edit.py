"""Editing a dataset by hand: rows follow their source, the corruption record stays consistent."""

import numpy as np
import pytest

from marginlab.corruption import corrupt_inputs, corrupt_labels
from marginlab.data import Dataset, add_points, delete_points, make_toy, move_points, nearest_row
from marginlab.data.edit import corruption_masks


def _playground_style(n=12):
    """Both corruption kinds with the playground's meta masks (label on rows 0-3, input on rows 2-5)."""
    ds = make_toy("moons", n, seed=0)
    lab, inp = np.zeros(n, bool), np.zeros(n, bool)
    lab[:4], inp[2:6] = True, True
    y = ds.y.copy()
    y[lab] = 1 - y[lab]
    X = ds.X.copy()
    X[inp] += 5.0
    return ds.replace(X=X, y=y, y_original=ds.y.copy(), X_original=ds.X, corrupted=lab | inp,
                      corruption="label+gaussian",
                      meta={**ds.meta, "label_corrupted": lab, "input_corrupted": inp,
                            "score": np.arange(n, dtype=np.float32)})


def test_add_points_are_clean_and_appended():
    ds = _playground_style()
    e = add_points(ds, [[0.1, 0.2], [0.3, 0.4]], [1, 0])
    new = e.dataset
    assert len(new) == 14 and e.n_before == 12
    np.testing.assert_array_equal(new.X[-2:], np.float32([[0.1, 0.2], [0.3, 0.4]]))
    assert new.y[-2:].tolist() == [1, 0] and new.y_original[-2:].tolist() == [1, 0]
    np.testing.assert_array_equal(new.X_original[-2:], new.X[-2:])
    assert not new.corrupted[-2:].any() and new.index[-2:].tolist() == [-1, -1]
    assert not new.meta["label_corrupted"][-2:].any() and not new.meta["input_corrupted"][-2:].any()
    assert np.isnan(new.meta["score"][-2:]).all() and new.meta["generator"] == "moons"
    assert e.source.tolist() == list(range(12)) + [-1, -1] and e.changed.tolist() == [False] * 12 + [True] * 2
    assert new.meta["edits"] == {"added": 2, "deleted": 0, "moved": 0}
    assert new.source.endswith("edited by hand")
    assert len(add_points(ds, [0.0, 0.0], 1).dataset) == 13  # one point, no batch axis
    # one label for all the points
    assert add_points(ds, [[0, 0], [1, 1], [2, 2]], 1).dataset.y[-3:].tolist() == [1, 1, 1]


def test_delete_points_takes_their_record_along():
    ds = _playground_style()
    e = delete_points(ds, [0, 5, 11])
    new = e.dataset
    keep = [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert e.source.tolist() == keep and not e.changed.any()
    for field in ("X", "y", "y_original", "X_original", "corrupted", "index"):
        np.testing.assert_array_equal(getattr(new, field), getattr(ds, field)[keep])
    for key in ("label_corrupted", "input_corrupted", "score"):
        np.testing.assert_array_equal(new.meta[key], ds.meta[key][keep])
    mask = np.zeros(12, bool)
    mask[[0, 5, 11]] = True
    np.testing.assert_array_equal(delete_points(ds, mask).dataset.X, new.X)


def test_move_keeps_label_corruption_and_ends_input_corruption():
    ds = _playground_style()
    e = move_points(ds, [0, 2, 4, 8], [[9, 9], [8, 8], [7, 7], [6, 6]])
    new = e.dataset
    np.testing.assert_array_equal(new.X[[0, 2, 4, 8]], np.float32([[9, 9], [8, 8], [7, 7], [6, 6]]))
    np.testing.assert_array_equal(new.X_original[[0, 2, 4, 8]], new.X[[0, 2, 4, 8]])
    # row 0 label-only: still corrupted; row 2 both: the label part stays; row 4 input-only: clean now;
    # row 8 was clean
    assert new.corrupted[[0, 2, 4, 8]].tolist() == [True, True, False, False]
    assert new.meta["input_corrupted"][[0, 2, 4, 8]].tolist() == [False] * 4
    assert new.meta["label_corrupted"][[0, 2, 4, 8]].tolist() == [True, True, False, False]
    np.testing.assert_array_equal(new.y, ds.y)
    unmoved = np.setdiff1d(np.arange(12), [0, 2, 4, 8])
    np.testing.assert_array_equal(new.corrupted[unmoved], ds.corrupted[unmoved])
    assert e.changed.tolist() == [r in (0, 2, 4, 8) for r in range(12)]
    # a new label becomes the sample's clean label
    r = move_points(ds, 1, [[0, 0]], y=0).dataset
    assert r.y[1] == 0 and r.y_original[1] == 0 and not r.corrupted[1] and not r.meta["label_corrupted"][1]


@pytest.mark.parametrize("kind", ["label", "gaussian"])
def test_move_with_the_plain_corruption_record(kind):
    ds = make_toy("moons", 20, seed=1)
    ds = corrupt_labels(ds, 0.5, seed=0) if kind == "label" else corrupt_inputs(ds, 0.5, seed=0)
    r = int(np.flatnonzero(ds.corrupted)[0])
    new = move_points(ds, [r], [[0.0, 0.0]]).dataset
    assert new.corrupted[r] == (kind == "label")
    assert new.corrupted.sum() == ds.corrupted.sum() - (kind == "gaussian")
    lab, inp = corruption_masks(ds)
    assert (lab == (ds.corrupted if kind == "label" else 0)).all() and (inp | lab == ds.corrupted).all()


def test_combined_kinds_without_meta_masks_split_by_what_changed():
    ds = _playground_style()
    ds = ds.replace(meta={})
    lab, inp = corruption_masks(ds)
    assert np.flatnonzero(lab).tolist() == [0, 1, 2, 3] and np.flatnonzero(inp).tolist() == [2, 3, 4, 5]


def test_chained_edits_keep_every_unchanged_row_identical_to_its_source():
    ds = _playground_style(30)
    rng = np.random.default_rng(0)
    total, cur = None, ds
    for step in range(12):
        kind = ("add", "delete", "move")[step % 3]
        if kind == "add":
            e = add_points(cur, rng.normal(size=(2, 2)), rng.integers(0, 2, 2))
        elif kind == "delete":
            e = delete_points(cur, rng.choice(len(cur), 2, replace=False))
        else:
            e = move_points(cur, rng.choice(len(cur), 1), rng.normal(size=(1, 2)))
        total = e if total is None else total.then(e)
        cur = e.dataset
    assert total.n_before == 30 and len(total.source) == len(cur)
    same = ~total.changed
    assert (total.source[same] >= 0).all()
    np.testing.assert_array_equal(cur.X[same], ds.X[total.source[same]])
    np.testing.assert_array_equal(cur.y[same], ds.y[total.source[same]])
    kept = total.source[total.source >= 0]
    assert (kept < 30).all() and len(np.unique(kept)) == len(kept)
    assert cur.meta["edits"] == {"added": 8, "deleted": 8, "moved": 4}
    with pytest.raises(ValueError, match="nxt must be an edit of this edit's dataset"):
        total.then(add_points(ds.subset(np.arange(5)), [[0, 0]], 0))


def test_nearest_row_against_brute_force():
    ds = make_toy("blobs", 50, seed=0)
    for p in np.random.default_rng(1).normal(size=(5, 2)) * 3:
        assert nearest_row(ds, p) == int(np.argmin(np.linalg.norm(ds.X - p, axis=1)))
    assert nearest_row(ds, ds.X[7] + 100, max_distance=1.0) is None
    assert nearest_row(ds, ds.X[7], max_distance=0.0) == 7
    empty = Dataset(np.zeros((0, 2), np.float32), np.zeros(0, int), n_classes=2)
    assert nearest_row(empty, [0, 0]) is None


def test_bad_edits_are_named():
    ds = make_toy("moons", 10, seed=0)
    with pytest.raises(ValueError, match=r"X must have shape \(m, 2\)"):
        add_points(ds, [[1, 2, 3]], 0)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 1\]"):
        add_points(ds, [[1, 2]], 2)
    with pytest.raises(ValueError, match="y must be 2 integer class label"):
        add_points(ds, [[1, 2], [3, 4]], [0.5, 1.0])
    with pytest.raises(ValueError, match="X must be finite"):
        add_points(ds, [[np.nan, 0]], 0)
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 9\]"):
        delete_points(ds, [10])
    with pytest.raises(ValueError, match="more than once"):
        delete_points(ds, [1, 1])
    with pytest.raises(ValueError, match="one position per row"):
        move_points(ds, [1, 2], [[0, 0]])
    with pytest.raises(ValueError, match="max_distance must be in"):
        nearest_row(ds, [0, 0], max_distance=-1)
