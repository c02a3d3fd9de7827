"""Settings for the whole test session, notebooks (nbval) included."""

import os
import tempfile


def pytest_configure(config):
    os.environ.setdefault("ADVUNLEARN_PROGRESS", "0")
    # nbval runs the notebooks in fast mode against a scratch store; the kernel inherits these.
    os.environ.setdefault("ADVUNLEARN_FAST", "1")
    os.environ.setdefault("ADVUNLEARN_STORE", tempfile.mkdtemp(prefix="advunlearn-nbval-"))
