"""Latency targets on this machine's CPU: the Keras model in a child process, LiteRT and ONNX
Runtime after conversion."""

import numpy as np
import pytest

import xsearch.deploy.latency_targets as latency_targets
import xsearch.deploy.runtimes as runtimes
from xsearch.deploy.latency_targets import TargetSettings, measure_targets
from xsearch.deploy.runtimes import ConversionError
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.study.fit import with_normalization


@pytest.fixture(scope="module")
def model():
    core = build_model(XceptionConfig(middle_repeats=0, width=0.125), (16, 16, 3), 10)
    return with_normalization(core, np.full(3, 127.5, np.float32), np.full(3, 64.0, np.float32))


@pytest.mark.slow
def test_each_local_target_times_the_design_in_its_runtime(model):
    settings = TargetSettings(batch_size=2, threads=1, warmup=2, repeats=5)
    measured = measure_targets(model, ("cpu", "litert-cpu", "onnxruntime-cpu"), settings)
    assert list(measured) == ["cpu", "litert-cpu", "onnxruntime-cpu"]
    assert [measured[t]["runtime"] for t in measured] == [
        "keras/tensorflow",
        "litert",
        "onnxruntime",
    ]
    for target, result in measured.items():
        assert "error" not in result, result
        assert result["target"] == target
        assert result["threads"] == 1
        assert result["batch_size"] == 2
        assert result["repeats"] == 5
        assert 0 < result["median_ms"] <= result["p90_ms"]
        assert result["cv"] >= 0
        assert result["runtime_version"]
    assert measured["cpu"]["convert_s"] is None
    assert measured["cpu"]["overhead_ms"] > 0
    assert measured["litert-cpu"]["convert_s"] > 0
    assert measured["onnxruntime-cpu"]["convert_s"] > 0


def test_a_design_that_does_not_convert_records_the_reason(model, monkeypatch):
    def convert(model, fmt, path):
        raise ConversionError(f"{fmt}: ValueError: an op the exporter cannot write")

    monkeypatch.setattr(runtimes, "convert", convert)
    measured = measure_targets(model, ("onnxruntime-cpu",), TargetSettings(warmup=1, repeats=3))
    assert measured == {
        "onnxruntime-cpu": {
            "target": "onnxruntime-cpu",
            "threads": 1,
            "batch_size": 1,
            "error": "onnx: ValueError: an op the exporter cannot write",
        }
    }


def test_a_failing_timing_process_is_recorded_per_target(model, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setattr(latency_targets.sys, "executable", "/bin/false")
    measured = measure_targets(model, ("cpu",), TargetSettings(warmup=1, repeats=2))
    assert measured["cpu"]["error"].startswith("the timing process failed (exit 1)")


def test_unknown_targets_are_refused(model):
    with pytest.raises(
        ValueError, match="unknown latency targets \\['gpu'\\]; valid: cpu, litert-cpu"
    ):
        measure_targets(model, ("gpu",), TargetSettings())


def test_a_target_whose_runtime_is_missing_is_refused_before_any_trial(monkeypatch):
    real = latency_targets.importlib.util.find_spec
    monkeypatch.setattr(
        latency_targets.importlib.util,
        "find_spec",
        lambda name: None if name == "onnxruntime" else real(name),
    )
    latency_targets.check_target_runtimes(("cpu", "litert-cpu"))
    with pytest.raises(
        ValueError,
        match="'onnxruntime-cpu' needs onnxruntime, which is not installed here: pip install "
        "'xsearch\\[runtimes\\]'",
    ):
        latency_targets.check_target_runtimes(("litert-cpu", "onnxruntime-cpu"))
