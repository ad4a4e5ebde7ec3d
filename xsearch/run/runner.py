"""`xsearch run`: an Optuna multi-objective study over the space, resumable from its storage."""

from __future__ import annotations

import errno
import os
import random
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from xsearch.common.interrupt import raise_if_requested
from xsearch.data import Dataset
from xsearch.results.figures import attach_figures
from xsearch.results.run_reports import front_table_text, write_run_reports
from xsearch.run.optuna_callbacks import (
    FailureStreak,
    Recycler,
    RepeatStreak,
    no_space,
    stop_at_budget,
    stop_when_disk_full,
)
from xsearch.run.progress import Progress
from xsearch.run.remeasure import remeasure_front
from xsearch.run.workers import worker_total
from xsearch.study.artifacts import artifact_store, prune_artifacts
from xsearch.study.early_stop import stopped_summary
from xsearch.study.failures import StudyStopped, WorkerRecycle
from xsearch.study.objective import StudyObjective
from xsearch.study.record import FailureReason, failure_reason, is_repeat
from xsearch.study.repeats import setup_digest
from xsearch.study.retries import budget_trials, retried_from, sweep_dead_local_trials
from xsearch.study.setup import prepare_study
from xsearch.study.spec import StudySpec
from xsearch.study.tracking import Tracker
from xsearch.study.trainer import KerasTrainer

REPEAT_STREAK_LIMIT = 25


