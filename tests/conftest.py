import os

import pytest

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")


@pytest.fixture(scope="session")
def digits():
    from advunlearn.core.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory):
    """One results folder shared by the tests that only read pretrained digits models."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def one_thread():
    """Small models run faster (and deterministically) on one thread, above all on a busy machine."""
    import torch

    from advunlearn.core.train import resolve_device

    resolve_device("cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
