"""`StudyObjective` on an in-memory study with the training faked: what a trial records, when it is not trained
(constraints, repeats, the budget), how failures are told, and early stopping through the Keras callbacks.

The fake `train_and_evaluate` runs the objective's callbacks as Keras would after each epoch, so the epoch
record and `StopDominated` run for real; `tests/run/test_faults.py` and `tests/study/test_early_stop.py`
train for real (slow tier)."""

import dataclasses
import json
import threading
import warnings

import keras
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

import xsearch.study.trainer
from xsearch.common import interrupt
from xsearch.data import Dataset
from xsearch.model.config import XceptionConfig
from xsearch.model.space import SearchSpace
from xsearch.study.failures import TrialFailure
from xsearch.study.fit import TrainResult
from xsearch.study.keras_callbacks import Checkpoint, StopDominated, checkpoint_path
from xsearch.study.objective import StudyObjective, constraint_violations
from xsearch.study.record import StudyAttr, TrialAttr, is_feasible
from xsearch.study.repeats import setup_digest
from xsearch.study.spec import AshaSpec, EarlyStopSpec, LatencySpec
from xsearch.study.trainer import KerasTrainer

CURVE = [0.3, 0.6]


def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)  # noqa: E731
    labels = lambda n: rng.integers(0, 10, n).astype(np.int32)  # noqa: E731
    return Dataset(
        name="random",
        x_train=images(40),
        y_train=labels(40),
        x_val=images(10),
        y_val=labels(10),
        x_test=images(10),
        y_test=labels(10),
        num_classes=10,
        mean=np.full(3, 127.5, np.float32),
        std=np.full(3, 64.0, np.float32),
        class_names=[str(c) for c in range(10)],
    )


class FakeTraining:
    """Stands for `train_and_evaluate`: runs the callbacks' epoch ends with the logs of ``CURVE``,
    or raises ``error``."""

    def __init__(self, error: Exception | None = None, checkpoints: bool = False) -> None:
        self.error, self.checkpoints = error, checkpoints
        self.calls: list[dict] = []
        self.initial_epochs: list[int] = []

    def __call__(
        self,
        model,
        dataset,
        training,
        seed,
        callbacks=(),
        initial_epoch=0,
        transfer=None,
        inherited=(),
    ):
        self.calls.append(
            {"input_shape": model.input_shape, "seed": seed, "epochs": training.epochs}
        )
        self.initial_epochs.append(initial_epoch)
        if self.error is not None:
            raise self.error
        model.stop_training = False
        curve = []
        for epoch in range(initial_epoch, training.epochs):
            curve.append(CURVE[epoch])
            logs = {
                "loss": 1.0 - CURVE[epoch],
                "accuracy": CURVE[epoch],
                "val_accuracy": CURVE[epoch],
            }
            for callback in callbacks:
                if self.checkpoints or not isinstance(callback, Checkpoint):
                    callback.set_model(model)
                    callback.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        return TrainResult(
            curves={"val_accuracy": curve},
            val_accuracy=curve[-1],
            val_top5=None,
            test_accuracy=0.5,
            test_top5=None,
            throughput=100.0,
            compile_time_s=0.1,
            train_time_s=0.2,
            epochs=len(curve),
            epoch_times_s=[0.1] * len(curve),
        )


@pytest.fixture
def spec(tiny_spec):
    return dataclasses.replace(tiny_spec, seed_trials=(), trials=5, latency_batch=2)


def _study(spec) -> optuna.Study:
    study = optuna.create_study(
        directions=[o.direction for o in spec.objective_list],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in spec.objective_list])
    return study


def _optimize(spec, study, tmp_path, monkeypatch, training, n_trials=1, catch=()):
    monkeypatch.setattr(xsearch.study.trainer, "train_and_evaluate", training)
    objective = StudyObjective(
        spec, SearchSpace.from_toml(spec.space), KerasTrainer(spec, _dataset(), tmp_path)
    )
    study.optimize(objective, n_trials=n_trials, catch=catch)
    return study


