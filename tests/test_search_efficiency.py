"""The search-efficiency replay on a small synthetic bench table whose answers are known.

The table covers the 12 designs of the ``tiny`` space with 2 seeds each: accuracy rises with the
segment count index and the residual, params fall with segments, each epoch costs 1 s plus 4 s of
compilation in the first. The replays run xsearch's real study set-up, objective and stopping rules.
"""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import search_efficiency
from benchmarks.replay import BenchTable, hypervolume_curve, replay
from benchmarks.search_efficiency import (
    Scorer,
    hv_at,
    read_results,
    strategy_spec,
    summarize,
    time_to,
)
from benchmarks.xception_bench import design_key
from xsearch.model.space import SearchSpace
from xsearch.study.sampler import grid_points
from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec

EPOCHS = 4
SPACE = SearchSpace.from_toml("tiny")


def _table() -> pd.DataFrame:
    rows = []
    for point in grid_points(SPACE, 0):
        config = SPACE.decode(point)
        rank = {1: 0, 8: 1, "depthwise": 2}[config.segments]
        final = (
            0.6
            + 0.1 * rank
            + 0.05 * config.residual
            + (0.01 if config.intermediate_activation == "none" else 0.0)
        )
        for seed in (0, 1):
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


BASE = StudySpec(
    name="bench",
    space="tiny",
    objectives=("accuracy", "params", "latency"),
    seed_trials=(),
    data=DataSpec(image_size=16),
    training=TrainingSpec(epochs=EPOCHS),
)


@pytest.fixture(scope="module")
def table() -> BenchTable:
    return BenchTable.from_frame(_table())


def test_the_table_is_read_by_design_with_its_seeds_and_exhaustive_cost(table):
    assert len(table.designs) == 12
    assert all(len(rows) == 2 for rows in table.designs.values())
    assert table.epochs == EPOCHS
    assert table.full_cost() == pytest.approx(12 * 8.0)
    assert design_key(_table().iloc[0]) in table.designs


def test_a_search_that_is_given_the_true_front_reaches_hypervolume_one(table):
    scorer = Scorer(table, BASE)
    front = scorer.front()
    assert 1 < len(front) < 12
    assert scorer(front) == pytest.approx(1.0)
    assert scorer(front[:1]) < 1.0
    oracle = dataclasses.replace(
        BASE, sampler="random", seed_trials=tuple(json.loads(key) for key in front)
    )
    trace = replay(oracle, SPACE, table, seed=0, budget_s=len(front) * 8.0, max_trials=50)
    curve = hypervolume_curve(trace, scorer)
    # the front designs, queued first, are the whole front
    assert curve[len(front) - 1] == pytest.approx(1.0)
    # charged the table's seconds
    assert trace.seconds[: len(front)] == [8.0 * (i + 1) for i in range(len(front))]


def test_a_replay_charges_the_epochs_run_and_never_counts_a_stopped_design_as_found(table):
    trace = replay(
        strategy_spec(BASE, "random/asha-stop"), SPACE, table, seed=3, budget_s=1e9, max_trials=60
    )
    steps = np.diff([0.0, *trace.seconds])
    assert trace.stopped > 0
    assert set(np.round(steps, 6)) <= {0.0, 5.0, 6.0, 8.0}  # stopped at rung 1 or 2, full, repeats
    assert sum(1 for key in trace.found if key) == sum(steps == 8.0)
    assert trace.trials <= 60
    assert trace.seconds == sorted(trace.seconds)
    assert len(trace.search_s) == trace.trials
    assert trace.search_s == sorted(trace.search_s)
    assert trace.search_s[0] > 0


