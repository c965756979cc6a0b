import numpy as np
import pytest

from marginlab.data import (
    TOY_DATASETS,
    Dataset,
    binary_relabel,
    class_subset,
    load_dataset,
    load_toy,
    make_toy,
    project_sphere,
    scale01,
    standardize,
    train_val_split,
)


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_shapes_classes_determinism(name):
    k = 4 if name in ("spirals", "blobs") else None
    a = make_toy(name, 301, noise=0.05, n_classes=k, seed=3)
    b = make_toy(name, 301, noise=0.05, n_classes=k, seed=3)
    c = make_toy(name, 301, noise=0.05, n_classes=k, seed=4)
    assert a.X.shape == (301, 2) and a.X.dtype == np.float32 and a.y.dtype == np.int64
    expected = 4 if k else 2
    assert a.n_classes == expected and set(np.unique(a.y)) == set(range(expected))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    assert name in a.source and "seed=3" in a.source


def test_spirals_arms_are_balanced():
    ds = make_toy("spirals", 300, noise=0.0, n_classes=3, seed=0)
    assert np.bincount(ds.y).tolist() == [100, 100, 100]


def test_noise_zero_xor_is_separable_by_quadrant():
    ds = make_toy("xor", 200, noise=0.0, seed=1)
    assert np.all(((ds.X[:, 0] > 0) ^ (ds.X[:, 1] > 0)) == ds.y.astype(bool))


def test_load_toy_split_sizes_and_disjoint():
    tr, te = load_toy("moons", 200, test_size=0.25, seed=0)
    assert len(tr) + len(te) == 200 and len(te) == 50
    assert not set(tr.index.tolist()) & set(te.index.tolist())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="bananas"), "name must be one of"),
        (dict(n_samples=0), "n_samples must be"),
        (dict(n_samples=-5), "n_samples must be"),
        (dict(noise=-0.1), "noise must be"),
        (dict(name="blobs", n_classes=1), "n_classes must be"),
        (dict(name="moons", n_classes=3), "n_classes must be 2"),
    ],
)
def test_toy_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_toy(**kwargs)


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("cifar-1000")


def test_scale_standardize_project():
    ds = Dataset(np.array([[0, 255], [51, 102]], dtype=np.float32), np.array([0, 1]), n_classes=2)
    s = scale01(ds)
    assert s.X.max() == 1.0 and s.X.min() == 0.0
    st, mean, std = standardize(make_toy("blobs", 500, seed=0))
    np.testing.assert_allclose(st.X.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(st.X.std(0), 1, atol=1e-4)
    p = project_sphere(make_toy("moons", 50, seed=0))
    np.testing.assert_allclose(np.linalg.norm(p.X, axis=1), np.sqrt(2), rtol=1e-5)


def test_class_subset_and_binary():
    ds = make_toy("blobs", 300, n_classes=5, seed=0)
    sub = class_subset(ds, [3, 1])
    assert sub.n_classes == 2 and set(np.unique(sub.y)) == {0, 1}
    np.testing.assert_array_equal(ds.y[sub.index] == 3, sub.y == 0)
    b = binary_relabel(ds, [1, 3])
    np.testing.assert_array_equal(b.y, np.isin(ds.y, [1, 3]).astype(int))
    with pytest.raises(ValueError, match="classes must name at least two"):
        class_subset(ds, [2])
    with pytest.raises(ValueError, match="classes"):
        class_subset(ds, [2, 9])


def test_train_val_split_count():
    ds = make_toy("moons", 1000, seed=0)
    tr, va = train_val_split(ds, val_size=100)
    assert len(va) == 100 and len(tr) == 900
    with pytest.raises(ValueError, match="test_size"):
        train_val_split(ds, val_size=-0.2)


def test_dataset_validates_labels():
    with pytest.raises(ValueError, match="labels must lie"):
        Dataset(np.zeros((3, 2)), np.array([0, 1, 2]), n_classes=2)
    with pytest.raises(ValueError, match="X must have shape"):
        Dataset(np.zeros((3, 2)), np.array([0, 1]), n_classes=2)
