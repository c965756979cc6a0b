"""Datasets: toy 2-D generators, MNIST (verified IDX, fetch+cache, bundled offline subset), preprocessing."""

from .dataset import Dataset
from .mnist import MNISTError, fetch_mnist, load_mnist, read_idx, read_idx_split
from .preprocess import (
    binary_relabel,
    class_subset,
    flatten,
    project_sphere,
    scale01,
    standardize,
    train_test_split,
    train_val_split,
)
from .toy import TOY_DATASETS, load_toy, make_toy

__all__ = [
    "Dataset", "TOY_DATASETS", "make_toy", "load_toy", "load_mnist", "fetch_mnist", "read_idx",
    "read_idx_split", "MNISTError", "scale01", "standardize", "project_sphere", "flatten", "class_subset",
    "binary_relabel", "train_test_split", "train_val_split", "load_dataset",
]


def load_dataset(name: str, **kwargs):
    """Load a dataset by name: a toy name (``moons, circles, spirals, xor, blobs``) returns ``(train, test)``
    from :func:`load_toy`; ``"mnist"`` returns ``(train, test)`` from :func:`load_mnist`."""
    from .._validation import check_choice

    key = check_choice(name, "name", (*TOY_DATASETS, "mnist"))
    if key == "mnist":
        return load_mnist("train", **kwargs), load_mnist("test", **kwargs)
    return load_toy(key, **kwargs)