def test_a_feasible_design_is_costed_trained_and_recorded(spec, tmp_path, monkeypatch):
    training = FakeTraining()
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, training).trials
    attrs = trial.user_attrs
    assert trial.state == TrialState.COMPLETE
    assert training.calls == [{"input_shape": (None, 16, 16, 3), "seed": 0, "epochs": 2}]
    assert trial.values == [0.6, attrs[TrialAttr.PARAMS], attrs[TrialAttr.LATENCY_MS]]
    assert attrs[TrialAttr.PARAMS] > 0
    assert attrs[TrialAttr.MACS] > 0
    assert attrs[TrialAttr.LATENCY_MS] > 0
    assert attrs[TrialAttr.FEASIBLE] is True
    assert trial.constraints == {"oom": 0.0}
    assert attrs[TrialAttr.EPOCHS_DONE] == 2
    assert attrs[TrialAttr.EPOCH_LOGS] == {"epoch": 2, "loss": 0.4, "accuracy": 0.6}
    assert attrs[TrialAttr.NORM_MEAN] == [127.5] * 3
    assert attrs[TrialAttr.SETUP_DIGEST] == setup_digest(spec)
    assert json.loads(attrs[TrialAttr.CONFIG])["width"] == 0.125
    assert attrs[TrialAttr.CURVES] == {"val_accuracy": CURVE}
    # the epoch checkpoint is gone with the trial
    assert not list((tmp_path / "checkpoints").iterdir())


def test_every_trial_records_the_precision_it_trains_in(spec, tmp_path, monkeypatch):
    """On a GPU, ``auto`` trains in mixed_bfloat16; the record once said float32, the policy each
    trial's release reset."""
    policies: list[str] = []

    def training(model, *args, **kwargs):
        policies.append(model.layers[-1].dtype_policy.name)
        return FakeTraining()(model, *args, **kwargs)

    spec = dataclasses.replace(spec, precision="mixed_bfloat16")
    study = _optimize(spec, _study(spec), tmp_path, monkeypatch, training, n_trials=2)
    assert policies == ["mixed_bfloat16"] * 2
    assert [trial.user_attrs[TrialAttr.PRECISION] for trial in study.trials] == [
        "mixed_bfloat16"
    ] * 2
    keras.config.set_dtype_policy("float32")


def _targets(monkeypatch, onnx_error: str | None = None) -> list[tuple]:
    """`measure_targets` answering 2.5 ms on LiteRT and 4 ms (or ``onnx_error``) on ONNX Runtime; returns its calls."""
    calls: list[tuple] = []

    def measure(model, targets, settings):
        calls.append((targets, settings.threads, settings.batch_size))
        results = {
            "litert-cpu": {"median_ms": 2.5},
            "onnxruntime-cpu": {"error": onnx_error} if onnx_error else {"median_ms": 4.0},
        }
        return {target: results[target] for target in targets}

    monkeypatch.setattr(xsearch.study.trainer, "measure_targets", measure)
    return calls


def test_a_trial_is_scored_on_its_latency_targets(spec, tmp_path, monkeypatch):
    spec = dataclasses.replace(
        spec,
        objectives=("accuracy", "latency@litert-cpu"),
        latency=LatencySpec(targets=("onnxruntime-cpu",), threads=2),
    )
    calls = _targets(monkeypatch)
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, FakeTraining()).trials
    assert calls == [(("litert-cpu", "onnxruntime-cpu"), 2, 2)]
    assert trial.values == [0.6, 2.5]
    assert trial.user_attrs["latency_ms@onnxruntime-cpu"] == 4.0
    assert trial.user_attrs[TrialAttr.LATENCY_TARGETS]["litert-cpu"] == {"median_ms": 2.5}
    assert trial.constraints == {"oom": 0.0, "runtime": 0.0}
    assert trial.user_attrs[TrialAttr.LATENCY_OVERHEAD_MS] > 0


