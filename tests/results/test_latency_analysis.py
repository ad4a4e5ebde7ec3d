"""Latency noise and rank correlations per device, on trials whose figures are known."""

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from xsearch.results.latency_analysis import latency_frame, latency_summary


def _study(rows) -> optuna.Study:
    study = optuna.create_study()
    for number, (macs, device_ms, litert_ms) in enumerate(rows):
        targets = (
            {
                "litert-cpu": {
                    "median_ms": litert_ms,
                    "cv": 0.02,
                    "runtime": "litert",
                    "runtime_version": "2.3.0",
                    "threads": 1,
                }
            }
            if litert_ms is not None
            else {"litert-cpu": {"error": "did not convert"}}
        )
        study.add_trial(
            create_trial(
                value=1.0,
                params={"x": float(number)},
                distributions={"x": FloatDistribution(0, 99)},
                user_attrs={
                    "macs": macs,
                    "latency_ms": device_ms,
                    "latency_cv": 0.1,
                    "backend": "jax",
                    "device": "gpu:H200",
                    "latency_targets": targets,
                },
            )
        )
    return study


def test_each_device_gets_its_noise_and_how_it_ranks_designs():
    # the GPU's latency falls with MACs (rank correlation -1); LiteRT's follows them, but for the design it cannot run
    study = _study(
        [(100, 4.0, 1.0), (200, 3.0, 2.0), (300, 2.0, 3.0), (400, 1.0, 4.0), (500, 0.5, None)]
    )
    frame = latency_frame(study).set_index("target")
    assert list(frame.index) == ["train-device", "litert-cpu"]
    assert frame.loc["train-device", "designs"] == 5
    assert frame.loc["litert-cpu", "designs"] == 4
    assert frame.loc["train-device", "spearman_macs"] == pytest.approx(-1.0)
    assert frame.loc["litert-cpu", "spearman_macs"] == pytest.approx(1.0)
    assert frame.loc["litert-cpu", "spearman_train_device"] == pytest.approx(-1.0)
    assert frame.loc["litert-cpu", "median_cv"] == pytest.approx(0.02)
    assert frame.loc["train-device", "median_cv"] == 0.1
    assert frame.loc["litert-cpu", "runtime"] == "litert 2.3.0, 1 threads"
    lines = latency_summary(study)
    assert lines[1] == (
        "latency on litert-cpu (litert 2.3.0, 1 threads): 4 designs, median 2.5 ms, noise (median cv) 2.0%, "
        "rank correlation with MACs 1.00, with train-device -1.00"
    )


def test_too_few_designs_give_no_correlation_and_no_trials_no_rows():
    assert math.isnan(
        latency_frame(_study([(100, 1.0, 1.0), (200, 2.0, 2.0)])).loc[0, "spearman_macs"]
    )
    assert latency_frame(optuna.create_study()).empty
    assert latency_summary(optuna.create_study()) == []
