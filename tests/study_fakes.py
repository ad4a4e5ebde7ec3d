"""Shapes of xsearch's studies for tests that build synthetic studies without training."""

from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

METRICS = ["val_accuracy", "params", "latency_ms"]
DIRECTIONS = ["maximize", "minimize", "minimize"]
DISTRIBUTIONS = {
    "middle_repeats": IntDistribution(0, 8),
    "width": FloatDistribution(0.25, 1.0, step=0.25),
    "depth_multiplier": IntDistribution(1, 2),
    "segments": CategoricalDistribution(["1", "4", "depthwise"]),
    "intermediate_activation": CategoricalDistribution(["none", "relu", "elu"]),
    "residual": CategoricalDistribution([True, False]),
}
