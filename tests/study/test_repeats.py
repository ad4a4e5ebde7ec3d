"""A trial that samples a design already trained reuses its results: found, copied, and left out of counts."""

import dataclasses

from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from xsearch.study.record import TrialAttr, is_repeat
from xsearch.study.repeats import repeated_results, setup_digest, trained_twin
from xsearch.study.spec import StudySpec, TrainingSpec

SPACE = {"segments": CategoricalDistribution(["1", "depthwise"])}


def _trial(number, segments, digest="d", state=TrialState.COMPLETE, **attrs):
    trial = create_trial(
        params={"segments": segments},
        distributions=SPACE,
        state=state,
        values=[0.9, 100.0] if state == TrialState.COMPLETE else None,
        user_attrs={TrialAttr.SETUP_DIGEST: digest, **attrs},
    )
    trial.number = number
    return trial


def test_the_digest_follows_what_results_depend_on_but_not_the_data_folder():
    spec = StudySpec()
    assert setup_digest(spec) == setup_digest(
        dataclasses.replace(spec, trials=99, timeout=60.0, sampler="nsga2")
    )
    assert setup_digest(spec) == setup_digest(spec.override(data_dir="/elsewhere"))
    for other in (
        spec.override(batch_size=128),
        dataclasses.replace(spec, precision="float32"),
        dataclasses.replace(spec, training=TrainingSpec(epochs=11)),
        dataclasses.replace(spec, constraints={"max_params": 1e6}),
        dataclasses.replace(spec, latency_batch=8),
    ):
        assert setup_digest(other) != setup_digest(spec)


def test_the_twin_is_the_earliest_completed_original_with_the_same_design_and_set_up():
    trials = [
        _trial(0, "1", state=TrialState.FAIL),
        _trial(1, "1", digest="other"),
        _trial(2, "1", **{TrialAttr.REPEAT_OF: 5}),  # a repeat never stands for a design
        _trial(3, "1"),
        _trial(4, "1"),
        _trial(5, "depthwise", state=TrialState.RUNNING),
    ]
    assert trained_twin(trials, {"segments": "1"}, "d").number == 3
    assert trained_twin(trials, {"segments": "depthwise"}, "d") is None
    assert trained_twin(trials, {"segments": "1"}, "new") is None


def test_a_design_trained_fully_stands_before_its_stopped_trials_and_the_furthest_stopped_before_the_others():
    stopped = lambda number, epoch: _trial(number, "1", **{TrialAttr.STOPPED_AT_EPOCH: epoch})  # noqa: E731
    assert (
        trained_twin([stopped(0, 1), stopped(1, 2), stopped(2, 2)], {"segments": "1"}, "d").number
        == 1
    )
    assert (
        trained_twin(
            [stopped(0, 1), stopped(1, 2), _trial(2, "1"), _trial(3, "1")], {"segments": "1"}, "d"
        ).number
        == 2
    )


def test_a_repeat_copies_the_results_but_not_the_attempt():
    twin = _trial(
        3,
        "1",
        config="{}",
        val_accuracy=0.9,
        params=100,
        curves={"loss": [1.0]},
        worker_host="h",
        worker_pid=1,
        model_artifact_id="a",
        model_sha256="s",
        wall_time_s=50.0,
        seed_trial=True,
        epochs_done=2,
        retry_of=1,
        continues=0,
    )
    results = repeated_results(twin)
    assert results == {
        TrialAttr.SETUP_DIGEST: "d",
        "config": "{}",
        "val_accuracy": 0.9,
        "params": 100,
        "curves": {"loss": [1.0]},
        TrialAttr.REPEAT_OF: 3,
    }
    assert is_repeat(_trial(9, "1", **results))
    assert not is_repeat(twin)


def test_data_keys_that_change_no_result_leave_the_digest_as_it_was():
    spec = StudySpec()
    assert setup_digest(
        dataclasses.replace(spec, data=dataclasses.replace(spec.data, max_bad_fraction=0.2))
    ) == setup_digest(spec)
    assert setup_digest(
        dataclasses.replace(spec, data=dataclasses.replace(spec.data, layout="NCHW"))
    ) == setup_digest(spec)
    arrays = dataclasses.replace(spec, data=dataclasses.replace(spec.data, source="arrays"))
    assert setup_digest(
        dataclasses.replace(arrays, data=dataclasses.replace(arrays.data, layout="NCHW"))
    ) != setup_digest(arrays)
    # the default study's digest before these keys existed
    assert setup_digest(spec) == "97156f3f5021b2d1"


def test_a_split_seed_enters_the_digest_only_when_set():
    spec = StudySpec()
    split = dataclasses.replace(spec, data=dataclasses.replace(spec.data, split_seed=0))
    # the study's seed 0 splits alike, but the set-up says which
    assert setup_digest(split) != setup_digest(spec)
    assert setup_digest(dataclasses.replace(split, seed=5)) == setup_digest(split)
