"""Where users already look: a study's trials in TensorBoard and in MLflow (``[tracking]``,
``--tensorboard``, ``--mlflow URI``).

- **TensorBoard** (``tensorboard = true``): ``RUN_DIR/tensorboard/trial-<n>/`` gets Keras'
  `TensorBoard` callback's per-epoch scalars (``train/`` and ``validation/``: loss, accuracy,
  learning rate, the epoch's wall time ``epoch_time_s``) and, when the trial ends, the HParams
  plugin's session: the six design axes and every objective value (``objective/<attr>``);
  ``RUN_DIR/tensorboard`` holds the experiment's HParams config. A retry continues the log of the
  trial it retries, a trial continuing a stopped one (``[asha]``) continues that trial's log, from
  the epoch it resumes at (Keras' steps are epoch indices): no step is written twice.
- **MLflow** (``mlflow_uri``): one parent run per study (tagged ``xsearch.study`` = its name @ its storage), found or
  created by every worker, the earliest one winning a race; one nested run per trial (tagged ``xsearch.trial``,
  reused by its retries), with per-epoch metrics (step = epoch index), the design axes, seed and set-up digest as
  params, the final objectives as metrics, its state, failure reason and kept model's artifact id as tags.

Neither can hurt a study: every call is bounded in time and never raises into the trial; on its first failure the
worker warns once on stderr, naming where, and logs nothing more there. Tracking changes no result, so it is not
part of the set-up digest (`xsearch.study.repeats.setup_digest`).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import optuna
from optuna.trial import FrozenTrial, TrialState

from xsearch.model.config import XceptionConfig
from xsearch.study.record import TrialAttr, is_repeat, target_latency_attr
from xsearch.study.retries import retried_from
from xsearch.study.spec import StudySpec
from xsearch.study.storage import redact

TENSORBOARD_DIR = "tensorboard"  # in the run folder
CALL_TIMEOUT_S = 10.0  # the longest one tracking call may hold a trial
HTTP_TIMEOUT_S = "5"  # MLflow's own HTTP time-out and retries, unless the environment sets them
HTTP_RETRIES = "0"
INSTALL = "pip install 'xsearch[tracking]'"
DEFAULT_EXPERIMENT = "xsearch"
# MLflow's UI opens it on its runs, not GenAI traces
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
STUDY_TAG, TRIAL_TAG, PARENT_TAG = "xsearch.study", "xsearch.trial", "mlflow.parentRunId"
FINAL_METRICS = (
    TrialAttr.VAL_ACCURACY,
    TrialAttr.VAL_TOP5,
    TrialAttr.TEST_ACCURACY,
    TrialAttr.TEST_TOP5,
    TrialAttr.PARAMS,
    TrialAttr.MACS,
    TrialAttr.FLOPS,
    TrialAttr.LATENCY_MS,
    TrialAttr.THROUGHPUT,
    TrialAttr.EPOCHS,
    TrialAttr.COMPILE_TIME_S,
    TrialAttr.TRAIN_TIME_S,
    TrialAttr.WALL_TIME_S,
)
TRIAL_TAGS = (
    TrialAttr.FAILURE_REASON,
    TrialAttr.MODEL_ARTIFACT_ID,
    TrialAttr.REPEAT_OF,
    TrialAttr.CONTINUES,
    TrialAttr.RETRY_OF,
    TrialAttr.STOPPED_AT_EPOCH,
    TrialAttr.WORKER_HOST,
)


def check_tracking(spec: StudySpec) -> None:
    """Refuse tracking whose package is not installed (ValueError naming the key and the extra to install)."""
    tracking = spec.tracking
    if tracking is None:
        return
    if tracking.mlflow_uri is not None and importlib.util.find_spec("mlflow") is None:
        raise ValueError(
            f"tracking.mlflow_uri (--mlflow) needs the mlflow package, which is not installed: {INSTALL}."
        )
    if tracking.tensorboard and any(
        importlib.util.find_spec(name) is None for name in ("tensorboard", "tensorflow")
    ):
        raise ValueError(
            f"tracking.tensorboard (--tensorboard) needs the tensorboard and tensorflow packages: {INSTALL}."
        )


def storage_identity(storage_url: str | None, out_dir: Path) -> str:
    """What tells one study's storage from another's: a database URL without its password, or a
    journal's absolute path."""
    if storage_url is None or storage_url.endswith(".journal"):
        journal = (
            Path(storage_url.removeprefix("journal:")) if storage_url else out_dir / "study.journal"
        )
        return str(journal.resolve())
    return redact(storage_url)