def test_continuing_stopped_designs_charges_no_epoch_twice_and_completes_the_front(table):
    scorer = Scorer(table, BASE)
    for seed in range(3):
        trace = replay(
            strategy_spec(BASE, "random/asha"),
            SPACE,
            table,
            seed=seed,
            budget_s=1e9,
            max_trials=200,
        )
        assert trace.stopped > 0
        assert hypervolume_curve(trace, scorer)[-1] == pytest.approx(1.0)
        # each design's epochs charged once at most, and each continuation compiles again
        assert trace.continued > 0
        assert trace.seconds[-1] <= table.full_cost() + 4.0 * trace.continued + 1e-9
        # in the end every design stands trained fully
        assert len({key for key in trace.found if key}) == 12
    steady = BenchTable.from_frame(search_efficiency.without_compilation(_table()))
    trace = replay(
        strategy_spec(BASE, "random/asha"), SPACE, steady, seed=0, budget_s=1e9, max_trials=200
    )
    assert trace.continued > 0
    assert trace.seconds[-1] <= steady.full_cost() + 1e-9  # charged as on a GPU: no compilation


def test_a_steady_first_epoch_charges_the_median_of_the_later_epochs_and_is_replayed_apart():
    steady = BenchTable.from_frame(search_efficiency.without_compilation(_table()))
    # 1 s an epoch, the 4 s of compilation gone
    assert steady.full_cost() == pytest.approx(12 * 4.0)
    assert steady.truth(["val_accuracy"]).equals(
        BenchTable.from_frame(_table()).truth(["val_accuracy"])
    )


def test_scores_read_the_curve_at_budget_fractions_and_the_time_to_each_level():
    seconds, hv = [10.0, 20.0, 40.0], [0.5, 0.9, 0.96]
    assert hv_at(seconds, hv, 5.0) == 0.0
    assert hv_at(seconds, hv, 20.0) == 0.9
    assert hv_at(seconds, hv, 100.0) == 0.96
    assert time_to(seconds, hv, 0.9) == 20.0
    assert time_to(seconds, hv, 0.95) == 40.0
    assert math.isinf(time_to(seconds, hv, 0.99))
    replays = [
        {
            "strategy": s,
            "seed": k,
            "trials": 3,
            "stopped": 0,
            "budget_s": 100.0,
            "seconds": [x * f for x in seconds],
            "hv": hv,
            "hv_log": hv,
        }
        for s, f in (("random/full", 1.0), ("tpe/asha", 0.5))
        for k in range(3)
    ]
    table = summarize(replays)
    assert table.loc["tpe/asha", "time_to_95pct_vs_random"] == pytest.approx(0.5)
    assert table.loc["random/full", "time_to_90pct"] == pytest.approx(0.2)
    assert table.loc["tpe/asha", "hv_at_25pct"] == pytest.approx(0.96)
    assert table.loc["random/full", "seeds"] == 3
    assert (
        table.loc["tpe/asha", "time_to_95pct_vs_random_lo"]
        == table.loc["tpe/asha", "time_to_95pct_vs_random_hi"]
        == 0.5
    )


def test_intervals_cover_the_median_and_widen_with_the_spread_of_seeds():
    def replays(strategy, finish):  # reaches every level at ``finish`` of the budget
        return [
            {
                "strategy": strategy,
                "seed": k,
                "trials": 1,
                "stopped": 0,
                "budget_s": 1.0,
                "seconds": [f],
                "hv": [1.0],
                "hv_log": [1.0],
            }
            for k, f in enumerate(finish)
        ]

    rng = np.random.default_rng(1)
    table = summarize(
        [
            *replays("random/full", rng.uniform(0.4, 0.6, 30)),
            *replays("tpe/full", rng.uniform(0.1, 0.5, 30)),
        ]
    )
    for strategy in table.index:
        row = table.loc[strategy]
        assert row["time_to_95pct_lo"] <= row["time_to_95pct"] <= row["time_to_95pct_hi"]
    width = table["time_to_95pct_hi"] - table["time_to_95pct_lo"]
    assert width["tpe/full"] > width["random/full"]
    # clearly ahead: the interval excludes 1
    assert table.loc["tpe/full", "time_to_95pct_vs_random_hi"] < 1.0


