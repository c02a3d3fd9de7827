"""advunlearn: Discriminative Adversarial Unlearning, a reference implementation.

The core imports only torch, numpy, scikit-learn and safetensors; plotting, widgets and papermill
are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"

from .config import ConfigError  # noqa: E402,F401
from .course import fast_mode  # noqa: E402,F401
