"""The performance harness (`benchmarks/`): each benchmark runs at a tiny size and reports positive numbers."""

import json
import math
from pathlib import Path

import pytest

from benchmarks import duplicates, overhead, spectrum, throughput


def _run(module, args: list[str], tmp_path: Path) -> dict:
    path = tmp_path / "report.json"
    report = module.main([*args, "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert report["environment"]["backend"] and report["environment"]["cpu_count"] >= 1
    return report


def _positive(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 and math.isfinite(v) for v in values)


def test_overhead(tmp_path):
    report = _run(overhead, ["--image-size", "8", "--width", "0.125", "--middle-repeats", "0", "--epochs", "2",
                             "--batch-size", "64", "--repeats", "1"], tmp_path)
    assert _positive(report["trial_train_time_s"], report["plain_fit_time_s"], report["overhead_ratio"],
                     report["trained_images_per_second"])
    assert [p["augment"] for p in report["pipeline"]] == [False, True]
    for row in report["pipeline"]:
        assert _positive(row["served_images_per_second"], row["served_over_trained"])


def test_spectrum(tmp_path):
    report = _run(spectrum, ["--image-size", "16", "--width", "0.125", "--middle-repeats", "0",
                             "--segments", "1", "depthwise", "--batch-size", "4", "--steps", "1"], tmp_path)
    assert [p["segments"] for p in report["points"]] == [1, "depthwise"]
    for point in report["points"]:
        assert _positive(point["params"], point["macs"], point["latency_ms"], point["train_images_per_second"],
                         point["macs_ratio"], point["latency_ratio"], point["train_time_ratio"])
    assert report["points"][1]["macs_ratio"] < 1  # depthwise costs fewer MACs than regular convs


def test_duplicates(tmp_path):
    report = _run(duplicates, ["--studies", "quickstart", "cifar10", "--samplers", "tpe", "--seeds", "2"], tmp_path)
    assert [(row["study"], row["sampler"]) for row in report["rows"]] == [("quickstart", "tpe"), ("cifar10", "tpe")]
    for row in report["rows"]:
        for run in row["runs"]:
            assert run["designs_trained"] == run["trials"] == row["trials"]  # the shipped spaces are not exhausted
            assert 0 <= run["repeats_in_budget"] <= run["asks"] - run["trials"]
            assert 0 < run["hypervolume_without_reuse"] <= run["hypervolume_with_reuse"] < 1  # a superset of designs


@pytest.mark.slow
def test_throughput(tmp_path):
    report = _run(throughput, ["--small", "--batch-size", "2", "--steps", "1"], tmp_path)
    assert _positive(report["matmul_flops_per_second"])
    rows = {row["model"]: row for row in report["rows"]}
    assert {"xsearch", "keras.applications"} <= set(rows)
    assert rows["xsearch"]["params"] == rows["keras.applications"]["params"] == 22_910_480
    for row in rows.values():
        assert _positive(row["forward_flops"], row["train_images_per_second"], row["inference_images_per_second"],
                         row["train_mfu"], row["inference_mfu"])
        assert row["train_compile_s"] >= 0 and row["inference_compile_s"] >= 0
    if "timm legacy_xception" not in rows:
        assert any("timm" in note for note in report["notes"])


@pytest.mark.slow
def test_throughput_below_keras_applications_minimum_compares_without_it(tmp_path):
    report = _run(throughput, ["--image-size", "32", "--batch-size", "2", "--steps", "1", "--rounds", "1"], tmp_path)
    models = {row["model"] for row in report["rows"]}
    assert "xsearch" in models and "keras.applications" not in models
    assert any("keras.applications" in note and "71x71" in note for note in report["notes"])