def test_a_design_that_a_scored_target_cannot_run_is_infeasible_and_not_trained(
    spec, tmp_path, monkeypatch
):
    spec = dataclasses.replace(spec, objectives=("accuracy", "latency@onnxruntime-cpu"))
    _targets(monkeypatch, onnx_error="onnx: ValueError: an op the exporter cannot write")
    training = FakeTraining(error=AssertionError("trained a design its target cannot run"))
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, training).trials
    assert trial.state == TrialState.COMPLETE
    assert training.calls == []
    assert trial.constraints["runtime"] == 1.0
    assert trial.user_attrs[TrialAttr.FAILURE_REASON] == "constraint"
    assert trial.values[1] == float("inf")
    assert "cannot write" in trial.user_attrs[TrialAttr.LATENCY_TARGETS]["onnxruntime-cpu"]["error"]


def test_a_latency_constraint_on_a_target_skips_training_the_designs_that_break_it(
    spec, tmp_path, monkeypatch
):
    # the design measures 2.5 ms there
    spec = dataclasses.replace(spec, constraints={"max_latency_ms@litert-cpu": 2.0})
    _targets(monkeypatch)
    training = FakeTraining(
        error=AssertionError("trained a design over its target's latency bound")
    )
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, training).trials
    assert training.calls == []
    assert trial.user_attrs[TrialAttr.FAILURE_REASON] == "constraint"
    assert trial.constraints["max_latency_ms@litert-cpu"] == pytest.approx(0.25)
    assert trial.constraints["runtime"] == 0.0


def test_a_recorded_only_target_that_fails_leaves_the_design_feasible(spec, tmp_path, monkeypatch):
    spec = dataclasses.replace(spec, latency=LatencySpec(targets=("onnxruntime-cpu",)))
    _targets(monkeypatch, onnx_error="onnx: it failed")
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, FakeTraining()).trials
    assert trial.user_attrs[TrialAttr.FEASIBLE] is True
    assert trial.constraints == {"oom": 0.0}


def test_a_design_over_a_hard_constraint_is_not_trained(spec, tmp_path, monkeypatch):
    spec = dataclasses.replace(spec, constraints={"max_params": 10})
    training = FakeTraining(error=AssertionError("trained despite the constraint"))
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, training).trials
    assert trial.state == TrialState.COMPLETE
    assert training.calls == []
    assert trial.user_attrs[TrialAttr.FAILURE_REASON] == "constraint"
    assert trial.user_attrs[TrialAttr.FEASIBLE] is False
    assert trial.constraints["max_params"] == trial.user_attrs[TrialAttr.PARAMS] / 10 - 1 > 0
    assert trial.values[0] == 0.0
    assert constraint_violations({"max_params": 100.0}, {"params": 50}) == {"max_params": -0.5}


def test_out_of_memory_is_an_infeasible_design_and_other_errors_fail_the_trial(
    spec, tmp_path, monkeypatch
):
    oom = FakeTraining(
        error=RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB")
    )
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, oom).trials
    assert trial.state == TrialState.COMPLETE
    assert trial.constraints["oom"] == 1.0
    assert trial.values[0] == 0.0
    assert trial.user_attrs[TrialAttr.FAILURE_REASON] == "oom"
    assert "RESOURCE_EXHAUSTED" in trial.user_attrs[TrialAttr.ERROR]

    broken = FakeTraining(error=ValueError("the driver is gone"))
    (failed,) = _optimize(
        spec, _study(spec), tmp_path, monkeypatch, broken, catch=(TrialFailure,)
    ).trials
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[TrialAttr.FAILURE_REASON] == "error"
    assert failed.user_attrs[TrialAttr.ERROR] == "ValueError: the driver is gone"


