"""Datasets: toy 2-D generators, MNIST (verified IDX, fetch+cache, bundled offline subset), CIFAR-10 (verified
archive or extracted folder, fetch+cache, not bundled), preprocessing, editing by hand (add/delete/move)."""

from .cifar import CIFARError, cifar10_available, fetch_cifar10, load_cifar10
from .dataset import Dataset
from .edit import Edited, add_points, delete_points, move_points, nearest_row
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
    "binary_relabel", "train_test_split", "train_val_split", "load_dataset", "load_cifar10", "fetch_cifar10",
    "cifar10_available", "CIFARError", "Edited", "add_points", "delete_points", "move_points", "nearest_row",
]


def load_dataset(name: str, **kwargs):
    """Load a dataset by name: a toy name (``moons, circles, spirals, xor, blobs``) returns ``(train, test)``
    from :func:`load_toy`; ``"mnist"`` and ``"cifar10"`` return ``(train, test)`` from :func:`load_mnist` /
    :func:`load_cifar10`."""
    from .._validation import check_choice

    key = check_choice(name, "name", (*TOY_DATASETS, "mnist", "cifar10"))
    if key == "mnist":
        return load_mnist("train", **kwargs), load_mnist("test", **kwargs)
    if key == "cifar10":
        return load_cifar10("train", **kwargs), load_cifar10("test", **kwargs)
    return load_toy(key, **kwargs)