def test_run_and_report_resume_and_write_the_table_and_curves(tmp_path, monkeypatch):
    path, results = tmp_path / "bench.csv", tmp_path / "runs.jsonl"
    _table().to_csv(path, index=False)
    search_efficiency.run(
        path, results, ["random/full", "tpe/dominated"], [0, 1], max_trials=40, base=BASE
    )
    first = read_results(results)
    assert {(r["strategy"], r["seed"]) for r in first} == {
        (s, k) for s in ("random/full", "tpe/dominated") for k in (0, 1)
    }
    results.write_text(results.read_text() + '{"torn')  # a killed run's last line
    search_efficiency.run(
        path, results, ["random/full", "tpe/dominated"], [0, 1], max_trials=40, base=BASE
    )
    assert len(read_results(results)) == 4  # nothing replayed twice, the torn line skipped
    summary = search_efficiency.report(results, tmp_path / "s.csv", tmp_path / "s.html")
    assert summary.loc["random/full", "time_to_95pct_vs_random"] == 1.0
    # the sampler's own wall seconds, reported apart from training
    assert (summary["search_s"] > 0).all()
    page = (tmp_path / "s.html").read_text()
    assert page.count("plotly-graph-div") >= 2
    assert (tmp_path / "s_log.csv").exists()
    assert 'src="https://cdn.plot.ly' not in page
    assert page.count("* plotly.js v") == 1  # inlined once: opens offline
    more = tmp_path / "more.jsonl"  # replays kept apart (e.g. the slow GP ones) join the report
    search_efficiency.run(path, more, ["random/asha"], [0], max_trials=40, base=BASE)
    both = search_efficiency.report(results, tmp_path / "s.csv", tmp_path / "s.html", also=(more,))
    assert set(both.index) == {"random/full", "tpe/dominated", "random/asha"}
    assert both.loc["random/asha", "seeds"] == 1

    _table().iloc[2:].to_csv(path, index=False)  # a design missing: refused before any replay
    with pytest.raises(SystemExit, match="lacks 1 of the 12 designs"):
        search_efficiency.run(path, results, ["random/full"], [5], max_trials=40, base=BASE)


def test_log_scaled_costs_keep_the_true_front_and_its_hypervolume_normalises_to_one(table):
    linear, log = Scorer(table, BASE), Scorer(table, BASE, log_costs=True)
    assert set(linear.front()) == set(log.front())  # a monotone transform keeps the front
    assert log(log.front()) == pytest.approx(1.0)


def test_the_rule_passes_the_fastest_and_whoever_is_within_the_interval_and_fails_who_never_arrives():
    def replays(strategy, finish):
        return [
            {
                "strategy": strategy,
                "seed": k,
                "trials": 1,
                "stopped": 0,
                "budget_s": 1.0,
                "seconds": [f],
                "hv": [1.0],
                "hv_log": [1.0 if math.isfinite(f) else 0.0],
            }
            for k, f in enumerate(finish)
        ]

    rng = np.random.default_rng(2)
    cell = [
        *replays("tpe/asha", rng.uniform(0.10, 0.30, 30)),
        *replays("nsga2/asha", rng.uniform(0.11, 0.31, 30)),
        *replays("random/full", rng.uniform(0.6, 0.8, 30)),
        *replays("gp/full", [math.inf] * 20 + [0.05] * 10),
    ]
    verdicts = search_efficiency.rule_cells({"t/cpu": cell}).set_index(["level", "strategy"])
    assert set(verdicts.loc[0.95].index[verdicts.loc[0.95, "passes"]]) == {"tpe/asha", "nsga2/asha"}
    assert verdicts.loc[(0.95, "random/full"), "ratio_lo"] > 1
    assert not verdicts.loc[(0.99, "gp/full"), "passes"]
    assert verdicts.loc[(0.95, "tpe/asha"), "seeds"] == 30