def test_an_error_raised_after_a_stop_signal_interrupts_the_trial_instead_of_failing_it(
    spec, tmp_path, monkeypatch
):
    monkeypatch.setattr(interrupt, "_requested", threading.Event())
    interrupt._requested.set()  # SIGTERM's KeyboardInterrupt landed in a lock: it surfaced as this
    torn = FakeTraining(error=RuntimeError("release unlocked lock"))
    study = _study(spec)
    with pytest.raises(KeyboardInterrupt):
        _optimize(spec, study, tmp_path, monkeypatch, torn, catch=(TrialFailure,))
    trial, retry = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[TrialAttr.FAILURE_REASON] == "interrupted"
    assert TrialAttr.ERROR not in trial.user_attrs
    assert retry.state == TrialState.WAITING  # queued to be retried at once
    assert retry.user_attrs[TrialAttr.RETRY_OF] == trial.number


def test_a_repeated_design_reuses_its_results_and_the_budget_prunes_a_surplus_trial(
    spec, tmp_path, monkeypatch
):
    space = SearchSpace.from_toml(spec.space)
    study = _study(spec)
    design = space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments=8))
    for _ in range(2):
        study.enqueue_trial(design)
    training = FakeTraining()
    first, repeat = _optimize(spec, study, tmp_path, monkeypatch, training, n_trials=2).trials
    assert len(training.calls) == 1
    assert repeat.user_attrs[TrialAttr.REPEAT_OF] == first.number
    assert repeat.values == first.values
    assert repeat.constraints == first.constraints

    _optimize(
        dataclasses.replace(spec, trials=1), study, tmp_path, monkeypatch, training, n_trials=1
    )
    # the budget of 1 is spent: the repeat does not count, the trained design does
    surplus = study.trials[-1]
    assert surplus.state == TrialState.PRUNED
    assert surplus.user_attrs[TrialAttr.SURPLUS] is True
    assert len(training.calls) == 1


def test_trials_that_failed_under_another_set_up_leave_the_budget_to_the_corrected_run(
    spec, tmp_path, monkeypatch
):
    study = _study(spec)
    for _ in range(2):  # e.g. a run whose every trial failed on a bad flag
        study.add_trial(
            create_trial(
                state=TrialState.FAIL,
                user_attrs={
                    TrialAttr.FAILURE_REASON: "error",
                    TrialAttr.SETUP_DIGEST: "another set-up",
                },
            )
        )
    _optimize(
        dataclasses.replace(spec, trials=2),
        study,
        tmp_path,
        monkeypatch,
        FakeTraining(),
        n_trials=1,
    )
    assert study.trials[-1].state == TrialState.COMPLETE  # not pruned as surplus
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            user_attrs={
                TrialAttr.FAILURE_REASON: "error",
                TrialAttr.SETUP_DIGEST: setup_digest(spec),
            },
        )
    )
    _optimize(
        dataclasses.replace(spec, trials=2),
        study,
        tmp_path,
        monkeypatch,
        FakeTraining(),
        n_trials=1,
    )
    # a failure of this set-up counts
    assert study.trials[-1].user_attrs.get(TrialAttr.SURPLUS) is True


