"""A training trial that a fully trained design dominates stops early, and stays off the front."""

import dataclasses
import json
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from xsearch.model.config import XceptionConfig
from xsearch.model.space import SearchSpace
from xsearch.results.pareto import pareto_front
from xsearch.results.report import report_summary
from xsearch.results.trial_export import export_trial
from xsearch.run.runner import finished_count
from xsearch.study.artifacts import artifact_store
from xsearch.study.early_stop import accuracy_at, dominating_trial, stop_reason, stopped_summary
from xsearch.study.objective import StudyObjective
from xsearch.study.record import TrialAttr
from xsearch.study.repeats import setup_digest
from xsearch.study.setup import load_spec_dataset
from xsearch.study.spec import EarlyStopSpec
from xsearch.study.trainer import KerasTrainer

SPACE = {"segments": CategoricalDistribution(["1", "4", "depthwise"])}
COSTS = {"params": 1000.0, "latency_ms": 2.0}


def _trained(number, curve, digest="d", epochs_done=3, **attrs):
    user_attrs = {
        TrialAttr.SETUP_DIGEST: digest,
        "feasible": True,
        "epochs_done": epochs_done,
        "params": 500,
        "latency_ms": 1.0,
        "curves": {"val_accuracy": curve},
        "val_accuracy": curve[-1],
        **attrs,
    }
    trial = create_trial(
        params={"segments": "1"},
        distributions=SPACE,
        values=[curve[-1], 500, 1.0],
        user_attrs=user_attrs,
    )
    trial.number = number
    return trial


def _dominator(trials, accuracy=0.5, epoch=1, margin=0.05, costs=COSTS):
    return dominating_trial(trials, costs, accuracy, epoch, margin, "d", 3)


def test_a_cheaper_design_more_accurate_at_the_same_epoch_and_at_its_end_dominates():
    reference = _trained(0, [0.6, 0.7, 0.8])
    assert _dominator([reference]) is reference
    assert _dominator([reference], accuracy=0.56) is None  # 0.6 < 0.56 + margin
    # its end is not better by the margin
    assert _dominator([_trained(0, [0.6, 0.7, 0.52])]) is None
    assert _dominator([reference], epoch=2, accuracy=0.66) is None
    assert _dominator([reference], epoch=2) is reference


@pytest.mark.parametrize(
    "costs", [{"params": 499.0, "latency_ms": 2.0}, {"params": 1000.0, "latency_ms": 0.5}]
)
def test_a_design_that_costs_more_on_any_cost_objective_does_not_dominate(costs):
    assert _dominator([_trained(0, [0.9, 0.9, 0.9])], costs=costs) is None


def test_only_the_study_cost_objectives_count():
    reference = _trained(0, [0.9, 0.9, 0.9])
    assert _dominator([reference], costs={"params": 1000.0, "latency_ms": 0.5}) is None
    # latency is not an objective
    assert _dominator([reference], costs={"params": 1000.0}) is reference


def test_only_full_trainings_under_the_same_set_up_are_references():
    # stopped early or still training
    assert _dominator([_trained(0, [0.9, 0.9], epochs_done=2)]) is None
    assert _dominator([_trained(0, [0.9, 0.9, 0.9], digest="other")]) is None
    assert _dominator([_trained(0, [0.9, 0.9, 0.9], feasible=False)]) is None
    assert _dominator([_trained(0, [0.9, 0.9, 0.9], **{TrialAttr.REPEAT_OF: 3})]) is None
    failed = create_trial(
        params={"segments": "1"},
        distributions=SPACE,
        state=TrialState.FAIL,
        user_attrs=_trained(0, [0.9, 0.9, 0.9]).user_attrs,
    )
    assert _dominator([failed]) is None


def test_a_resumed_trial_curve_starts_at_the_epoch_it_resumed_from():
    resumed = _trained(0, [0.7, 0.9], resumed_from_epoch=1)
    assert accuracy_at(resumed, 1) is None
    assert accuracy_at(resumed, 2) == 0.7
    assert accuracy_at(resumed, 3) == 0.9
    assert _dominator([resumed], epoch=1) is None
    assert _dominator([resumed], epoch=2) is resumed


@pytest.fixture
def early_spec(tiny_spec):
    # of 2 epochs
    return dataclasses.replace(tiny_spec, early_stop=EarlyStopSpec(after_epochs=1, margin=0.05))


