"""Setting a study up: check the space and data, open the storage, create or join the study, probe the batch.

Exactly one of many racing processes creates a study: it records the spec, enqueues the seed
trials and names the metrics last (the names mark a finished set-up).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import optuna

from xsearch.common.atomic import check_writable, write_atomic
from xsearch.data import Dataset, load_dataset
from xsearch.deploy.latency_targets import check_target_runtimes
from xsearch.model.device import runtime_info
from xsearch.model.space import SearchSpace
from xsearch.model.weights import check_weights
from xsearch.study.batch_size import AUTO, find_batch_size
from xsearch.study.record import StudyAttr, TrialAttr
from xsearch.study.retries import sweep_dead_local_trials
from xsearch.study.sampler import grid_points, make_sampler, sampler_seed, space_size
from xsearch.study.seeds import check_constraints_reachable, seed_configs
from xsearch.study.spec import LatencySpec, StudySpec, write_spec
from xsearch.study.storage import open_storage, redact
from xsearch.study.tracking import check_tracking

SETUP_WAIT_S = 30.0
UNREADABLE_LIST = (
    "unreadable_images.txt"  # in the run folder: the image files the data set left out
)


def open_study(
    spec: StudySpec,
    space: SearchSpace,
    storage: optuna.storages.BaseStorage,
    where: str,
    seeds: Callable[[], list[dict[str, Any]]] = list,
    shared: bool = False,
    grid: Sequence[dict[str, Any]] = (),
) -> optuna.Study:
    """Create the study (exactly one of many racing processes does) or reopen it.

    The creator records the spec, enqueues the ``seeds()`` trials, then the ``grid`` points that are
    not seeds, and sets the metric names last: the names mark a finished set-up. A process that
    finds a study without names waits for them, and finishes the set-up itself when its creator
    died half-way. Reopening with other objectives is an error. The study's sampler is seeded by
    `sampler_seed` (``shared``: other workers of this machine share the study).
    """
    directions = [objective.direction for objective in spec.objective_list]
    metrics = [objective.metric for objective in spec.objective_list]
    seeds = functools.cache(seeds)
    study, created = _load_or_create(spec.name, storage, directions, seeds)
    set_up = False
    if not created:
        _check_objectives(study, metrics, directions, where)
        set_up = _wait_for_metric_names(study, where)
        if set_up:
            _check_objectives(study, metrics, directions, where)
    if not set_up:
        _finish_setup(study, spec, metrics, seeds, grid)
    # other machines
    shared = shared or isinstance(
        storage, (optuna.storages.RDBStorage, optuna.storages.GrpcStorageProxy)
    )
    study.sampler = make_sampler(
        spec, space, sampler_seed(spec.seed, len(study.get_trials(deepcopy=False)), shared)
    )
    return study


def _load_or_create(
    name: str,
    storage: optuna.storages.BaseStorage,
    directions: list[Literal["maximize", "minimize"]],
    before_create: Callable[[], object],
) -> tuple[optuna.Study, bool]:
    """The study, and whether this process created it; ``before_create()`` runs (and may raise)
    before a study is created.

    Loading first keeps a journal file byte-for-byte unchanged when the study exists.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage), False
    except KeyError:
        pass
    before_create()
    try:
        return optuna.create_study(study_name=name, storage=storage, directions=directions), True
    except optuna.exceptions.DuplicatedStudyError:  # another process created it first
        return optuna.load_study(study_name=name, storage=storage), False


def _check_objectives(
    study: optuna.Study, metrics: list[str], directions: Sequence[str], where: str
) -> None:
    old_directions = [d.name.lower() for d in study.directions]
    old_metrics = list(study.metric_names or metrics)  # no names yet: only directions can differ
    if old_metrics != metrics or old_directions != directions:
        raise ValueError(
            f"study {study.study_name!r} in {where} was created with objectives "
            f"{list(zip(old_metrics, old_directions))}, not {list(zip(metrics, directions))}: use another "
            "--out folder or --storage, or the study's original objectives."
        )


def _wait_for_metric_names(study: optuna.Study, where: str) -> bool:
    """Whether the study's creator finished its set-up within ``SETUP_WAIT_S`` (said on stderr when it has not yet)."""
    deadline = time.monotonic() + SETUP_WAIT_S
    if study.metric_names is None:
        print(
            f"xsearch: study {study.study_name!r} in {where} is not set up yet: waiting up to {SETUP_WAIT_S:.0f} s for "
            "the process that created it, then finishing its set-up here.",
            file=sys.stderr,
            flush=True,
        )
    while study.metric_names is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)  # ``metric_names`` reads the storage each time
    return True


def _finish_setup(
    study: optuna.Study,
    spec: StudySpec,
    metrics: list[str],
    seeds: Callable[[], list[dict[str, Any]]],
    grid: Sequence[dict[str, Any]],
) -> None:
    write_spec(study, spec)
    resumed = bool(study.trials)  # its creator died half-way: enqueue only what is missing
    seed_params = seeds()
    for params in seed_params:
        study.enqueue_trial(params, user_attrs={TrialAttr.SEED_TRIAL: True}, skip_if_exists=True)
    for params in grid:
        if params not in seed_params:
            study.enqueue_trial(params, skip_if_exists=resumed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metrics)