def test_a_dominated_trial_stops_after_the_rule_epoch(spec, tmp_path, monkeypatch):
    spec = dataclasses.replace(spec, early_stop=EarlyStopSpec(after_epochs=1, margin=0.05))
    space = SearchSpace.from_toml(spec.space)
    study = _study(spec)
    study.set_user_attr(StudyAttr.SPEC, json.dumps(dataclasses.asdict(spec), default=str))
    study.add_trial(
        create_trial(  # fully trained, cheaper and better after every epoch: it dominates
            params=space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments=1)),
            distributions=space.distributions(),
            values=[1.0, 1, 1e-6],
            user_attrs={
                TrialAttr.SETUP_DIGEST: setup_digest(spec),
                TrialAttr.FEASIBLE: True,
                TrialAttr.EPOCHS_DONE: 2,
                TrialAttr.VAL_ACCURACY: 1.0,
                TrialAttr.CURVES: {"val_accuracy": [1.0, 1.0]},
                TrialAttr.PARAMS: 1,
                TrialAttr.LATENCY_MS: 1e-6,
            },
        )
    )
    study.enqueue_trial(
        space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments="depthwise"))
    )
    _optimize(spec, study, tmp_path, monkeypatch, FakeTraining())
    stopped = study.trials[1]
    assert stopped.user_attrs[TrialAttr.STOPPED_AT_EPOCH] == 1
    assert stopped.user_attrs[TrialAttr.STOPPED_BY] == 0
    assert stopped.user_attrs[TrialAttr.EPOCHS] == 1
    assert stopped.values[0] == CURVE[0]

    callback = StopDominated(
        study.ask(), spec.early_stop, {"params": 10**9}, setup_digest(spec), epochs=2
    )
    callback.set_model(keras.Sequential())
    callback.on_epoch_end(1, {"val_accuracy": 0.1})  # the last epoch: nothing to stop
    assert not getattr(callback.model, "stop_training", False)


def test_successive_halving_stops_a_design_that_ranks_low_at_a_rung_and_keeps_it_off_the_front(
    spec, tmp_path, monkeypatch
):
    # 2 epochs: one rung, epoch 1
    spec = dataclasses.replace(spec, asha=AshaSpec(min_epochs=1, reduction_factor=2))
    space = SearchSpace.from_toml(spec.space)
    study = _study(spec)
    for segments, accuracy in (
        (1, 0.9),
        (8, 0.8),
    ):  # cheaper and better at the rung than the design below
        study.add_trial(
            create_trial(
                params=space.encode(
                    XceptionConfig(middle_repeats=0, width=0.125, segments=segments)
                ),
                distributions=space.distributions(),
                values=[accuracy, 1, 1e-6],
                user_attrs={
                    TrialAttr.SETUP_DIGEST: setup_digest(spec),
                    TrialAttr.PARAMS: 1,
                    TrialAttr.LATENCY_MS: 1e-6,
                    TrialAttr.RUNG_ACCURACY: {"1": accuracy},
                },
            )
        )
    study.enqueue_trial(
        space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments="depthwise"))
    )
    _optimize(spec, study, tmp_path, monkeypatch, FakeTraining())
    stopped = study.trials[2]
    assert stopped.user_attrs[TrialAttr.RUNG_ACCURACY] == {"1": CURVE[0]}
    assert stopped.user_attrs[TrialAttr.STOPPED_AT_EPOCH] == 1
    assert stopped.user_attrs[TrialAttr.STOP_RULE] == "asha"
    assert stopped.constraints["stopped"] == 1.0
    assert stopped not in study.best_trials

    alone = _study(spec)  # the first design at the rung is promoted: it trains to the end, feasible
    _optimize(spec, alone, tmp_path, monkeypatch, FakeTraining())
    (trained,) = alone.trials
    assert TrialAttr.STOPPED_AT_EPOCH not in trained.user_attrs
    assert trained.user_attrs[TrialAttr.EPOCHS] == 2
    assert trained.constraints["stopped"] == 0.0
    assert trained.values[0] == CURVE[1]