def _study_with_reference(spec, reference_params: int) -> tuple[optuna.Study, SearchSpace]:
    """A study holding one fully trained reference design that scored 1.0 after every epoch."""
    space = SearchSpace.from_toml(spec.space)
    study = optuna.create_study(directions=[o.direction for o in spec.objective_list])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([o.metric for o in spec.objective_list])
    study.set_user_attr("xsearch_spec", json.dumps(dataclasses.asdict(spec), default=str))
    epochs = spec.training.epochs
    study.add_trial(
        create_trial(
            params=space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments=1)),
            distributions=space.distributions(),
            values=[1.0, reference_params, 1e-6],
            user_attrs={
                TrialAttr.SETUP_DIGEST: setup_digest(spec),
                "feasible": True,
                "epochs_done": epochs,
                "val_accuracy": 1.0,
                "curves": {"val_accuracy": [1.0] * epochs},
                "params": reference_params,
                "latency_ms": 1e-6,
            },
        )
    )
    study.enqueue_trial(
        space.encode(XceptionConfig(middle_repeats=0, width=0.125, segments="depthwise"))
    )
    return study, space


@pytest.mark.slow
def test_a_dominated_trial_stops_records_where_and_stays_off_the_front(early_spec, tmp_path):
    study, space = _study_with_reference(early_spec, reference_params=1)
    store = artifact_store(tmp_path)
    trainer = KerasTrainer(early_spec, load_spec_dataset(early_spec), tmp_path, store)
    study.optimize(StudyObjective(early_spec, space, trainer), n_trials=1)

    stopped = study.trials[1]
    assert stopped.state == TrialState.COMPLETE
    assert stopped.user_attrs[TrialAttr.STOPPED_AT_EPOCH] == 1
    assert stopped.user_attrs[TrialAttr.STOPPED_BY] == 0
    assert stopped.user_attrs["epochs"] == 1
    assert len(stopped.user_attrs["curves"]["loss"]) == 1
    # the accuracy it reached
    assert stopped.values[0] == stopped.user_attrs["curves"]["val_accuracy"][0]
    assert [t.number for t in pareto_front(study)] == [0]
    stops = "1 trial stopped early (a trained design dominated it), 1 training epoch skipped"
    assert f"early stopping: {stops}" in report_summary(study)
    assert finished_count(study).endswith(f"; {stops}")

    exported = export_trial(study, 1, tmp_path / "stopped.keras", store)
    assert (
        "stopped early at epoch 1 (trial 0 dominated it): --retrain trains it fully"
        in exported.message
    )
    card = json.loads(exported.card_path.read_text())
    assert card["stopped_early"] == {"at_epoch": 1, "rule": "dominated", "dominated_by_trial": 0}


@pytest.mark.slow
def test_a_trial_that_costs_less_than_every_trained_design_trains_fully(early_spec, tmp_path):
    study, space = _study_with_reference(early_spec, reference_params=10**9)
    study.optimize(
        StudyObjective(
            early_spec, space, KerasTrainer(early_spec, load_spec_dataset(early_spec), tmp_path)
        ),
        n_trials=1,
    )

    trained = study.trials[1]
    assert TrialAttr.STOPPED_AT_EPOCH not in trained.user_attrs
    assert trained.user_attrs["epochs"] == 2
    assert stopped_summary(study) == ""


def test_the_stop_summary_and_reason_name_the_rule_that_stopped_each_trial():
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.add_trial(_trained(0, [0.5], stopped_at_epoch=1, stopped_by=7, stop_rule="dominated"))
    # no spec: no epoch count
    assert stopped_summary(study) == "1 trial stopped early (a trained design dominated it)"
    assert stop_reason(study.trials[0]) == "trial 7 dominated it"
    study.add_trial(_trained(1, [0.4], stopped_at_epoch=1, stop_rule="asha"))
    assert stop_reason(study.trials[1]) == "it ranked low at a successive-halving rung"
    assert (
        stopped_summary(study)
        == "2 trials stopped early (1 dominated, 1 ranked low at successive-halving rungs)"
    )
    asha_only = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for number in (0, 1):
        asha_only.add_trial(_trained(number, [0.4], stopped_at_epoch=1, stop_rule="asha"))
    assert (
        stopped_summary(asha_only)
        == "2 trials stopped early (they ranked low at successive-halving rungs)"
    )
    asha_only.add_trial(_trained(2, [0.4, 0.9], continues=0))  # continued trial 0 to the end
    assert stopped_summary(asha_only) == (
        "1 stopped trial continued later; "
        "1 trial stopped early (it ranked low at a successive-halving rung)"
    )
    asha_only.add_trial(_trained(3, [0.4, 0.9], continues=1))
    assert stopped_summary(asha_only) == "2 stopped trials continued later; no design left stopped"