def metric_key(name: str) -> str:
    """A name MLflow and TensorBoard both accept as a metric key (``latency_ms@litert-cpu`` ->
    ``latency_ms_litert-cpu``)."""
    return re.sub(r"[^\w.\-/]", "_", name)


def retry_root(trials: list[FrozenTrial], number: int) -> int:
    """The first trial of the retries that ``number`` belongs to (itself when it retries none)."""
    seen = {number}
    source = retried_from(trials[number]) if number < len(trials) else None
    while source is not None and source not in seen and source < len(trials):
        seen.add(source)
        number, source = source, retried_from(trials[source])
    return number


def design_axes(trial: FrozenTrial) -> dict[str, bool | int | float | str]:
    """The trial's six design axes as HParams values (``segments`` as text: an integer or ``"depthwise"``)."""
    text = trial.user_attrs.get(TrialAttr.CONFIG)
    if not isinstance(text, str):
        return {}
    config = XceptionConfig.from_json(text).to_dict()
    return {key: str(value) if key == "segments" else value for key, value in config.items()}


def final_values(spec: StudySpec, trial: FrozenTrial) -> dict[str, float]:
    """The trial's objectives and costs (every latency target too) that are finite numbers, by attr name."""
    names = [
        *FINAL_METRICS,
        *(objective.metric for objective in spec.objective_list),
        *(target_latency_attr(target) for target in spec.latency_targets),
    ]
    values = {}
    for name in dict.fromkeys(names):
        value = trial.user_attrs.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values[name] = float(value)
    return values


class Guard:
    """Runs the calls to one tracking destination: each bounded by ``timeout_s`` (in a daemon thread
    when ``threaded``), none raising; after the first failure or time-out it warns once on stderr,
    naming ``where``, and runs nothing more."""

    def __init__(
        self, where: str, threaded: bool = True, timeout_s: float = CALL_TIMEOUT_S
    ) -> None:
        self.where, self.threaded, self.timeout_s = where, threaded, timeout_s
        self.failed = False

    def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        if self.failed:
            return None
        if not self.threaded:
            try:
                return function(*args)
            except Exception as error:
                return self._fail(f"{type(error).__name__}: {error}")
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["value"] = function(*args)
            except BaseException as error:  # BaseException too: reported by the caller's thread
                box["error"] = error

        thread = threading.Thread(target=call, name="xsearch-tracking", daemon=True)
        thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            return self._fail(f"no answer within {self.timeout_s:g} s")
        if "error" in box:
            return self._fail(f"{type(box['error']).__name__}: {box['error']}")
        return box.get("value")

    def _fail(self, why: str) -> None:
        self.failed = True
        why = redact(" ".join(why.split()))[:300]  # an error may quote the URI with its password
        print(
            f"xsearch: warning: tracking to {self.where} failed ({why}); this worker logs nothing more there, "
            "and the study goes on.",
            file=sys.stderr,
            flush=True,
        )


