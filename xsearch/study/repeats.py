"""Designs already trained: a trial that samples one again reuses its results instead of training.

On discrete spaces, samplers often propose a design that is already trained: in the shipped
studies, 6-11 % of TPE's trials and 7-19 % of NSGA-II's (`benchmarks/repeats.py`, on a
synthetic objective). Such a trial (a "repeat") copies the results of the earlier trial under the
same study set-up and records its number as ``repeat_of``. It trains nothing, does not count
toward the study's ``trials``, and stays off the Pareto front, where the earlier trial stands for
the design. The sampler still sees its values, as Optuna's FAQ recommends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from xsearch.study.record import ATTEMPT_ATTRS, TrialAttr, is_repeat, is_stopped
from xsearch.study.spec import StudySpec


def setup_digest(spec: StudySpec) -> str:
    """A digest of what a trial's results depend on besides its design: data, training, precision,
    latency batch and targets, constraints, initial weights and transfer schedule (not the data's
    folder, which differs by machine)."""
    setup = {
        "data": _data_setup(spec),
        "training": dataclasses.asdict(spec.training),
        "precision": spec.precision,
        "latency_batch": spec.latency_batch,
        "constraints": dict(sorted(spec.constraints.items())),
        "weights": spec.weights,
    }
    if spec.transfer is not None:  # only then: the digests of studies without one stay as they were
        setup["transfer"] = dataclasses.asdict(spec.transfer)
    if spec.latency is not None:  # the same: what a repeat copies depends on the targets measured
        setup["latency"] = dataclasses.asdict(spec.latency)
    return hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _data_setup(spec: StudySpec) -> dict[str, Any]:
    """The data keys a trial's results depend on: not the folder (it differs by machine), not the share of
    unreadable files tolerated, and the array layout only for the ``arrays`` source (which reads it)."""
    data = {**dataclasses.asdict(spec.data), "data_dir": None}
    del data["max_bad_fraction"]
    if spec.data.source != "arrays":
        del data["layout"]
    # the study's seed splits, as before the key existed: digests stay as they were
    if spec.data.split_seed is None:
        del data["split_seed"]
    return data


def trained_twin(
    trials: Iterable[FrozenTrial], params: Mapping[str, Any], digest: str
) -> FrozenTrial | None:
    """The trial that stands for this design under set-up ``digest``: of the COMPLETE trials (not repeats)
    with these parameters, the earliest trained fully, else the one stopped after the most epochs."""
    matches = [
        trial
        for trial in trials
        if trial.state == TrialState.COMPLETE
        and not is_repeat(trial)
        and trial.params == dict(params)
        and trial.user_attrs.get(TrialAttr.SETUP_DIGEST) == digest
    ]
    full = [trial for trial in matches if not is_stopped(trial)]
    if full:
        return full[0]
    return max(
        matches, key=lambda trial: int(trial.user_attrs[TrialAttr.STOPPED_AT_EPOCH]), default=None
    )


def repeated_results(twin: FrozenTrial) -> dict[str, Any]:
    """The user attrs a repeat of ``twin`` records: the twin's results and ``repeat_of``."""
    results = {key: value for key, value in twin.user_attrs.items() if key not in ATTEMPT_ATTRS}
    return {**results, TrialAttr.REPEAT_OF: twin.number}
