"""Shared test set-up: quiet TensorFlow, and the `CI=true` rule for tests that need a service."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