class Tracker:
    """A worker's tracking of one study: Keras callbacks for each trial's training, and an Optuna
    callback when it ends."""

    def __init__(self, spec: StudySpec, out_dir: Path, storage_url: str | None = None) -> None:
        tracking = spec.tracking
        self.spec = spec
        self.tensorboard: Path | None = (
            out_dir / TENSORBOARD_DIR if tracking is not None and tracking.tensorboard else None
        )
        self.tb_guard = Guard(str(self.tensorboard), threaded=False)
        self.tb_dirs: dict[int, Path] = {}  # trial number -> the folder its training logged to
        self._config_written = False
        self.mlflow: MlflowLog | None = None
        if tracking is not None and tracking.mlflow_uri is not None:
            self.mlflow = MlflowLog(
                tracking.mlflow_uri,
                tracking.mlflow_experiment or DEFAULT_EXPERIMENT,
                f"{spec.name}@{storage_identity(storage_url, out_dir)}",
                spec,
            )

    @property
    def enabled(self) -> bool:
        return self.tensorboard is not None or self.mlflow is not None

    def keras_callbacks(self, trial: optuna.Trial) -> list[keras.callbacks.Callback]:
        """The callbacks that log the trial's epochs (none when tracking is off or has failed)."""
        callbacks: list[keras.callbacks.Callback] = []
        if self.tensorboard is not None and not self.tb_guard.failed:
            callbacks.append(TensorBoardLog(self, trial))
        if self.mlflow is not None and not self.mlflow.guard.failed:
            callbacks.append(MlflowEpochs(self.mlflow, trial))
        return callbacks

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: the trial's HParams session and its MLflow run's results (not for a
        surplus trial, which never ran)."""
        if trial.user_attrs.get(TrialAttr.SURPLUS):
            return
        trials = study.get_trials(deepcopy=False)
        root = retry_root(trials, trial.number)
        if self.tensorboard is not None and not is_repeat(trial):
            self.tb_guard(
                self._write_session,
                trial,
                self.tb_dirs.pop(trial.number, self.tensorboard / f"trial-{root}"),
            )
        if self.mlflow is not None:
            self.mlflow.guard(self.mlflow.finish_trial, root, trial)

    def study_finished(self) -> None:
        """Mark the study's MLflow run finished (a worker that found no work left)."""
        if self.mlflow is not None and self.mlflow.parent_id is not None:
            self.mlflow.guard(self.mlflow.finish_study)

    def _write_session(self, trial: FrozenTrial, folder: Path) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp

        assert self.tensorboard is not None
        values = final_values(self.spec, trial)
        if not self._config_written:
            axes = list(XceptionConfig.paper().to_dict())
            metrics = [
                hp.Metric(f"objective/{metric_key(name)}", display_name=name)
                for name in dict.fromkeys(
                    [
                        *FINAL_METRICS,
                        *(o.metric for o in self.spec.objective_list),
                        *(target_latency_attr(t) for t in self.spec.latency_targets),
                    ]
                )
            ]
            config = tf.summary.create_file_writer(str(self.tensorboard))
            with config.as_default():
                hp.hparams_config(hparams=[hp.HParam(axis) for axis in axes], metrics=metrics)
            config.close()
            self._config_written = True
        writer = tf.summary.create_file_writer(str(folder))
        step = int(values.get(TrialAttr.EPOCHS, 0))
        with writer.as_default():
            hp.hparams(design_axes(trial), trial_id=f"trial-{trial.number}")
            for name, value in values.items():
                tf.summary.scalar(f"objective/{metric_key(name)}", value, step=step)
        writer.close()


