"""Stopping a trial early when a design already trained beats it on every objective.

A design's costs (params, FLOPs, latency) are measured before it trains. From epoch
``after_epochs`` on, a training trial is compared after each epoch with the trials fully trained
under the same set-up that cost no more on each cost objective of the study. When one of them (the
"dominator") had a validation accuracy higher by at least ``margin`` at the same epoch *and* at the
end of its training, the trial stops: it records the accuracy it reached, ``stopped_at_epoch`` and
``stopped_by``. The dominator beats that record on accuracy and matches or beats it on every cost,
so a stopped trial never stands on the Pareto front, and the sampler learns that the design is
worse. The rule risks one thing: a design that would have caught up after the epoch it stopped at.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from xsearch.study.record import TrialAttr, is_repeat, is_stopped
from xsearch.study.spec import TARGET_OBJECTIVE, StudySpec, objective_spec, read_spec

COST_OBJECTIVES = ("params", "flops", "latency")
"""Objectives known before training: the costs a dominator must match or beat (and latency on any target)."""


def cost_metrics(spec: StudySpec) -> list[str]:
    """The user attrs of the study's cost objectives (e.g. ``params``, ``latency_ms``, ``latency_ms@litert-cpu``)."""
    return [
        objective_spec(name).metric
        for name in spec.objectives
        if name in COST_OBJECTIVES or name.startswith(TARGET_OBJECTIVE)
    ]


def accuracy_at(trial: FrozenTrial, epoch: int) -> float | None:
    """The trial's validation accuracy after ``epoch`` (1-based) epochs, or None when not recorded.

    A trial that resumed from a checkpoint recorded the curve from ``resumed_from_epoch`` on.
    """
    curve = (trial.user_attrs.get(TrialAttr.CURVES) or {}).get(TrialAttr.VAL_ACCURACY) or []
    index = epoch - 1 - int(trial.user_attrs.get(TrialAttr.RESUMED_FROM_EPOCH, 0))
    return float(curve[index]) if 0 <= index < len(curve) else None


def dominating_trial(
    trials: Iterable[FrozenTrial],
    costs: Mapping[str, float],
    accuracy: float,
    epoch: int,
    margin: float,
    digest: str,
    epochs: int,
) -> FrozenTrial | None:
    """The first trial fully trained (``epochs``) under set-up ``digest`` that costs no more on each of
    ``costs`` and was more accurate by ``margin`` both after ``epoch`` epochs and at its end; else None."""
    bar = accuracy + margin
    for trial in trials:
        attrs = trial.user_attrs
        if (
            trial.state != TrialState.COMPLETE
            or is_repeat(trial)
            or attrs.get(TrialAttr.SETUP_DIGEST) != digest
            or not attrs.get(TrialAttr.FEASIBLE)
            or attrs.get(TrialAttr.EPOCHS_DONE) != epochs
        ):
            continue
        if any(float(attrs.get(metric, math.inf)) > cost for metric, cost in costs.items()):
            continue
        at_epoch = accuracy_at(trial, epoch)
        if (
            at_epoch is not None
            and at_epoch >= bar
            and float(attrs.get(TrialAttr.VAL_ACCURACY, 0.0)) >= bar
        ):
            return trial
    return None


def stop_rule(trial: FrozenTrial) -> str:
    """The rule that stopped the trial: ``dominated`` (this module) or ``asha`` (`xsearch.study.asha`)."""
    return str(trial.user_attrs.get(TrialAttr.STOP_RULE, "dominated"))


def stop_reason(trial: FrozenTrial) -> str:
    """Why the trial stopped early, in words, e.g. "trial 3 dominated it"."""
    if stop_rule(trial) == "asha":
        return "it ranked low at a successive-halving rung"
    return f"trial {trial.user_attrs.get(TrialAttr.STOPPED_BY)} dominated it"


def stopped_summary(study: optuna.Study) -> str:
    """ "N trials stopped early (why), E training epochs skipped", after "K stopped trials continued later; "
    when a later trial continued some (``[asha] continue_stopped``), or "" when none was stopped."""
    trials = study.get_trials(deepcopy=False)
    continued = {
        t.user_attrs[TrialAttr.CONTINUES]
        for t in trials
        if TrialAttr.CONTINUES in t.user_attrs and t.state == TrialState.COMPLETE
    }
    every = [t for t in trials if is_stopped(t) and not is_repeat(t)]
    stopped = [t for t in every if t.number not in continued]
    later = len(every) - len(stopped)
    prefix = f"{later} stopped trial{'s' * (later != 1)} continued later; " if later else ""
    if not stopped:
        return prefix + "no design left stopped" if later else ""
    dominated = sum(stop_rule(t) == "dominated" for t in stopped)
    one = len(stopped) == 1
    if dominated == len(stopped):
        why = "a trained design dominated it" if one else "trained designs dominated them"
    elif dominated == 0:
        why = (
            "it ranked low at a successive-halving rung"
            if one
            else "they ranked low at successive-halving rungs"
        )
    else:
        why = f"{dominated} dominated, {len(stopped) - dominated} ranked low at successive-halving rungs"
    count = prefix + f"{len(stopped)} trial{'s' * (not one)} stopped early ({why})"
    try:
        epochs = read_spec(study).training.epochs
    except ValueError:  # not made by xsearch run: the budget is unknown
        return count
    skipped = sum(epochs - int(t.user_attrs[TrialAttr.STOPPED_AT_EPOCH]) for t in stopped)
    return count + f", {skipped} training epoch{'s' * (skipped != 1)} skipped"
