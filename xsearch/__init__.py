"""xsearch: architecture search over the Xception design space.

The public names are imported on first use, so that `xsearch --help` and other commands that do
not build models start without loading a deep-learning backend.
"""

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# keep TensorFlow's C++ start-up chatter out of the CLI
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_EXPORTS = {
    "MIN_INPUT_SIZE": "xsearch.model.config",
    "build_model": "xsearch.model.builder",
    "XceptionConfig": "xsearch.model.config",
    "model_costs": "xsearch.model.costs",
    "measure_latency": "xsearch.model.device_latency",
    "SearchSpace": "xsearch.model.space",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'xsearch' has no attribute {name!r}")