class TensorBoardLog(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, writing per-epoch scalars (and the epoch's wall time) to the trial's folder, which
    it picks at the first epoch: a retry's or continuation's is the folder of the trial it continues from that epoch on.
    Every call goes through the tracker's guard."""

    def __init__(self, tracker: Tracker, trial: optuna.Trial) -> None:
        assert tracker.tensorboard is not None
        super().__init__(log_dir=str(tracker.tensorboard), write_graph=False, update_freq="epoch")
        self.tracker, self.trial = tracker, trial
        self.folder: Path | None = None
        self._epoch_started = 0.0

    # each `fit` (a transfer schedule's phases) sets it again
    def set_model(self, model: keras.Model) -> None:
        self.tracker.tb_guard(super().set_model, model)
        if self.folder is not None:
            self._use(self.folder)

    # writers are opened at the first epoch, not here
    def on_train_begin(self, logs: dict | None = None) -> None:
        self._global_train_batch = 0
        self._previous_epoch_iterations = 0

    def on_train_end(self, logs: dict | None = None) -> None:
        self.tracker.tb_guard(self._close_writers)

    def on_test_begin(self, logs: dict | None = None) -> None:
        pass  # per-epoch validation scalars only, written at the epoch's end

    def on_test_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_started = time.perf_counter()
        if self.folder is None:
            self.tracker.tb_guard(self._choose, epoch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.folder is None or self.tracker.tb_guard.failed:
            return
        seconds = {"time_s": time.perf_counter() - self._epoch_started}  # written as epoch_time_s
        self.tracker.tb_guard(super().on_epoch_end, epoch, {**(logs or {}), **seconds})

    def _choose(self, epoch: int) -> None:
        assert self.tracker.tensorboard is not None
        trials = self.trial.study.get_trials(deepcopy=False)
        own = retry_root(trials, self.trial.number)
        folder = own
        continues = self.trial.user_attrs.get(TrialAttr.CONTINUES)
        if (
            epoch > 0
            and continues is not None
            and trials[continues].user_attrs.get(TrialAttr.EPOCHS_DONE) == epoch
        ):
            # continues the stopped trial's training, and its log
            folder = retry_root(trials, int(continues))
        path = self.tracker.tensorboard / f"trial-{folder}"
        if epoch == 0 and folder != self.trial.number and path.exists():
            # a retry that trains from the start again: its earlier epochs are gone
            shutil.rmtree(path)
        self.tracker.tb_dirs[self.trial.number] = path
        self._use(path)

    def _use(self, path: Path) -> None:
        self.folder = path
        self._log_write_dir = str(path)
        self._train_dir, self._val_dir = str(path / "train"), str(path / "validation")
        self._writers: dict[str, Any] = {}


class MlflowLog:
    """A worker's MLflow client for one study: its parent run, and its trials' nested runs."""

    def __init__(self, uri: str, experiment: str, study_tag: str, spec: StudySpec) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_S)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES)
        # a worker prints no run links
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.uri, self.experiment, self.spec = uri, experiment, spec
        self.study_tag = study_tag.replace("'", "_")  # quoted in search filters
        self.guard = Guard(f"MLflow at {redact(uri)}")
        from mlflow import entities  # here, unbounded: an import may take seconds on a busy machine
        from mlflow.tracking import MlflowClient

        self.entities, self.client_class = entities, MlflowClient
        self.client: Any = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.children: dict[int, str] = {}  # retry root -> run id

    def parent(self) -> str:
        """The study's parent run: found by its tag, else created; of runs created in a race, the earliest wins."""
        if self.parent_id is None:
            self.client = self.client_class(tracking_uri=self.uri)
            self.experiment_id = self._experiment()
            tags = {
                STUDY_TAG: self.study_tag,
                "xsearch.space": self.spec.space,
                "xsearch.objectives": ",".join(self.spec.objectives),
                "xsearch.sampler": self.spec.sampler,
            }
            self.parent_id = self._find_or_create(
                f"tags.`{STUDY_TAG}` = '{self.study_tag}'", tags, self.spec.name
            )
        return self.parent_id

    def child(self, root: int, fresh: bool = False) -> str:
        """The nested run of the trial numbered ``root`` and its retries; ``fresh``: delete an earlier one first."""
        parent = self.parent()
        if root in self.children and not fresh:
            return self.children[root]
        query = f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{TRIAL_TAG}` = '{root}'"
        if fresh:
            for run in self._runs(query):
                self.client.delete_run(run.info.run_id)
        tags = {PARENT_TAG: parent, TRIAL_TAG: str(root), STUDY_TAG: self.study_tag}
        self.children[root] = self._find_or_create(query, tags, f"trial-{root}")
        return self.children[root]

    def log_epoch(self, root: int, epoch: int, values: dict[str, float], fresh: bool) -> None:
        Metric = self.entities.Metric
        run_id = self.child(root, fresh)
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id, metrics=[Metric(metric_key(k), v, now, epoch) for k, v in values.items()]
        )

    def finish_trial(self, root: int, trial: FrozenTrial) -> None:
        Metric, Param, RunTag = self.entities.Metric, self.entities.Param, self.entities.RunTag
        run_id = self.child(root)
        logged = self.client.get_run(run_id).data.params
        params = {
            **design_axes(trial),
            TrialAttr.SEED: trial.user_attrs.get(TrialAttr.SEED),
            TrialAttr.SETUP_DIGEST: trial.user_attrs.get(TrialAttr.SETUP_DIGEST),
        }
        values = final_values(self.spec, trial)
        step = int(values.get(TrialAttr.EPOCHS, 0))
        now = int(time.time() * 1000)
        tags = {"xsearch.state": trial.state.name, "xsearch.trial_number": str(trial.number)}
        tags.update(
            {
                f"xsearch.{key}": str(trial.user_attrs[key])
                for key in TRIAL_TAGS
                if trial.user_attrs.get(key) is not None
            }
        )
        self.client.log_batch(
            run_id,
            metrics=[Metric(f"final.{metric_key(k)}", v, now, step) for k, v in values.items()],
            params=[
                Param(k, str(v)) for k, v in params.items() if v is not None and k not in logged
            ],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED"}.get(
            trial.state, "FAILED"
        )
        self.client.set_terminated(run_id, status)

    def finish_study(self) -> None:
        self.client.set_terminated(self.parent(), "FINISHED")

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                return str(self.client.create_experiment(self.experiment, tags=EXPERIMENT_TAGS))
            except Exception:  # another worker created it first
                found = self.client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise ValueError(
                f"the MLflow experiment {self.experiment!r} is deleted: restore it or choose another "
                "(tracking.mlflow_experiment)"
            )
        return str(found.experiment_id)

    def _runs(self, query: str) -> list[Any]:
        return list(
            self.client.search_runs([self.experiment_id], filter_string=query, max_results=100)
        )

    def _find_or_create(self, query: str, tags: dict[str, str], name: str) -> str:
        earliest = self._earliest(query)
        if earliest is not None:
            return earliest
        created = self.client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id
        # several workers may have created one at once: keep the earliest
        earliest = self._earliest(query) or created
        if earliest != created:
            self.client.delete_run(created)
        return earliest

    def _earliest(self, query: str) -> str | None:
        runs = self._runs(query)
        return (
            min(runs, key=lambda run: (run.info.start_time, run.info.run_id)).info.run_id
            if runs
            else None
        )


class MlflowEpochs(keras.callbacks.Callback):
    """Logs each epoch's metrics, learning rate and wall time to the trial's nested run (step = epoch index). A retry
    continues the run of the trial it retries; one that trains from the start again replaces that run."""

    def __init__(self, log: MlflowLog, trial: optuna.Trial) -> None:
        super().__init__()
        self.log, self.trial = log, trial
        self.root: int | None = None
        self.fresh = False
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()
        if self.root is None:
            self.root = retry_root(self.trial.study.get_trials(deepcopy=False), self.trial.number)
            self.fresh = epoch == 0 and self.root != self.trial.number

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.root is None or self.log.guard.failed:
            return
        values = {}
        for key, value in (logs or {}).items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                values[key] = number
        values["epoch_time_s"] = time.perf_counter() - self._started
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            values["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self.log.guard(self.log.log_epoch, self.root, epoch, values, self.fresh)
        self.fresh = False
