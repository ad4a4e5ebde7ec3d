"""The model code runs on the JAX backend too (in a subprocess: the backend is fixed per process)."""

import json
import math
import os
import subprocess
import sys

import pytest

from xsearch import XceptionConfig, build_model
from xsearch.model.costs import model_costs

SCRIPT = """
import json, numpy as np, keras
from xsearch import XceptionConfig, build_model
from xsearch.model.costs import model_costs
from xsearch.model.device import runtime_info
from xsearch.model.device_latency import measure_latency
results = {"backend": keras.backend.backend(), "losses": [], "info": runtime_info()}
for config in (XceptionConfig(middle_repeats=1, width=0.25),
               XceptionConfig(middle_repeats=1, width=0.25, segments=4, intermediate_activation="elu", residual=False)):
    model = build_model(config, (32, 32, 3), 5, bn_momentum=0.9)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    assert model.predict_on_batch(x).shape == (8, 5)
    results["losses"].append(float(model.train_on_batch(x, np.arange(8) % 5)))
    results.setdefault("macs", []).append(model_costs(model)["macs"])
    results.setdefault("latency", []).append(measure_latency(model, batch_size=2, warmup=1, repeats=3))
paper = build_model(XceptionConfig.paper())
results["paper_params"] = paper.count_params()
print("RESULT" + json.dumps(results))
"""


def _run(backend: str) -> dict:
    pytest.importorskip(backend)
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


@pytest.mark.slow
def test_builds_trains_and_costs_the_same_on_jax_as_on_tensorflow():
    result = _run("jax")
    assert result["backend"] == "jax"
    assert result["info"]["backend"] == "jax"
    assert all(math.isfinite(loss) for loss in result["losses"])
    tensorflow_macs = [
        model_costs(build_model(config, (32, 32, 3), 5))["macs"]
        for config in (
            XceptionConfig(middle_repeats=1, width=0.25),
            XceptionConfig(
                middle_repeats=1,
                width=0.25,
                segments=4,
                intermediate_activation="elu",
                residual=False,
            ),
        )
    ]
    assert result["macs"] == tensorflow_macs  # analytic, backend-independent
    assert result["paper_params"] == 22_910_480
    for latency in result["latency"]:  # the probe's compiled forward pass, jitted by JAX
        assert latency["backend"] == "jax"
        assert latency["overhead_ms"] > 0
        assert 0 < latency["latency_ms"] <= latency["latency_p90_ms"]
