import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def shared_mnist():
    """The genuine MNIST test split beside the checkout (CI and developers only); skip when absent."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("../shared/data/mnist is not present")
    return SHARED_MNIST


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails, as on a machine without network."""
    import socket

    def guard(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setenv("MARGINLAB_DATA", os.environ.get("PYTEST_TMP_DATA", "/nonexistent-marginlab-cache"))
    yield
