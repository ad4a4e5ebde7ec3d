import pytest

from xsearch import XceptionConfig, build_model
from xsearch.model.latency import measure_latency


def test_latency_probe_reports_figure_device_backend_precision():
    model = build_model(XceptionConfig(middle_repeats=0, width=0.125), (32, 32, 3), 10)
    result = measure_latency(model, batch_size=4, warmup=2, repeats=5)
    assert result["latency_ms"] > 0 and result["latency_p90_ms"] >= result["latency_ms"]
    assert result["batch_size"] == 4 and result["repeats"] == 5
    assert result["backend"] == "tensorflow" and result["device"].startswith("cpu:")
    assert result["precision"] == "float32"


def test_latency_probe_refuses_bad_arguments():
    model = build_model(XceptionConfig(middle_repeats=0, width=0.125), (32, 32, 3), 10)
    with pytest.raises(ValueError, match="received batch_size=0"):
        measure_latency(model, batch_size=0)
