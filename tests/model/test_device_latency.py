import pytest

from xsearch import XceptionConfig, build_model
from xsearch.model.device_latency import measure_latency


def test_latency_probe_reports_figure_device_backend_precision():
    model = build_model(XceptionConfig(middle_repeats=0, width=0.125), (32, 32, 3), 10)
    result = measure_latency(model, batch_size=4, warmup=2, repeats=5)
    assert result["latency_ms"] > 0
    assert result["latency_p90_ms"] >= result["latency_ms"]
    assert result["batch_size"] == 4
    assert result["repeats"] == 5
    assert result["backend"] == "tensorflow"
    assert result["device"].startswith("cpu:")
    assert result["precision"] == "float32"
    assert result["overhead_ms"] > 0
    assert result["latency_cv"] >= 0


def test_latency_times_the_model_not_the_call_path():
    """A model 155x larger (and deeper) costs more than the call path's fixed overhead, which an identity model
    measures; by a margin that holds while another process (a parallel test) competes for the cores."""
    small = measure_latency(
        build_model(XceptionConfig(middle_repeats=0, width=0.125), (64, 64, 3), 10), repeats=20
    )
    large = measure_latency(
        build_model(XceptionConfig(middle_repeats=8, width=1.0), (64, 64, 3), 10), repeats=20
    )
    assert large["latency_ms"] > 2 * small["latency_ms"]
    assert small["overhead_ms"] < small["latency_ms"]


def test_latency_probe_refuses_bad_arguments():
    model = build_model(XceptionConfig(middle_repeats=0, width=0.125), (32, 32, 3), 10)
    with pytest.raises(ValueError, match="received batch_size=0"):
        measure_latency(model, batch_size=0)