def test_a_stopped_design_continues_from_its_checkpoint_when_proposed_again_or_promoted_on_a_repeat(
    spec, tmp_path, monkeypatch
):
    spec = dataclasses.replace(
        spec, asha=AshaSpec(min_epochs=1, reduction_factor=2, continue_stopped=True)
    )
    space = SearchSpace.from_toml(spec.space)
    study = _study(spec)
    cheap = space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments=1))
    for params, accuracy in (
        (cheap, 0.9),
        (space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments=8)), 0.8),
    ):
        study.add_trial(
            create_trial(
                params=params,
                distributions=space.distributions(),
                values=[accuracy, 1, 1e-6],
                user_attrs={
                    TrialAttr.SETUP_DIGEST: setup_digest(spec),
                    TrialAttr.PARAMS: 1,
                    TrialAttr.LATENCY_MS: 1e-6,
                    TrialAttr.RUNG_ACCURACY: {"1": accuracy},
                },
            )
        )
    design = space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments="depthwise"))
    study.enqueue_trial(design)
    training = FakeTraining(checkpoints=True)
    _optimize(spec, study, tmp_path, monkeypatch, training)
    stopped = study.trials[2]
    assert stopped.user_attrs[TrialAttr.STOPPED_AT_EPOCH] == 1
    # kept: the design may continue
    assert checkpoint_path(tmp_path / "checkpoints", 2, 1).exists()

    # a repeat of a fully trained design: it queues the stopped design to continue
    study.enqueue_trial(cheap)
    _optimize(spec, study, tmp_path, monkeypatch, training, n_trials=2)
    repeat, continued = study.trials[3:]
    assert repeat.user_attrs[TrialAttr.REPEAT_OF] == 0
    assert continued.params == design
    attrs = continued.user_attrs
    assert attrs[TrialAttr.CONTINUES] == 2
    assert training.initial_epochs == [0, 1]  # from the stopped epoch
    assert attrs[TrialAttr.SEED] == stopped.user_attrs[TrialAttr.SEED]
    assert training.calls[-1]["seed"] == attrs[TrialAttr.SEED]
    assert attrs[TrialAttr.CURVES] == {"val_accuracy": CURVE}
    assert attrs[TrialAttr.EPOCHS] == 2
    assert attrs[TrialAttr.EPOCH_TIMES_S] == [0.1]  # charged the epoch it ran
    assert TrialAttr.STOPPED_AT_EPOCH not in attrs
    assert continued.constraints["stopped"] == 0.0
    assert is_feasible(continued)
    assert not is_feasible(stopped)  # the continuation may stand on the front
    assert not list((tmp_path / "checkpoints").iterdir())  # both checkpoints gone

    study.enqueue_trial(design)  # the design now stands fully trained: a repeat of the continuation
    _optimize(spec, study, tmp_path, monkeypatch, training)
    assert study.trials[5].user_attrs[TrialAttr.REPEAT_OF] == 4
    assert len(training.initial_epochs) == 2


def test_without_continue_stopped_a_stopped_design_is_repeated_and_its_checkpoint_removed(
    spec, tmp_path, monkeypatch
):
    spec = dataclasses.replace(
        spec, asha=AshaSpec(min_epochs=1, reduction_factor=2, continue_stopped=False)
    )
    space = SearchSpace.from_toml(spec.space)
    study = _study(spec)
    study.add_trial(
        create_trial(
            params=space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments=1)),
            distributions=space.distributions(),
            values=[0.9, 1, 1e-6],
            user_attrs={
                TrialAttr.SETUP_DIGEST: setup_digest(spec),
                TrialAttr.PARAMS: 1,
                TrialAttr.LATENCY_MS: 1e-6,
                TrialAttr.RUNG_ACCURACY: {"1": 0.9},
            },
        )
    )
    design = space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments="depthwise"))
    study.enqueue_trial(design)
    study.enqueue_trial(design)
    _optimize(spec, study, tmp_path, monkeypatch, FakeTraining(checkpoints=True), n_trials=2)
    assert study.trials[1].user_attrs[TrialAttr.STOPPED_AT_EPOCH] == 1
    assert study.trials[2].user_attrs[TrialAttr.REPEAT_OF] == 1
    assert not list((tmp_path / "checkpoints").iterdir())
    assert len(study.trials) == 3


