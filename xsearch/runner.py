"""`xsearch run`: an Optuna multi-objective study over the space, resumable from its storage."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import warnings
from pathlib import Path
from typing import Iterator

import optuna

from xsearch.data import Dataset, load_dataset
from xsearch.objective import Objective
from xsearch.progress import Progress
from xsearch.reports import front_table_text, write_run_reports
from xsearch.seeds import seed_configs
from xsearch.space import Choice, Range, SearchSpace
from xsearch.study_spec import StudySpec

INTERRUPTED = "interrupted"


def default_storage(out_dir: Path) -> str:
    """The embedded storage of a run folder: an SQLite file, no server needed."""
    return f"sqlite:///{(out_dir / 'study.db').resolve()}"


def make_sampler(spec: StudySpec, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The study's sampler (each reads the hard constraints the objective sets on its trials)."""
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=spec.seed, population_size=max(8, min(50, spec.trials // 4)))
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=spec.seed, n_startup_trials=8)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(_grid(space), seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed, multivariate=True,
                                      n_startup_trials=min(10, max(4, spec.trials // 3)))


def open_study(spec: StudySpec, space: SearchSpace, storage: str) -> optuna.Study:
    """Create the study or reopen it; reopening with other objectives is an error."""
    directions = [objective.direction for objective in spec.objective_list]
    metrics = [objective.metric for objective in spec.objective_list]
    try:
        existing = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        old = list(existing.metric_names or [])
        old_directions = [d.name.lower() for d in existing.directions]
        if old != metrics or old_directions != directions:
            raise ValueError(
                f"study {spec.name!r} in {storage} was created with objectives "
                f"{list(zip(old, old_directions))}, not {list(zip(metrics, directions))}: use another "
                "--out folder or --storage, or the study's original objectives."
            )
    study = optuna.create_study(study_name=spec.name, storage=storage, directions=directions,
                                sampler=make_sampler(spec, space), load_if_exists=True)
    if existing is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metrics)
        study.set_user_attr("xsearch_spec", json.dumps(dataclasses.asdict(spec), default=str))
    return study


def retry_interrupted(study: optuna.Study) -> int:
    """Fail the RUNNING trials a killed run left behind and enqueue their parameters again."""
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, "failure_reason", INTERRUPTED)
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    return len(stale)


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards the budget (interrupted ones are retried, not counted)."""
    return sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.user_attrs.get("failure_reason") != INTERRUPTED
    )


def run_study(
    spec: StudySpec, out_dir: Path, storage: str | None = None, progress: bool | None = None,
    dataset: Dataset | None = None,
) -> optuna.Study:
    """Run (or resume) the study until ``spec.trials`` trials are finished or ``spec.timeout`` passes.

    The data and the space are checked before anything is written. After every trial the run
    folder gets ``trials.csv``, ``pareto.csv`` and ``pareto.html``.
    """
    space = SearchSpace.from_toml(spec.space)
    if dataset is None:
        dataset = load_dataset(
            spec.data.source, spec.data.image_size, data_dir=spec.data.data_dir, seed=spec.seed,
            val_fraction=spec.data.val_fraction, test_fraction=spec.data.test_fraction,
            max_train=spec.data.max_train,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir) if storage is None else contextlib.nullcontext():
        study = open_study(spec, space, storage or default_storage(out_dir))
        if storage is None:
            retry_interrupted(study)
        if not study.trials:
            for config in seed_configs(spec, space, dataset.num_classes):
                study.enqueue_trial(space.encode(config), user_attrs={"seed_trial": True})
        remaining = spec.trials - finished_trials(study)
        with Progress(spec.trials, spec.training.epochs, enabled=progress) as view:
            view.refresh(study)
            if remaining > 0:
                study.optimize(
                    Objective(spec, space, dataset, view.trial_started), n_trials=remaining,
                    timeout=spec.timeout, catch=(Exception,), gc_after_trial=True,
                    callbacks=[lambda s, t: write_run_reports(s, out_dir), view.trial_finished],
                )
        write_run_reports(study, out_dir)
    return study


def summary(study: optuna.Study) -> str:
    """The front as a text table, for the end of a run."""
    return front_table_text(study)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock: one process per embedded storage."""
    with open(out_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"{out_dir} is in use by another `xsearch run`; wait for it, or use a server storage "
                "(--storage) for several workers."
            ) from None
        yield


def _grid(space: SearchSpace) -> dict[str, list]:
    grid: dict[str, list] = {}
    for axis, spec in space.axes.items():
        if isinstance(spec, Range):
            count = int(round((spec.high - spec.low) / spec.step)) + 1
            grid[axis] = [spec.low + i * spec.step for i in range(count)]
        else:
            grid[axis] = list(space.distributions()[axis].choices)
    return grid
