"""`xsearch run`: an Optuna multi-objective study over the space, resumable from its storage."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from xsearch.results.figures import attach_figures
from xsearch.study.artifacts import artifact_store, prune_artifacts
from xsearch.study.batch_size import AUTO, find_batch_size
from xsearch.data import Dataset, load_dataset
from xsearch.model.device import runtime_info
from xsearch.study.repeats import is_repeat
from xsearch.study.early_stop import stopped_summary
from xsearch.study.failures import StudyStopped, WorkerRecycle
from xsearch.study.objective import Objective
from xsearch.run.progress import Progress
from xsearch.results.run_reports import front_table_text, write_run_reports
from xsearch.study.seeds import seed_configs
from xsearch.model.space import Range, SearchSpace
from xsearch.study.storage import (
    INTERRUPTED,
    budget_trials,
    open_storage,
    redact,
    retried_from,
    sweep_dead_local_trials,
    worker_identity,
)
from xsearch.study.spec import StudySpec
from xsearch.run.workers import worker_total

FAILURE_STREAK_WARNING = 3
REPEAT_STREAK_LIMIT = 25


def make_sampler(spec: StudySpec, space: SearchSpace, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (default: ``spec.seed``); each sampler reads the
    hard constraints the objective sets on its trials."""
    seed = spec.seed if seed is None else seed
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, spec.trials // 4)))
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(_grid(space), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                      n_startup_trials=min(10, max(4, spec.trials // 3)))


def sampler_seed(seed: int, trials_so_far: int, shared: bool) -> int:
    """The seed of this process's sampler: from ``--seed`` and the number of trials the study had
    when this process opened it, so that a resumed run or a restarted worker does not replay the
    proposals of the process before it. Where other workers share the study (``shared``: several
    workers, or a database other machines may use), this worker's host and process id go in too:
    samplers with one seed would propose the same designs in lockstep. One worker on the default
    journal storage is reproducible: the same ``--seed`` proposes the same designs.
    """
    entropy = [seed, trials_so_far]
    if shared:
        identity = worker_identity()
        host = hashlib.sha256(str(identity["worker_host"]).encode()).digest()
        entropy += [int.from_bytes(host[:8], "big"), int(identity["worker_pid"])]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


SETUP_WAIT_S = 30.0


def open_study(spec: StudySpec, space: SearchSpace, storage: optuna.storages.BaseStorage, where: str,
               seeds: Callable[[], list[dict]] = list) -> optuna.Study:
    """Create the study (exactly one of many racing processes does) or reopen it.

    The creator records the spec, enqueues the ``seeds()`` trials and sets the metric names last: the
    names mark a finished set-up. A process that finds a study without names waits for them, and
    finishes the set-up itself when its creator died half-way. Reopening with other objectives is
    an error. The study's sampler is seeded by `sampler_seed`.
    """
    directions = [objective.direction for objective in spec.objective_list]
    metrics = [objective.metric for objective in spec.objective_list]
    study, created = _load_or_create(spec.name, storage, directions)
    set_up = False
    if not created:
        _check_objectives(study, metrics, directions, where)
        set_up = _wait_for_metric_names(study)
        if set_up:
            _check_objectives(study, metrics, directions, where)
    if not set_up:
        _finish_setup(study, spec, metrics, seeds)
    shared = worker_total() > 1 or isinstance(storage, optuna.storages.RDBStorage)
    study.sampler = make_sampler(spec, space, sampler_seed(spec.seed, len(study.get_trials(deepcopy=False)), shared))
    return study


def _load_or_create(name: str, storage: optuna.storages.BaseStorage,
                    directions: list[str]) -> tuple[optuna.Study, bool]:
    """The study, and whether this process created it.

    Loading first keeps a journal file byte-for-byte unchanged when the study exists.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage), False
    except KeyError:
        pass
    try:
        return optuna.create_study(study_name=name, storage=storage, directions=directions), True
    except optuna.exceptions.DuplicatedStudyError:  # another process created it first
        return optuna.load_study(study_name=name, storage=storage), False


def _check_objectives(study: optuna.Study, metrics: list[str], directions: list[str], where: str) -> None:
    old_directions = [d.name.lower() for d in study.directions]
    old_metrics = list(study.metric_names or metrics)  # no names yet: only directions can differ
    if old_metrics != metrics or old_directions != directions:
        raise ValueError(
            f"study {study.study_name!r} in {where} was created with objectives "
            f"{list(zip(old_metrics, old_directions))}, not {list(zip(metrics, directions))}: use another "
            "--out folder or --storage, or the study's original objectives."
        )


def _wait_for_metric_names(study: optuna.Study) -> bool:
    """Whether the study's creator finished its set-up within ``SETUP_WAIT_S``."""
    deadline = time.monotonic() + SETUP_WAIT_S
    while study.metric_names is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)  # ``metric_names`` reads the storage each time
    return True


def _finish_setup(study: optuna.Study, spec: StudySpec, metrics: list[str], seeds: Callable[[], list[dict]]) -> None:
    study.set_user_attr("xsearch_spec", json.dumps(dataclasses.asdict(spec), default=str))
    if not study.trials:
        for params in seeds():
            study.enqueue_trial(params, user_attrs={"seed_trial": True}, skip_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metrics)


def load_spec_dataset(spec: StudySpec) -> Dataset:
    """The study's data, from the uint8 cache after the first time."""
    return load_dataset(
        spec.data.source, spec.data.image_size, data_dir=spec.data.data_dir, seed=spec.seed,
        val_fraction=spec.data.val_fraction, test_fraction=spec.data.test_fraction,
        max_train=spec.data.max_train,
    )


def prepare_study(spec: StudySpec, out_dir: Path, storage_url: str | None = None, dataset: Dataset | None = None,
                  probe_batch_size: bool = True) -> tuple[optuna.Study, StudySpec, SearchSpace, Dataset]:
    """Check the space and the data, open the study, sweep dead trials and enqueue the seeds.

    Nothing is written before the space, the data and the storage are known to be good. Where
    the study file says ``batch_size = "auto"``, the returned spec has the study's batch size,
    probed on this device by the first process that needs it (`probe_batch_size`).
    """
    space = SearchSpace.from_toml(spec.space)
    dataset = dataset or load_spec_dataset(spec)
    storage = open_storage(storage_url, out_dir, spec.heartbeat_interval)
    seeds = lambda: [space.encode(config) for config in seed_configs(spec, space, dataset.num_classes)]  # noqa: E731
    study = open_study(spec, space, storage, redact(storage_url) if storage_url else str(out_dir), seeds)
    sweep_dead_local_trials(study)
    if probe_batch_size:
        spec = _with_study_batch_size(study, spec, space, dataset)
    return study, spec, space, dataset


def study_is_set_up(study: optuna.Study, spec: StudySpec) -> bool:
    """Whether trials can start: the study has its batch size, where the spec says ``"auto"``."""
    return spec.training.batch_size != AUTO or "batch_size" in study.user_attrs


def _with_study_batch_size(study: optuna.Study, spec: StudySpec, space: SearchSpace, dataset: Dataset) -> StudySpec:
    """``batch_size = "auto"``: the batch probed when the study started, the same for every trial.

    Machines that probe at the same time keep the batch of the first to record one.
    """
    if spec.training.batch_size != AUTO:
        return spec
    chosen = study.user_attrs.get("batch_size")
    if chosen is None:
        probe = find_batch_size(spec, space, dataset)
        chosen = study.user_attrs.get("batch_size")  # another machine may have finished first
        if chosen is None:
            study.set_user_attr("batch_size_probe", {
                "device": runtime_info()["device"], "stopped_by": probe.stopped_by,
                "images_per_second": {str(batch): rate for batch, rate in probe.images_per_second.items()},
            })
            study.set_user_attr("batch_size", probe.batch_size)
            chosen = probe.batch_size
    return dataclasses.replace(spec, training=dataclasses.replace(spec.training, batch_size=int(chosen)))


def run_study(
    spec: StudySpec, out_dir: Path, storage: str | None = None, progress: bool | None = None,
    dataset: Dataset | None = None, recycle_after: int | None = None, deadline: float | None = None,
) -> optuna.Study:
    """Run (or resume) the study until ``spec.trials`` trials count or ``spec.timeout`` passes.

    Several processes may run this on one storage: each trial checks the budget when it starts,
    so the study ends with exactly ``spec.trials`` counted trials. When the budget is reached
    while other workers' trials still run, the worker waits for them, so that a trial whose
    worker dies is still failed (by heartbeat or by process check) and retried. After every trial
    the run folder gets ``trials.csv``, ``pareto.csv`` and ``pareto.html``. With
    ``recycle_after`` the process stops after that many trials of its own and raises
    `WorkerRecycle`, so that its supervisor restarts it with fresh memory. ``deadline`` (Unix
    time, set by a supervisor) ends the run like ``spec.timeout`` does, whichever comes first.
    Repeats of a trained design do not count (`xsearch.study.repeats`); after ``REPEAT_STREAK_LIMIT``
    of them in a row the space is exhausted or the sampler has converged, and the run ends.
    """
    study, spec, space, dataset = prepare_study(spec, out_dir, storage, dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    streak = _FailureStreak(spec.max_failures, study.get_trials(deepcopy=False))
    limits = [seconds for seconds in (spec.timeout, None if deadline is None else deadline - time.time())
              if seconds is not None]
    ends_at = time.monotonic() + min(limits) if limits else None
    in_time = lambda: ends_at is None or time.monotonic() < ends_at  # noqa: E731
    with Progress(spec.trials, spec.training.epochs, enabled=progress) as view:
        store = artifact_store(out_dir)
        objective = Objective(spec, space, dataset, out_dir, view.trial_started, store)
        recycle = _Recycler(recycle_after)
        repeats = _RepeatStreak(REPEAT_STREAK_LIMIT)
        callbacks = [recycle, repeats, lambda s, t: prune_artifacts(s, store), lambda s, t: write_run_reports(s, out_dir), lambda s, t: attach_figures(s), streak,
                     view.trial_finished,
                     lambda s, t: sweep_dead_local_trials(s), _stop_at_budget(spec.trials)]
        view.refresh(study)
        while not streak.stopped and not repeats.stopped and not recycle.due and in_time():
            work = _work_left(study, spec.trials)
            if work == "trials":
                left = None if ends_at is None else max(1.0, ends_at - time.monotonic())
                study.optimize(objective, timeout=left, catch=(Exception,), gc_after_trial=True, callbacks=callbacks)
            elif work == "running":
                time.sleep(min(5, spec.heartbeat_interval))  # other workers' trials: wait, sweep if they die
                sweep_dead_local_trials(study)
            else:
                break
    write_run_reports(study, out_dir)
    if repeats.stopped:
        trained = len(budget_trials(study.get_trials(deepcopy=False)))
        print(f"xsearch: stopping at {trained} of {spec.trials} trials: the sampler proposed {repeats.limit} "
              "designs in a row that were already trained (the space is exhausted or the sampler has converged).",
              file=sys.stderr, flush=True)
    if streak.stopped:
        raise StudyStopped(streak.message)
    if recycle.due and _work_left(study, spec.trials) and in_time():
        raise WorkerRecycle(f"recycling this worker after {recycle.ran} trials")
    return study


def _work_left(study: optuna.Study, budget: int) -> str:
    """``"trials"`` to run (new or retries), other workers' trials ``"running"``, or ``""``: done."""
    trials = study.get_trials(deepcopy=False)
    if len(budget_trials(trials)) < budget or any(
            t.state == TrialState.WAITING and retried_from(t) is not None for t in trials):
        return "trials"
    return "running" if any(t.state == TrialState.RUNNING for t in trials) else ""


class _RepeatStreak:
    """An Optuna callback that stops this worker after ``limit`` repeats of trained designs in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.stopped = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.count = self.count + 1 if is_repeat(trial) else 0
        if self.count >= self.limit:
            self.stopped = True
            study.stop()


class _Recycler:
    """An Optuna callback that stops this process after ``limit`` trials of its own (``None``: never);
    repeats of trained designs, which hold no memory, do not count."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.ran = 0
        self.due = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.ran += not is_repeat(trial)
        if self.limit is not None and self.ran >= self.limit:
            self.due = True
            study.stop()


def _stop_at_budget(trials: int):
    """An Optuna callback that stops this worker once the study has its ``trials``."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if len(budget_trials(study.get_trials(deepcopy=False))) >= trials:
            study.stop()

    return callback


def finished_count(study: optuna.Study) -> str:
    """"N trials finished", with how many of them repeated a trained design, for the end of a run."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    repeats = sum(map(is_repeat, finished))
    stopped = stopped_summary(study)
    return (f"{len(finished)} trials finished" + (f" ({repeats} repeated a trained design: not retrained)" if repeats else "")
            + (f"; {stopped}" if stopped else ""))


def summary(study: optuna.Study) -> str:
    """The front as a text table, for the end of a run."""
    return front_table_text(study)


class _FailureStreak:
    """Warns loudly after consecutive failures of one kind; stops the worker at ``max_failures``.

    The streak counts this machine's trials, and goes on from the ones in ``history`` (a
    recycled or restarted worker continues its predecessor's streak).
    """

    def __init__(self, max_failures: int | None, history: Sequence[FrozenTrial] = ()) -> None:
        self.max_failures = max_failures
        self.reason: str | None = None
        self.count = 0
        self.stopped = False
        self.message = ""
        host = worker_identity()["worker_host"]
        ours = [t for t in history if t.datetime_complete is not None and t.user_attrs.get("worker_host") == host
                and t.user_attrs.get("failure_reason") != INTERRUPTED and not is_repeat(t)]
        for trial in sorted(ours, key=lambda t: t.datetime_complete):
            self._add(trial)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if is_repeat(trial):  # ran nothing: leaves the streak as it is
            return
        reason = self._add(trial)
        self.stopped = reason is not None and self.max_failures is not None and self.count >= self.max_failures
        if reason is None or not (self.stopped or self.count >= FAILURE_STREAK_WARNING):
            return
        self.message = (f"{self.count} trials in a row failed with reason {reason!r} "
                        f"(last: trial {trial.number}: {trial.user_attrs.get('error', reason)})")
        if self.stopped:
            self.message += f"; stopping: --max-failures {self.max_failures} reached"
            study.stop()
        else:
            print(f"xsearch: WARNING: {self.message}", file=sys.stderr, flush=True)

    def _add(self, trial: FrozenTrial) -> str | None:
        """Count ``trial`` into the streak; its failure reason (``None``: it ended the streak)."""
        reason = trial.user_attrs.get("failure_reason")
        if reason in (None, "constraint") or trial.user_attrs.get("surplus"):
            self.reason, self.count = None, 0
            return None
        self.count = self.count + 1 if reason == self.reason else 1
        self.reason = reason
        return reason


def _grid(space: SearchSpace) -> dict[str, list]:
    grid: dict[str, list] = {}
    for axis, spec in space.axes.items():
        if isinstance(spec, Range):
            count = int(round((spec.high - spec.low) / spec.step)) + 1
            grid[axis] = [spec.low + i * spec.step for i in range(count)]
        else:
            grid[axis] = list(space.distributions()[axis].choices)
    return grid