def test_a_study_on_imagenet_weights_records_and_builds_their_input_scaling(spec, tmp_path):
    trainer = KerasTrainer(dataclasses.replace(spec, weights="imagenet"), _dataset(), tmp_path)
    record = trainer.trial_record()
    assert record[TrialAttr.NORM_MEAN] == [127.5] * 3
    assert record[TrialAttr.NORM_STD] == [127.5] * 3
    assert KerasTrainer(spec, _dataset(), tmp_path).trial_record()[TrialAttr.NORM_STD] == [64.0] * 3


@pytest.fixture
def latency_server():
    """An `xsearch latency-server` on 127.0.0.1 (a free port) with a token, in a background thread."""
    import threading

    from xsearch.deploy.latency_server import make_server

    server = make_server("127.0.0.1", 0, token="right-token", quiet=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("token", ["right-token", "wrong-token"])
def test_a_study_scored_on_a_remote_latency_server(
    spec, tmp_path, monkeypatch, latency_server, token
):
    monkeypatch.setenv("XSEARCH_TEST_LATENCY_TOKEN", token)
    spec = dataclasses.replace(
        spec,
        objectives=("accuracy", "latency@remote"),
        latency=LatencySpec(
            remote_url=latency_server.url, remote_token_env="XSEARCH_TEST_LATENCY_TOKEN", repeats=5
        ),
    )
    (trial,) = _optimize(spec, _study(spec), tmp_path, monkeypatch, FakeTraining()).trials
    remote = trial.user_attrs[TrialAttr.LATENCY_TARGETS]["remote"]
    if token == "right-token":
        assert remote["url"] == latency_server.url
        assert remote["repeats"] == 5
        assert remote["convert_s"] > 0
        assert trial.values == [0.6, remote["median_ms"]]
        assert 0 < remote["median_ms"] <= remote["p90_ms"]
        assert trial.constraints["runtime"] == 0.0
    else:
        assert "token" in remote["error"]
        assert latency_server.url in remote["error"]
        assert trial.constraints["runtime"] == 1.0
        assert trial.user_attrs[TrialAttr.FAILURE_REASON] == "constraint"


class KilledAfterASave(FakeTraining):
    """Its worker dies at the end of the last epoch, after the checkpoint's save and before the epoch's record."""

    def __call__(self, model, dataset, training, seed, callbacks=(), initial_epoch=0, **kwargs):
        for epoch in range(initial_epoch, training.epochs):
            logs = {
                "loss": 1.0 - CURVE[epoch],
                "accuracy": CURVE[epoch],
                "val_accuracy": CURVE[epoch],
            }
            for callback in callbacks:
                if epoch == training.epochs - 1 and not isinstance(callback, Checkpoint):
                    raise KeyboardInterrupt
                callback.set_model(model)
                callback.on_epoch_end(epoch, logs)
        raise AssertionError("unreachable")


def test_a_retry_resumes_from_the_epoch_its_predecessor_recorded_and_removes_its_checkpoints(
    spec, tmp_path, monkeypatch
):
    study = _study(spec)
    with pytest.raises(KeyboardInterrupt):
        _optimize(spec, study, tmp_path, monkeypatch, KilledAfterASave())
    killed = study.trials[0]
    assert killed.user_attrs[TrialAttr.EPOCHS_DONE] == 1
    folder = tmp_path / "checkpoints"
    # the last epoch's save landed, the epoch before it is kept
    assert checkpoint_path(folder, 0, 1).exists()
    assert checkpoint_path(folder, 0, 2).exists()

    training = FakeTraining(checkpoints=True)
    _optimize(spec, study, tmp_path, monkeypatch, training)
    retry = study.trials[1]
    assert retry.user_attrs[TrialAttr.RETRY_OF] == 0
    assert training.initial_epochs == [
        1
    ]  # from the epoch ``epochs_done`` names, not the later save
    assert retry.user_attrs[TrialAttr.CURVES] == {"val_accuracy": CURVE}
    assert not list(folder.iterdir())  # the retry's and its predecessor's checkpoints are gone