def load_spec_dataset(spec: StudySpec) -> Dataset:
    """The study's data, from the uint8 cache after the first time."""
    return load_dataset(
        spec.data.source,
        spec.data.image_size,
        data_dir=spec.data.data_dir,
        seed=spec.seed if spec.data.split_seed is None else spec.data.split_seed,
        val_fraction=spec.data.val_fraction,
        test_fraction=spec.data.test_fraction,
        max_train=spec.data.max_train,
        max_bad_fraction=spec.data.max_bad_fraction,
        layout=spec.data.layout,
    )


def record_data(study: optuna.Study, dataset: Dataset, out_dir: Path) -> None:
    """Record what the study trains on (`Dataset.summary`) on the study when it differs, and list the image files
    left out as unreadable in the run folder (`UNREADABLE_LIST`)."""
    summary = dataset.summary()
    if study.user_attrs.get(StudyAttr.DATA) != summary:
        study.set_user_attr(StudyAttr.DATA, summary)
    listing = out_dir / UNREADABLE_LIST
    text = "".join(f"{path}\n" for path in dataset.unreadable)
    if text and not (listing.is_file() and listing.read_text() == text):
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(listing, text)


def prepare_study(
    spec: StudySpec,
    out_dir: Path,
    storage_url: str | None = None,
    dataset: Dataset | None = None,
    probe_batch_size: bool = True,
    shared: bool = False,
) -> tuple[optuna.Study, StudySpec, SearchSpace, Dataset]:
    """Check the space and the data, open the study, sweep dead trials and enqueue the seeds.

    Nothing is written before the space, the tracking packages, the latency targets' runtimes, the
    weights (``--weights``; a ``[transfer]`` schedule needs some), the data, the storage and the
    seed trials are known to be good. A grid study enqueues every point of its space after the seed
    trials; any study's ``trials`` is at most the number of designs in its space. Where the study
    file says ``batch_size = "auto"``, the returned spec has the study's batch size, probed on this
    device by the first process that needs it (`probe_batch_size`). ``shared``: other worker
    processes of this machine run the study too (see `open_study`).
    """
    check_writable(out_dir / "trials.csv")
    space = SearchSpace.from_toml(spec.space)
    spec.check_transfer_weights()
    check_tracking(spec)  # its package installed (`pip install 'xsearch[tracking]'`)
    check_target_runtimes(spec.latency_targets, (spec.latency or LatencySpec()).remote_format)
    if spec.weights:
        # ImageNet's in the Keras cache (or downloaded), or the file given
        check_weights(spec.weights)
    dataset = dataset or load_spec_dataset(spec)
    check_constraints_reachable(spec, space, dataset.num_classes)
    grid = grid_points(space, spec.seed) if spec.sampler == "grid" else []
    if spec.trials > space_size(space):
        # it ends when every design is trained
        spec = dataclasses.replace(spec, trials=space_size(space))
    storage = open_storage(storage_url, out_dir, spec.heartbeat_interval)

    seeds = lambda: [  # noqa: E731
        space.encode(config) for config in seed_configs(spec, space, dataset.num_classes)
    ]
    study = open_study(
        spec,
        space,
        storage,
        redact(storage_url) if storage_url else str(out_dir),
        seeds,
        shared,
        grid,
    )
    sweep_dead_local_trials(study)
    record_data(study, dataset, out_dir)
    if probe_batch_size:
        spec = _with_study_batch_size(study, spec, space, dataset)
    return study, spec, space, dataset


def study_is_set_up(study: optuna.Study, spec: StudySpec) -> bool:
    """Whether trials can start: the study has its batch size, where the spec says ``"auto"``."""
    return spec.training.batch_size != AUTO or StudyAttr.BATCH_SIZE in study.user_attrs


def _with_study_batch_size(
    study: optuna.Study, spec: StudySpec, space: SearchSpace, dataset: Dataset
) -> StudySpec:
    """``batch_size = "auto"``: the batch probed when the study started, the same for every trial.

    Machines that probe at the same time keep the batch of the first to record one.
    """
    if spec.training.batch_size != AUTO:
        return spec
    chosen = study.user_attrs.get(StudyAttr.BATCH_SIZE)
    if chosen is None:
        probe = find_batch_size(spec, space, dataset)
        # another machine may have finished first
        chosen = study.user_attrs.get(StudyAttr.BATCH_SIZE)
        if chosen is None:
            study.set_user_attr(
                StudyAttr.BATCH_SIZE_PROBE,
                {
                    "device": runtime_info()["device"],
                    "stopped_by": probe.stopped_by,
                    "images_per_second": {
                        str(batch): rate for batch, rate in probe.images_per_second.items()
                    },
                },
            )
            study.set_user_attr(StudyAttr.BATCH_SIZE, probe.batch_size)
            chosen = probe.batch_size
    return dataclasses.replace(
        spec, training=dataclasses.replace(spec.training, batch_size=int(chosen))
    )
