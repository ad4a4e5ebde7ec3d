"""The front's latency timed again at the end of a run: a design stands on the front by a figure measured once,
before its training, so the run checks that figure once more with the same probe and targets."""

from __future__ import annotations

import math

import optuna

from xsearch.model.config import XceptionConfig
from xsearch.results.pareto import pareto_front
from xsearch.study.record import StudyAttr, TrialAttr, target_latency_attr
from xsearch.study.spec import StudySpec
from xsearch.study.trainer import Trainer


def remeasure_front(
    study: optuna.Study, spec: StudySpec, trainer: Trainer
) -> dict[str, dict[str, float]]:
    """Time each front design not yet re-measured on the training device and the study's targets, and record
    ``{trial number: {latency attr: ms}}`` as the study's `StudyAttr.LATENCY_REMEASURED` (the whole map; a target that
    could not time the design has no entry)."""
    remeasured: dict[str, dict[str, float]] = dict(
        study.user_attrs.get(StudyAttr.LATENCY_REMEASURED) or {}
    )
    attrs = [TrialAttr.LATENCY_MS, *(target_latency_attr(t) for t in spec.latency_targets)]
    todo = [
        t
        for t in pareto_front(study)
        if str(t.number) not in remeasured and TrialAttr.CONFIG in t.user_attrs
    ]
    for trial in todo:
        config = XceptionConfig.from_json(
            trial.user_attrs[TrialAttr.CONFIG], source=f"trial {trial.number} config"
        )
        try:
            record = trainer.cost(config, int(trial.user_attrs.get(TrialAttr.SEED, 0)))
        finally:
            trainer.release()
        remeasured[str(trial.number)] = {
            attr: float(record[attr]) for attr in attrs if math.isfinite(record.get(attr, math.inf))
        }
    if todo:
        study.set_user_attr(StudyAttr.LATENCY_REMEASURED, remeasured)
    return remeasured
