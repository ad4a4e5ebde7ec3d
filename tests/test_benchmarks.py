"""The performance harness (`benchmarks/`): each benchmark runs at a tiny size and reports positive numbers."""

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import create_trial

from benchmarks import early_stop, overhead, repeats, spectrum, throughput, xception_bench
from benchmarks.synthetic_imagenet import write_imagenet_npz
from xsearch.study.record import TrialAttr


def _run(module, args: list[str], tmp_path: Path) -> dict:
    path = tmp_path / "report.json"
    report = module.main([*args, "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert report["environment"]["backend"]
    assert report["environment"]["cpu_count"] >= 1
    return report


def _positive(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 and math.isfinite(v) for v in values)


@pytest.mark.slow
def test_overhead_on_imagenet_npz_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    write_imagenet_npz(tmp_path / "npz", train_images=128, val_images=32, side=8, classes=4)
    report = _run(
        overhead,
        [
            "--data-dir",
            str(tmp_path / "npz"),
            "--image-size",
            "8",
            "--width",
            "0.125",
            "--middle-repeats",
            "0",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--repeats",
            "1",
            "--precision",
            "mixed_bfloat16",
        ],
        tmp_path,
    )
    assert report["train_images"] == 128
    # both variants ran in it
    assert report["precision"] == report["environment"]["precision"] == "mixed_bfloat16"
    assert _positive(
        report["trial_train_time_s"],
        report["plain_fit_time_s"],
        report["overhead_ratio"],
        report["trained_images_per_second"],
    )
    assert [p["augment"] for p in report["pipeline"]] == [False, True]
    for row in report["pipeline"]:
        assert _positive(row["served_images_per_second"], row["served_over_trained"])


@pytest.mark.slow
def test_spectrum(tmp_path):
    report = _run(
        spectrum,
        [
            "--image-size",
            "16",
            "--width",
            "0.125",
            "--middle-repeats",
            "0",
            "--segments",
            "1",
            "depthwise",
            "--batch-size",
            "4",
            "--steps",
            "1",
        ],
        tmp_path,
    )
    assert [p["segments"] for p in report["points"]] == [1, "depthwise"]
    for point in report["points"]:
        assert _positive(
            point["params"],
            point["macs"],
            point["latency_ms"],
            point["train_images_per_second"],
            point["macs_ratio"],
            point["latency_ratio"],
            point["train_time_ratio"],
        )
    assert report["points"][1]["macs_ratio"] < 1  # depthwise costs fewer MACs than regular convs


@pytest.mark.slow
def test_repeats(tmp_path):
    report = _run(
        repeats,
        ["--studies", "quickstart", "cifar10", "--samplers", "tpe", "--seeds", "2"],
        tmp_path,
    )
    assert [(row["study"], row["sampler"]) for row in report["rows"]] == [
        ("quickstart", "tpe"),
        ("cifar10", "tpe"),
    ]
    for row in report["rows"]:
        for run in row["runs"]:
            # the shipped spaces are not exhausted
            assert run["designs_trained"] == run["trials"] == row["trials"]
            assert 0 <= run["repeats_in_budget"] <= run["asks"] - run["trials"]
            # a superset of designs
            assert 0 < run["hypervolume_without_reuse"] <= run["hypervolume_with_reuse"] < 1


def _curve_trial(study, segments, params, curve):
    study.add_trial(
        create_trial(
            params={"segments": segments},
            distributions={"segments": CategoricalDistribution(["1", "4", "8"])},
            values=[curve[-1], params, params / 1000],
            user_attrs={
                TrialAttr.SETUP_DIGEST: "d",
                "feasible": True,
                "epochs_done": len(curve),
                "val_accuracy": curve[-1],
                "params": params,
                "latency_ms": params / 1000,
                "train_time_s": 30.0,
                "curves": {"val_accuracy": curve},
            },
        )
    )


def test_early_stop_replay_counts_stops_savings_and_front_losses():
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    _curve_trial(study, "1", 1000, [0.5, 0.8, 0.9])
    # a late bloomer: on the front, stopped after epoch 1
    _curve_trial(study, "4", 2000, [0.3, 0.5, 0.95])
    _curve_trial(study, "8", 3000, [0.2, 0.3, 0.4])  # dominated all along
    trials = early_stop.trained_trials(study)
    metrics = ["val_accuracy", "params", "latency_ms"]

    assert early_stop.replay(trials, metrics, 3, after_epochs=1, margin=0.05) == {1: 1, 2: 1}
    assert early_stop.replay(trials, metrics, 3, after_epochs=2, margin=0.05) == {1: 2, 2: 2}
    # spares the late bloomer
    assert early_stop.replay(trials, metrics, 3, after_epochs=1, margin=0.35) == {2: 2}
    late = early_stop.score(trials, metrics, ["maximize", "minimize", "minimize"], 3, {1: 1, 2: 1})
    assert late["stopped"] == 2
    assert late["epochs_skipped"] == 4
    assert late["epochs_total"] == 9
    assert late["train_time_skipped_fraction"] == pytest.approx(40 / 90)
    assert late["front"] == 2
    assert late["front_lost"] == [1]
    assert late["hypervolume_ratio"] < 1
    safe = early_stop.score(trials, metrics, ["maximize", "minimize", "minimize"], 3, {2: 2})
    assert safe["front_lost"] == []
    assert safe["hypervolume_ratio"] == pytest.approx(1.0)


@pytest.mark.slow
def test_early_stop_replay_of_a_finished_run(tiny_run, tmp_path):
    report = _run(
        early_stop,
        ["--study", "tiny", "--out", str(tiny_run), "--after-epochs", "1", "2", "--margins", "0.5"],
        tmp_path,
    )
    # 2 is not < 2 epochs
    assert [(row["after_epochs"], row["margin"]) for row in report["rows"]] == [(1, 0.5)]
    row = report["rows"][0]
    assert row["trials"] >= 2
    assert 0 <= row["stopped"] < row["trials"]
    assert 0 < row["hypervolume_ratio"] <= 1 + 1e-9


@pytest.mark.slow
def test_throughput(tmp_path):
    report = _run(throughput, ["--small", "--batch-size", "2", "--steps", "1"], tmp_path)
    assert _positive(report["matmul_flops_per_second"])
    rows = {row["model"]: row for row in report["rows"]}
    assert {"xsearch", "keras.applications"} <= set(rows)
    assert rows["xsearch"]["params"] == rows["keras.applications"]["params"] == 22_910_480
    for row in rows.values():
        assert _positive(
            row["forward_flops"],
            row["train_images_per_second"],
            row["inference_images_per_second"],
            row["train_mfu"],
            row["inference_mfu"],
        )
        assert row["train_compile_s"] >= 0
        assert row["inference_compile_s"] >= 0
    if "timm legacy_xception" not in rows:
        assert any("timm" in note for note in report["notes"])


@pytest.mark.slow
def test_throughput_below_keras_applications_minimum_compares_without_it(tmp_path):
    report = _run(
        throughput,
        ["--image-size", "32", "--batch-size", "2", "--steps", "1", "--rounds", "1"],
        tmp_path,
    )
    models = {row["model"] for row in report["rows"]}
    assert "xsearch" in models
    assert "keras.applications" not in models
    assert any("keras.applications" in note and "71x71" in note for note in report["notes"])


def _bench_run(folder, seed, accuracies):
    """A finished bench study of three designs in ``folder``, their final accuracies given."""
    import dataclasses

    from xsearch.model.config import XceptionConfig
    from xsearch.study.spec import load_study_spec, write_spec
    from xsearch.study.storage import open_storage

    spec = dataclasses.replace(load_study_spec(xception_bench.STUDY), seed=seed)
    study = optuna.create_study(
        study_name=spec.name,
        storage=open_storage(None, folder),
        directions=["maximize", "minimize", "minimize"],
    )
    write_spec(study, spec)
    for segments, accuracy in zip((1, 4, "depthwise"), accuracies):
        curve = [accuracy / 2] * (spec.training.epochs - 1) + [accuracy]
        attrs = {
            TrialAttr.CONFIG: XceptionConfig(
                middle_repeats=0, width=0.125, segments=segments
            ).to_json(),
            TrialAttr.CURVES: {TrialAttr.VAL_ACCURACY: curve},
            TrialAttr.EPOCH_TIMES_S: [2.0] + [1.0] * 5,
            TrialAttr.PARAMS: 1000,
            TrialAttr.MACS: 5000,
            TrialAttr.FLOPS: 10000,
            TrialAttr.LATENCY_MS: 1.5,
            TrialAttr.LATENCY_P90_MS: 1.7,
            TrialAttr.TEST_ACCURACY: accuracy - 0.01,
        }
        study.add_trial(optuna.trial.create_trial(values=[accuracy, 1000, 1.5], user_attrs=attrs))


def _bench_designs(folder, seed, designs):
    """A finished bench study in ``folder`` that trained ``designs``, each to 0.8 with 1.5 s of compilation."""
    import dataclasses

    from xsearch.study.spec import load_study_spec, write_spec
    from xsearch.study.storage import open_storage

    spec = dataclasses.replace(load_study_spec(xception_bench.STUDY), seed=seed)
    study = optuna.create_study(
        study_name=spec.name,
        storage=open_storage(None, folder),
        directions=["maximize", "minimize", "minimize"],
    )
    write_spec(study, spec)
    for design in designs:
        attrs = {
            TrialAttr.CONFIG: design.to_json(),
            TrialAttr.CURVES: {TrialAttr.VAL_ACCURACY: [0.8] * 6},
            TrialAttr.EPOCH_TIMES_S: [2.5] + [1.0] * 5,
            TrialAttr.COMPILE_TIME_S: 1.5,
            TrialAttr.PARAMS: 1000,
            TrialAttr.MACS: 5000,
            TrialAttr.FLOPS: 10000,
            TrialAttr.LATENCY_MS: 1.5,
            TrialAttr.LATENCY_P90_MS: 1.7,
            TrialAttr.TEST_ACCURACY: 0.79,
        }
        study.add_trial(optuna.trial.create_trial(values=[0.8, 1000, 1.5], user_attrs=attrs))


def test_the_bench_table_has_one_row_per_design_and_seed_and_measures_spread_against_noise(
    tmp_path,
):
    _bench_run(tmp_path / "seed-0", 0, [0.50, 0.70, 0.90])
    _bench_run(tmp_path / "seed-1", 1, [0.52, 0.72, 0.92])
    frame = xception_bench.table(tmp_path)
    assert len(frame) == 6
    assert list(frame["seed"]) == [0, 1, 0, 1, 0, 1]
    assert list(frame["segments"][::2]) == ["1", "4", "depthwise"]
    assert list(frame.filter(like="epoch_s_").iloc[0]) == [2.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert frame.loc[0, "val_acc_6"] == 0.50
    assert frame.loc[0, "val_acc_1"] == 0.25
    # no recorded compile time: the first epoch less the median of the rest
    assert list(frame["compile_s"]) == [1.0] * 6
    report = xception_bench.noise(frame)
    assert report["designs"] == 3
    assert report["seeds_per_design_min"] == 2
    # each design: two seeds 0.02 apart
    assert report["median_seed_std"] == pytest.approx(0.02 / 2**0.5)
    assert report["pooled_seed_std"] == pytest.approx(0.02 / 2**0.5)
    assert report["spread_std"] == pytest.approx(0.2)
    assert report["spread_over_median_noise"] == pytest.approx(0.2 / (0.02 / 2**0.5))
    assert (
        report["spread_over_pooled_noise_lo"]
        <= report["spread_over_pooled_noise"]
        <= report["spread_over_pooled_noise_hi"]
    )
    # each curve is half its final value until the last epoch
    assert report["spearman_epoch_1"] == pytest.approx(1.0)
    xception_bench.write_table(frame, tmp_path / "bench.csv", xception_bench.STUDY)
    assert len(pd.read_csv(tmp_path / "bench.csv")) == 6
    assert json.loads((tmp_path / "bench.json").read_text())["seeds"] == [0, 1]


def test_noise_pools_the_seed_variance_and_leaves_out_failed_and_incomplete_rows():
    rows = []
    for design, (accuracies, first) in enumerate(
        [((0.5, 0.6), 0.9), ((0.7, 0.7), 0.1), ((0.9, 0.9, 0.9), 0.5)]
    ):
        for seed, accuracy in enumerate(accuracies):
            rows.append(
                {
                    "middle_repeats": 0,
                    "width": 0.125 * (design + 1),
                    "depth_multiplier": 1,
                    "segments": "depthwise",
                    "intermediate_activation": "none",
                    "residual": True,
                    "seed": seed,
                    "val_acc_1": first,
                    "val_acc_2": accuracy,
                    "failure_reason": "",
                }
            )
    rows.append({**rows[0], "seed": 5, "val_acc_2": None})  # an incomplete row
    rows.append({**rows[0], "seed": 6, "val_acc_2": 0.0, "failure_reason": "nan"})  # a failed one
    report = xception_bench.noise(pd.DataFrame(rows))
    assert report["rows"] == 7
    assert report["designs"] == 3
    assert report["seeds_per_design_max"] == 3
    # variance 0.005 on 1 of 4 degrees of freedom
    assert report["pooled_seed_std"] == pytest.approx((0.005 / 4) ** 0.5)
    assert report["median_seed_std"] == pytest.approx(0.0)
    assert report["spearman_epoch_1"] == pytest.approx(-0.5)


def test_a_resumed_trial_s_curve_starts_at_its_epoch_and_a_cut_row_is_left_out_everywhere(tmp_path):
    from benchmarks.replay import BenchTable
    from xsearch.results.analyze import analyze, trained_rows

    _bench_run(tmp_path / "seed-0", 0, [0.50, 0.70, 0.90])
    study = optuna.load_study(study_name="xception-bench", storage=_storage(tmp_path / "seed-0"))
    # a retry whose predecessor left no curves, resumed after epoch 1
    resumed = dict(study.trials[0].user_attrs)
    resumed.update(
        {
            TrialAttr.CURVES: {TrialAttr.VAL_ACCURACY: [0.3, 0.35, 0.4, 0.45, 0.55]},
            TrialAttr.EPOCH_TIMES_S: [3.0, 1.0, 1.0, 1.0, 1.0],
            TrialAttr.RESUMED_FROM_EPOCH: 1,
        }
    )
    study.add_trial(optuna.trial.create_trial(values=[0.55, 1000, 1.5], user_attrs=resumed))
    row = pd.DataFrame(xception_bench.rows(study)).iloc[-1]
    assert math.isnan(row["val_acc_1"])
    assert list(row[[f"val_acc_{e}" for e in range(2, 7)]]) == [0.3, 0.35, 0.4, 0.45, 0.55]
    assert math.isnan(row["epoch_s_1"])
    assert row["epoch_s_2"] == 3.0
    frame = xception_bench.table(tmp_path)
    cut = frame.iloc[[0]].assign(seed=1, val_acc_6=math.nan)  # a curve that stops at epoch 5
    complete = frame[frame["trial"] != row["trial"]]
    with_cut = pd.concat([complete, cut], ignore_index=True)
    assert list(trained_rows(with_cut)) == [True, True, True, False]
    assert xception_bench.noise(with_cut)["rows"] == xception_bench.noise(complete)["rows"] == 3
    assert analyze(with_cut).runs == analyze(complete).runs == 3
    assert (
        BenchTable.from_frame(with_cut).designs.keys()
        == BenchTable.from_frame(complete).designs.keys()
    )
    with pytest.raises(
        ValueError, match=r"lack an epoch's accuracy or seconds; a replay charges every epoch"
    ):
        # the resumed row counts (its final accuracy is known) but cannot be replayed
        BenchTable.from_frame(frame)


def _storage(folder):
    from xsearch.study.storage import open_storage

    return open_storage(None, folder)


def test_the_bench_table_keeps_committed_rows_no_run_folder_has(tmp_path):
    _bench_run(tmp_path / "seed-1", 1, [0.52, 0.72, 0.92])
    committed = xception_bench.table(tmp_path)
    committed["seed"] = 0  # as if seed 0's run folder were gone
    committed.loc[0, "val_acc_6"] = 0.11
    frame = xception_bench.table(
        tmp_path, existing=pd.concat([committed, xception_bench.table(tmp_path)])
    )
    assert len(frame) == 6
    assert sorted(frame["seed"]) == [0, 0, 0, 1, 1, 1]
    assert 0.11 in set(frame["val_acc_6"])
    assert 0.52 in set(frame["val_acc_6"])  # the run's row wins for seed 1


def test_fill_trains_only_the_designs_the_table_lacks_for_a_seed(tmp_path, monkeypatch):
    import subprocess

    from xsearch.model.space import SearchSpace
    from xsearch.study.sampler import grid_points
    from xsearch.study.spec import load_study_spec

    space = SearchSpace.from_toml(load_study_spec(xception_bench.STUDY).space)
    points = grid_points(space, 0)
    rows = [{**point, "seed": 0} for point in points[2:]]  # two designs missing for seed 0
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    commands = []
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, check: commands.append(command) or subprocess.CompletedProcess(command, 0),
    )
    # the stub trains nothing
    assert xception_bench.fill([0, 1], tmp_path / "runs", tmp_path / "table.csv") == 1
    assert [c[c.index("--seed") + 1] for c in commands] == ["0", "1"]
    spec = load_study_spec(tmp_path / "runs" / "seed-0-part-0" / "xception-bench.toml")
    assert spec.name == "xception-bench"
    assert spec.trials == 2
    assert spec.sampler == "random"
    assert [space.encode(space.decode({**point})) for point in points[:2]] == [
        space.encode(type(space.decode(points[0]))(**seed)) for seed in spec.seed_trials
    ]
    # no row for seed 1
    assert (
        load_study_spec(tmp_path / "runs" / "seed-1-part-0" / "xception-bench.toml").trials == 120
    )


def test_fill_in_chunks_resumes_from_run_folders_in_one_order_for_every_seed(tmp_path, monkeypatch):
    import subprocess

    from xsearch.model.space import SearchSpace
    from xsearch.study.sampler import grid_points
    from xsearch.study.spec import load_study_spec

    space = SearchSpace.from_toml(load_study_spec(xception_bench.STUDY).space)
    order = [space.decode(p).to_json() for p in grid_points(space, 0)]
    rows = [{**point, "seed": seed} for point in grid_points(space, 0)[3:] for seed in (0, 1)]
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    trained = []

    # a finished study of the chunk's designs, as `xsearch run` leaves it
    def train(command, check):
        folder, seed = (
            Path(command[command.index("--out") + 1]),
            int(command[command.index("--seed") + 1]),
        )
        spec = load_study_spec(folder / "xception-bench.toml")
        designs = [
            type(space.decode(grid_points(space, 0)[0]))(**{**json.loads(order[0]), **s})
            for s in spec.seed_trials
        ]
        _bench_designs(folder, seed, designs)
        trained.append((seed, [d.to_json() for d in designs]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", train)
    assert xception_bench.fill([0, 1], tmp_path / "runs", tmp_path / "table.csv", chunk=2) == 0
    assert trained == [(0, order[:2]), (1, order[:2]), (0, order[2:3]), (1, order[2:3])]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "seed-0-part-0",
        "seed-0-part-1",
        "seed-1-part-0",
        "seed-1-part-1",
    ]
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 240
    assert table["compile_s"].notna().sum() == 6  # the trained rows carry their compile seconds


def test_a_second_fill_from_the_end_trains_the_designs_the_first_reaches_last(
    tmp_path, monkeypatch
):
    import subprocess

    from xsearch.model.space import SearchSpace
    from xsearch.study.sampler import grid_points
    from xsearch.study.spec import load_study_spec

    space = SearchSpace.from_toml(load_study_spec(xception_bench.STUDY).space)
    order = [space.decode(p) for p in grid_points(space, 0)]
    rows = [{**p, "seed": 0} for p in grid_points(space, 0)[1:-2]]  # the first and last two missing
    pd.DataFrame(rows).to_csv(tmp_path / "table.csv", index=False)
    chunks = []
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, check: (
            chunks.append(load_study_spec(Path(command[command.index("--study") + 1])).seed_trials)
            or subprocess.CompletedProcess(command, 0)
        ),
    )
    # the stub trains nothing: one round, then it stops
    assert (
        xception_bench.fill([0], tmp_path / "runs", tmp_path / "table.csv", chunk=2, from_end=True)
        == 1
    )
    trained = [type(order[0])(**design).to_json() for design in chunks[0]]
    assert trained == [order[-1].to_json(), order[-2].to_json()]


def test_compare_runs_counts_training_and_scores_both_fronts_on_common_scales():
    from benchmarks import compare_runs

    def study(points):
        made = optuna.create_study(directions=["maximize", "minimize"])
        for accuracy, params, epochs in points:
            attrs = {TrialAttr.EPOCH_TIMES_S: [2.0] * epochs}
            if epochs < 3:
                attrs[TrialAttr.STOPPED_AT_EPOCH] = epochs
            made.add_trial(
                create_trial(
                    values=[accuracy, params],
                    user_attrs=attrs,
                    constraints={"stopped": float(epochs < 3)},
                )
            )  # a stopped trial is infeasible
        return made

    old = compare_runs.summary(study([(0.9, 100, 3), (0.8, 50, 3)]))
    new = compare_runs.summary(study([(0.9, 100, 3), (0.95, 40, 1)]))
    assert (old["trials"], old["stopped"], old["epochs"], old["train_s"]) == (2, 0, 6, 12.0)
    assert (new["stopped"], new["epochs"], new["front"]) == (
        1,
        4,
        [[0.9, 100.0]],
    )  # the stopped trial is off the front
    old_volume, new_volume = compare_runs.front_hypervolumes([old, new], study([]).directions)
    assert old_volume > new_volume > 0


def test_transfer_tasks_split_the_digits_by_class_and_relabel_from_zero():
    import numpy as np

    from benchmarks.transfer import digits_task
    from xsearch.data import Dataset

    y = np.arange(100) % 10
    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1).repeat(3, axis=3)
    data = Dataset(
        name="digits",
        x_train=x,
        y_train=y,
        x_val=x[:20],
        y_val=y[:20],
        x_test=x[20:30],
        y_test=y[20:30],
        num_classes=10,
        class_names=[str(c) for c in range(10)],
        mean=np.zeros(3),
        std=np.ones(3),
    )
    task = digits_task(data, range(5, 10), 12, seed=0)
    assert task.num_classes == 5
    assert len(task.y_train) == 12
    assert set(task.y_train) <= set(range(5))
    # the images of digits 5-9, relabelled
    assert np.array_equal(task.x_train[:, 0, 0, 0] % 10, task.y_train + 5)
    assert len(task.y_val) == 15
    assert len(task.y_test) == 0  # validation: the validation and test images of 5-9


@pytest.mark.slow
def test_latency_targets_noise_measures_each_design_on_each_target(monkeypatch):
    from benchmarks import latency_targets
    from xsearch.model.config import XceptionConfig

    monkeypatch.setattr(
        latency_targets, "DESIGNS", {"tiny": XceptionConfig(middle_repeats=0, width=0.125)}
    )
    table = latency_targets.noise(repeats=2, image_size=16)
    assert list(table["target"]) == ["train-device", "cpu", "litert-cpu", "onnxruntime-cpu"]
    assert (table["median_ms"] > 0).all()
    assert (table["p90_ms"] >= table["median_ms"]).all()
    assert (table["cv"] >= 0).all()
    assert table["overhead_ms"].notna().tolist() == [True, False, False, False]


def test_latency_noise_reports_the_spread_per_design_and_how_much_of_the_true_front_survives():
    from benchmarks.latency_noise import latency_noise
    from xsearch.model.config import XceptionConfig

    designs = {  # accuracy, params, latency of seed 0 and seed 1
        "a": (XceptionConfig(middle_repeats=0, width=0.125, segments=1), 0.9, 10, (1.0, 1.0)),
        "b": (XceptionConfig(middle_repeats=0, width=0.125, segments=4), 0.8, 5, (2.0, 2.0)),
        "c": (
            XceptionConfig(middle_repeats=1, width=0.125, segments=1),
            0.9,
            10,
            (0.5, 3.5),
        ),  # on the front half the time
    }
    rows = [
        {
            **json.loads(config.to_json()),
            "seed": seed,
            "val_acc_1": accuracy,
            "epoch_s_1": 1.0,
            "params": params,
            "macs": 1,
            "latency_ms": latency[seed],
            "failure_reason": "",
        }
        for config, accuracy, params, latency in designs.values()
        for seed in (0, 1)
    ]
    report = latency_noise(pd.DataFrame(rows), draws=400)
    assert report["designs"] == 3
    assert report["latency_max_over_min_max"] == pytest.approx(7.0)
    assert report["latency_cv_median"] == 0.0
    assert report["latency_cv_max"] == pytest.approx(3 / 2**0.5 / 2)
    assert report["true_front"] == 2
    assert report["median_front_keeps"] == 2  # c's mean and median (2.0) lose to a
    assert 0.65 < report["drawn_front_keeps_mean"] < 0.85  # a drops off whenever c draws 0.5 ms
    assert report["true_front_designs_kept_in_every_draw"] == 1  # b


@pytest.mark.slow
def test_latency_retime_times_every_design_in_a_child_resumes_and_compares_the_fronts(tmp_path):
    from benchmarks.latency_retime import main
    from xsearch.model.config import XceptionConfig

    designs = [
        (
            XceptionConfig(middle_repeats=0, width=0.125, segments=1),
            0.9,
            10,
            50.0,
        ),  # each best at something:
        (XceptionConfig(middle_repeats=0, width=0.125, segments="depthwise"), 0.8, 5, 0.01),
    ]  # both on any front
    rows = [
        {
            **json.loads(config.to_json()),
            "seed": seed,
            "val_acc_1": accuracy,
            "epoch_s_1": 1.0,
            "params": params,
            "macs": 1,
            "latency_ms": latency,
            "failure_reason": "",
        }
        for config, accuracy, params, latency in designs
        for seed in (0, 1)
    ]
    table, out, retimed = (
        tmp_path / "table.csv",
        tmp_path / "retimed.csv",
        tmp_path / "retimed_table.csv",
    )
    pd.DataFrame(rows).to_csv(table, index=False)
    arguments = [
        "--table",
        str(table),
        "--out",
        str(out),
        "--repeats",
        "5",
        "--max-repeats",
        "20",
        "--cv",
        "0.5",
    ]
    assert main([*arguments, "--retimed-table", str(retimed)]) == 0
    timed = pd.read_csv(out)
    assert len(timed) == 2
    assert (timed["latency_ms"] > 0).all()
    assert (timed["threads"] == 1).all()
    assert ((timed["cv"] < 0.5) == timed["settled"]).all()
    assert (timed["repeats"] <= 20).all()
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["designs"] == 2
    assert summary["true_front"] == 2
    assert summary["kept"] + len(summary["only_true"]) == 2
    # each row its design's
    assert sorted(pd.read_csv(retimed)["latency_ms"]) == sorted([*timed["latency_ms"]] * 2)
    assert main([*arguments, "--retimed-table", str(retimed)]) == 0
    assert pd.read_csv(out).equals(timed)  # resumed: nothing timed twice
    again = json.loads(out.with_suffix(".json").read_text())
    assert (again["date"], again["command"]) == (
        summary["date"],
        summary["command"],
    )  # the timing's provenance, not this call's
