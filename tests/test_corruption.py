import numpy as np
import pytest

from marginlab.corruption import corrupt, corrupt_inputs, corrupt_labels
from marginlab.data import load_mnist, make_toy


@pytest.fixture(scope="module")
def digits():
    return load_mnist("test", offline_ok=True).subset(np.arange(2000))


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.55, 1.0])
def test_label_corruption_invariants(digits, fraction):
    c = corrupt_labels(digits, fraction, seed=1)
    k = int(round(fraction * len(digits)))
    assert c.corrupted.sum() == k
    assert np.all(c.y[c.corrupted] != c.y_original[c.corrupted])
    np.testing.assert_array_equal(c.y[~c.corrupted], digits.y[~c.corrupted])
    np.testing.assert_array_equal(c.y_original, digits.y)
    np.testing.assert_array_equal(c.X, digits.X)
    np.testing.assert_array_equal(c.corrupted, c.y != c.y_original)


def test_label_corruption_uniform_over_other_classes(digits):
    c = corrupt_labels(digits, 1.0, seed=2)
    # offset new - old (mod 10) must be uniform on 1..9
    off = (c.y - c.y_original) % 10
    counts = np.bincount(off, minlength=10)
    assert counts[0] == 0
    expected = len(digits) / 9
    chi2 = ((counts[1:] - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # 99.9% quantile of chi2 with 8 dof


@pytest.mark.parametrize("fraction", [0.0, 0.2, 1.0])
def test_gaussian_input_corruption_invariants(digits, fraction):
    c = corrupt_inputs(digits, fraction, seed=3)
    k = int(round(fraction * len(digits)))
    assert c.corrupted.sum() == k
    np.testing.assert_array_equal(c.y, digits.y)
    np.testing.assert_array_equal(c.X[~c.corrupted], digits.X[~c.corrupted])
    np.testing.assert_array_equal(c.X_original, digits.X)
    if k:
        assert not np.any(np.all(c.X[c.corrupted] == digits.X[c.corrupted], axis=(1, 2, 3)))
        d = c.X.shape[1] * c.X.shape[2] * c.X.shape[3]
        new = c.X[c.corrupted].reshape(k, -1).astype(np.float64)
        old = digits.X[c.corrupted].reshape(k, -1).astype(np.float64)
        mu, sd = old.mean(1), old.std(1)
        # sample mean of d draws from N(mu, sd): standard error sd/sqrt(d); 5 SE bound per sample
        assert np.all(np.abs(new.mean(1) - mu) < 5 * sd / np.sqrt(d))
        # sample std: standard error about sd/sqrt(2d)
        assert np.all(np.abs(new.std(1) - sd) < 5 * sd / np.sqrt(2 * d))


def test_corruption_is_reproducible_and_seed_dependent(digits):
    a = corrupt(digits, "label", 0.3, seed=5)
    b = corrupt(digits, "label", 0.3, seed=5)
    c = corrupt(digits, "label", 0.3, seed=6)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.corrupted, b.corrupted)
    assert not np.array_equal(a.corrupted, c.corrupted)
    g1, g2 = corrupt(digits, "gaussian", 0.3, seed=5), corrupt(digits, "gaussian", 0.3, seed=5)
    np.testing.assert_array_equal(g1.X, g2.X)


def test_fraction_zero_is_identity(digits):
    assert corrupt(digits, "label", 0.0) is digits
    c = corrupt_labels(digits, 0.0)
    np.testing.assert_array_equal(c.y, digits.y)
    assert not c.corrupted.any()


@pytest.mark.parametrize("fraction", [-0.01, 1.5, float("nan")])
def test_fraction_out_of_range(digits, fraction):
    with pytest.raises(ValueError, match="fraction must be"):
        corrupt(digits, "label", fraction)
    with pytest.raises(ValueError, match="fraction must be"):
        corrupt_inputs(digits, fraction)


def test_unknown_kind_and_double_corruption():
    ds = make_toy("moons", 50)
    with pytest.raises(ValueError, match="kind must be one of"):
        corrupt(ds, "salt", 0.1)
    c = corrupt(ds, "label", 0.2)
    with pytest.raises(ValueError, match="already"):
        corrupt(c, "gaussian", 0.2)
