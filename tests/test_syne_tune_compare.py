"""Syne Tune's schedulers on a small synthetic bench table, through Syne Tune's own tabular simulator.

The table covers the 12 designs of the ``tiny`` space, most with 2 seeds and some with 1 (a tabular
blackbox has as many seed slots for every design): accuracy rises with the segment count index and
the residual, params fall with segments, each epoch costs 1 s plus 4 s of compilation in the first.
Skipped where Syne Tune is not installed, except in CI.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

from benchmarks import syne_tune_compare
from benchmarks.replay import BenchTable
from benchmarks.search_efficiency import read_results, summarize, table_digest
from xsearch.model.space import SearchSpace
from xsearch.study.sampler import grid_points
from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec

if os.environ.get("CI") != "true":
    pytest.importorskip(
        "syne_tune.blackbox_repository",
        reason="Syne Tune is a benchmark dependency: pip install syne-tune==0.16.0 huggingface_hub",
    )

EPOCHS = 4
SPACE = SearchSpace.from_toml("tiny")
BASE = StudySpec(
    name="bench",
    space="tiny",
    objectives=("accuracy", "params", "latency"),
    seed_trials=(),
    data=DataSpec(image_size=16),
    training=TrainingSpec(epochs=EPOCHS),
)
FORMAT = {
    "digest",
    "strategy",
    "seed",
    "budget_s",
    "trials",
    "stopped",
    "seconds",
    "search_s",
    "hv",
    "hv_log",
}


def _table() -> pd.DataFrame:
    rows = []
    for index, point in enumerate(grid_points(SPACE, 0)):
        config = SPACE.decode(point)
        rank = {1: 0, 8: 1, "depthwise": 2}[config.segments]
        final = (
            0.6
            + 0.1 * rank
            + 0.05 * config.residual
            + (0.01 if config.intermediate_activation == "none" else 0.0)
        )
        for seed in (0, 1) if index % 4 else (0,):
            row = {axis: point[axis] for axis in SPACE.axes}
            row.update(
                seed=seed,
                params=1000 - 100 * rank,
                macs=5000 - 500 * rank,
                flops=10000 - 1000 * rank,
                latency_ms=1.0 + 0.1 * rank,
                latency_p90_ms=1.2,
                test_accuracy=final,
                failure_reason="",
            )
            row.update(
                {f"val_acc_{e}": final * e / EPOCHS + 0.002 * seed for e in range(1, EPOCHS + 1)}
            )
            row.update({f"epoch_s_{e}": 5.0 if e == 1 else 1.0 for e in range(1, EPOCHS + 1)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_the_blackbox_has_every_design_with_its_seeds_in_equal_slots_and_each_objective_per_epoch():
    table = BenchTable.from_frame(_table())
    bench = syne_tune_compare.blackbox(table, BASE)
    box = bench.blackbox
    assert box.objectives_evaluations.shape == (12, 2, EPOCHS, 8)
    assert bench.metrics == ["neg_val_accuracy", "params", "latency_ms"]
    assert box.objectives_names == [
        "val_accuracy",
        "neg_val_accuracy",
        "params",
        "latency_ms",
        *bench.scaled,
        "elapsed_time",
    ]
    scaled = box.objectives_evaluations[..., 4:7]
    assert scaled.min() == 0.0
    assert scaled.max() == 1.0
    assert np.all(scaled.min(axis=(0, 1, 2)) == 0.0)
    space = box.configuration_space
    assert space["depth_multiplier"] == 1
    assert set(space["segments"].categories) == {"1", "8", "depthwise"}  # one type per axis
    key = next(k for k, rows in table.designs.items() if len(rows) == 1)
    config = next(
        c for c in syne_tune_compare.configurations(list(table.designs)) if bench.design(c) == key
    )
    values = box.objective_function(config, seed=1)  # the single seed's row in both slots
    np.testing.assert_allclose(values, box.objective_function(config, seed=0))
    np.testing.assert_allclose(values[:, -1], [5.0, 6.0, 7.0, 8.0])  # cumulative training seconds
    np.testing.assert_allclose(values[:, 0], -values[:, 1])
    assert values[-1, 0] == pytest.approx(table.truth(["val_accuracy"]).loc[key, "val_accuracy"])


def _steps(line: dict) -> np.ndarray:
    return np.round(np.diff([0.0, *line["seconds"]]), 6)


def test_runs_write_scored_lines_in_the_replay_format_resume_and_refuse_an_incomplete_table(
    tmp_path, capsys
):
    path, results = tmp_path / "bench.csv", tmp_path / "runs.jsonl"
    _table().to_csv(path, index=False)
    syne_tune_compare.run(path, results, ["moasha", "random"], [0, 1], BASE)
    lines = read_results(results)
    budget = BenchTable.from_frame(_table()).full_cost()
    assert {(r["strategy"], r["seed"]) for r in lines} == {
        (f"syne-tune/{s}", k) for s in ("moasha", "random") for k in (0, 1)
    }
    for line in lines:
        assert set(line) == FORMAT
        assert line["digest"] == table_digest(path, BASE)
        assert line["budget_s"] == budget
        assert len(line["seconds"]) == len(line["hv"]) == len(line["hv_log"]) == line["trials"] > 0
        for curve in (line["hv"], line["hv_log"]):
            assert np.all(np.diff(curve) >= 0)
            assert 0 < curve[-1] <= 1.0 + 1e-9
        steps = _steps(line)
        assert np.all(steps > 0)
        # the budget spent, plus one trial
        assert budget - 8.0 < line["seconds"][-1] <= budget + 8.0
    moasha = [r for r in lines if r["strategy"] == "syne-tune/moasha"]
    # stopped at rung 1 or 2, or full
    assert all(r["stopped"] > 0 and set(_steps(r)[:-1]) <= {5.0, 6.0, 8.0} for r in moasha)
    randoms = [r for r in lines if r["strategy"] == "syne-tune/random"]
    # every trial trained fully
    assert all(r["stopped"] == 0 and set(_steps(r)[:-1]) == {8.0} for r in randoms)

    capsys.readouterr()
    syne_tune_compare.run(path, results, ["moasha", "random"], [0, 1], BASE)
    assert len(read_results(results)) == 4
    assert "0 runs to do, 4 done" in capsys.readouterr().out
    again = tmp_path / "again.jsonl"
    syne_tune_compare.run(path, again, ["moasha"], [1], BASE)
    # a seed replays the same run
    assert read_results(again)[0] == next(r for r in moasha if r["seed"] == 1)

    tables = syne_tune_compare.report(results, also=[tmp_path / "absent.jsonl"])
    assert set(tables["hv"].index) == {"syne-tune/moasha", "syne-tune/random"}
    assert (tables["hv_log"]["seeds"] == 2).all()
    assert summarize(lines).loc["syne-tune/random", "seeds"] == 2

    _table().iloc[1:].to_csv(path, index=False)  # a design missing: refused before any run
    with pytest.raises(SystemExit, match="lacks 1 of the 12 designs"):
        syne_tune_compare.run(path, tmp_path / "other.jsonl", ["random"], [0], BASE)
    assert not (tmp_path / "other.jsonl").exists()


def test_the_schedulers_are_configured_like_xsearch_asha_where_the_api_allows():
    bench = syne_tune_compare.blackbox(BenchTable.from_frame(_table()), BASE)
    moasha = syne_tune_compare.scheduler("moasha", bench, 0)
    assert moasha.time_attr == "epoch"
    assert moasha.max_t == EPOCHS
    assert moasha.reduction_factor == 2
    assert [rung for rung, _ in reversed(moasha.brackets[0].rungs)] == [1, 2, 4]
    assert moasha.do_minimize
    assert syne_tune_compare.scheduler("moasha-scaled", bench, 0).metrics == bench.scaled
    with pytest.raises(ValueError, match="unknown scheduler"):
        syne_tune_compare.scheduler("bohb", bench, 0)
    assert json.loads(next(iter(bench.keys.values())))["depth_multiplier"] == 1