def run_study(
    spec: StudySpec,
    out_dir: Path,
    storage: str | None = None,
    progress: bool | None = None,
    dataset: Dataset | None = None,
    recycle_after: int | None = None,
    deadline: float | None = None,
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
    of them in a row the space is exhausted or the sampler has converged, and the run ends. A run that completes
    its trials times the front's designs again (`xsearch.run.remeasure`).
    """
    study, spec, space, dataset = prepare_study(
        spec, out_dir, storage, dataset, shared=worker_total() > 1
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    streak = FailureStreak(spec.max_failures, study.get_trials(deepcopy=False))
    limits = [
        seconds
        for seconds in (spec.timeout, None if deadline is None else deadline - time.time())
        if seconds is not None
    ]
    ends_at = time.monotonic() + min(limits) if limits else None
    in_time = lambda: ends_at is None or time.monotonic() < ends_at  # noqa: E731
    digest = setup_digest(spec)
    poll = WaitingPoll(spec.heartbeat_interval)
    with Progress(
        study, spec.trials, spec.training.epochs, enabled=progress, digest=digest
    ) as view:
        store = artifact_store(out_dir)
        # TensorBoard and MLflow, when the study asks (`[tracking]`)
        tracker = Tracker(spec, out_dir, storage)
        objective = StudyObjective(
            spec,
            space,
            KerasTrainer(spec, dataset, out_dir, store),
            lambda trial: [*view.trial_started(trial), *tracker.keras_callbacks(trial)],
        )
        recycle = Recycler(recycle_after)
        repeats = RepeatStreak(REPEAT_STREAK_LIMIT)
        callbacks = [
            recycle,
            repeats,
            lambda s, t: prune_artifacts(s, store),
            lambda s, t: write_run_reports(s, out_dir),
            lambda s, t: attach_figures(s),
            streak,
            view.trial_finished,
            lambda s, t: sweep_dead_local_trials(s),
            stop_at_budget(spec.trials, digest),
            stop_when_disk_full(out_dir),
            # last: a signal's stop, if its KeyboardInterrupt was lost
            lambda s, t: raise_if_requested(),
        ]
        if tracker.enabled:
            # after the kept models are pruned, before the reports
            callbacks.insert(3, tracker.trial_finished)
        work = ""
        while not streak.stopped and not repeats.stopped and not recycle.due and in_time():
            work = next_work(study, spec.trials, digest, poll.first, was_waiting=work == "running")
            if work == "trials":
                poll.reset()
                left = None if ends_at is None else max(1.0, ends_at - time.monotonic())
                try:
                    study.optimize(
                        objective,
                        timeout=left,
                        catch=(Exception,),
                        gc_after_trial=True,
                        callbacks=callbacks,
                    )
                # e.g. Optuna's "Should not reach" after a journal write failed
                except Exception as error:
                    if no_space(error):
                        raise OSError(
                            errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir)
                        ) from None
                    raise
            elif work == "running":  # other workers' trials: wait, sweep if they die
                poll.sleep()
                sweep_dead_local_trials(study)
            else:
                remeasure_front(study, spec, objective.trainer)
                tracker.study_finished()
                break
    write_run_reports(study, out_dir)
    if repeats.stopped:
        trained = len(budget_trials(study.get_trials(deepcopy=False), digest))
        print(
            f"xsearch: stopping at {trained} of {spec.trials} trials: the sampler proposed {repeats.limit} "
            "designs in a row that were already trained (the space is exhausted or the sampler has converged).",
            file=sys.stderr,
            flush=True,
        )
    if streak.stopped:
        raise StudyStopped(streak.message)
    if recycle.due and work_left(study, spec.trials, digest) and in_time():
        raise WorkerRecycle(f"recycling this worker after {recycle.ran} trials")
    return study


def work_left(study: optuna.Study, budget: int, digest: str) -> str:
    """``"trials"`` to run (new or retries), other workers' trials ``"running"``, or ``""``: done."""
    trials = study.get_trials(deepcopy=False)
    if len(budget_trials(trials, digest)) < budget or any(
        t.state == TrialState.WAITING and retried_from(t) is not None for t in trials
    ):
        return "trials"
    return "running" if any(t.state == TrialState.RUNNING for t in trials) else ""


class WaitingPoll:
    """How long a worker waiting for other workers' trials sleeps before it looks at the study again.

    ``first`` (5 s, or the heartbeat interval if shorter) after it starts waiting, then 1.5x longer after
    each look that found only others' trials running, up to the heartbeat interval. Near the end of a study
    most of a large fleet waits; looking every 5 s each, 100 waiting workers kept the storage proxies so busy
    that the few trials still running barely advanced (`benchmarks.fleet`, 128 workers on 16 proxies).
    """

    GROWTH = 1.5

    def __init__(self, heartbeat_interval: float) -> None:
        self.first = min(5.0, heartbeat_interval)
        self.most = max(self.first, float(heartbeat_interval))
        self.seconds = self.first

    def sleep(self) -> None:
        """Sleep, and wait longer next time."""
        time.sleep(self.seconds)
        self.seconds = min(self.most, self.seconds * self.GROWTH)

    def reset(self) -> None:
        """The worker found a trial to run: its next wait starts again from ``first``."""
        self.seconds = self.first


def next_work(
    study: optuna.Study, budget: int, digest: str, poll_s: float, was_waiting: bool
) -> str:
    """`work_left`, after a random wait of up to ``poll_s`` when a worker that ``was_waiting`` for others'
    trials finds a trial to run (a killed trial's retry, or a slot a repeat left): of the workers waiting
    at a full budget, the first to look again takes it and the rest keep waiting, instead of each
    starting a trial only to prune it as surplus."""
    work = work_left(study, budget, digest)
    if work == "trials" and was_waiting:
        time.sleep(random.uniform(0.0, poll_s))
        work = work_left(study, budget, digest)
    return work


def finished_count(study: optuna.Study, digest: str | None = None) -> str:
    """ "N trials finished", with how many of them repeated a trained design, for the end of a run.

    Interrupted trials (retried) and surplus trials (never run) do not count, as toward ``--trials``.
    """
    trials = study.get_trials(deepcopy=False)
    counted = {t.number for t in budget_trials(trials, digest)}
    finished = [
        t for t in trials if t.state.is_finished() and (t.number in counted or is_repeat(t))
    ]
    repeats = sum(map(is_repeat, finished))
    interrupted = sum(failure_reason(t) == FailureReason.INTERRUPTED for t in trials)
    stopped = stopped_summary(study)
    return (
        f"{len(finished)} trials finished"
        + (f" ({repeats} repeated a trained design: not retrained)" if repeats else "")
        + (f"; {interrupted} interrupted and retried" if interrupted else "")
        + (f"; {stopped}" if stopped else "")
    )


def summary(study: optuna.Study) -> str:
    """The front as a text table, for the end of a run."""
    return front_table_text(study)
