import os

import pytest

os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")


@pytest.fixture(scope="session")
def digits():
    from advunlearn.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory):
    """One results folder shared by the tests that only read pretrained digits models."""
    return tmp_path_factory.mktemp("store")
