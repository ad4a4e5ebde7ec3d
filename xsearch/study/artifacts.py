"""Trained models of trials, kept as Optuna artifacts in the run folder (``<run>/artifacts``).

Each kept model is a ``.keras`` file; the trial records its artifact id (``model_artifact_id``) and
the file's sha256 (``model_sha256``). `prune_artifacts` bounds the disk used: after every trial it
deletes the models that can no longer be picked (see its policy).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import keras
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from xsearch.common.checksum import file_sha256
from xsearch.study.record import StudyAttr, TrialAttr, is_feasible


def artifact_store(run_dir: Path) -> FileSystemArtifactStore:
    """The artifact store of a run folder, ``<run_dir>/artifacts`` (created when missing)."""
    folder = run_dir / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(folder)


def keep_trial_model(
    study: optuna.Study, trial: optuna.Trial, model: keras.Model, store: FileSystemArtifactStore
) -> str:
    """Save ``model`` as ``trial-<number>.keras``, upload it for the RUNNING ``trial``, return its id.

    The file is written in a private temporary folder (no partial file is ever visible) and
    deleted after the upload. The trial gets the user attrs ``model_artifact_id`` and
    ``model_sha256``; Optuna accepts both only while the trial is running.
    """
    with tempfile.TemporaryDirectory(prefix="xsearch-model-") as folder:
        path = Path(folder) / f"trial-{trial.number}.keras"
        model.save(path)
        digest = file_sha256(path)
        artifact_id = upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial
        )
    trial.set_user_attr(TrialAttr.MODEL_ARTIFACT_ID, artifact_id)
    trial.set_user_attr(TrialAttr.MODEL_SHA256, digest)
    return artifact_id


def pruned_trials(study: optuna.Study) -> set[int]:
    """Numbers of the trials whose kept model was deleted by `prune_artifacts`."""
    return set(study.user_attrs.get(StudyAttr.PRUNED_MODELS, []))


def prune_artifacts(
    study: optuna.Study, store: FileSystemArtifactStore, keep_top: int = 5
) -> list[int]:
    """Delete the kept models of finished trials that can no longer be picked; return their numbers.

    Policy: keep the model of every trial on the Pareto front (`Study.best_trials`) and of the
    ``keep_top`` feasible COMPLETE trials with the best ``val_accuracy`` (ties: lower number);
    delete the models of all other finished trials (failed ones included). Running trials are
    left alone. A trial that leaves the front or the top ``keep_top`` never re-enters them (new
    trials only add dominators and better ranks), so a deleted model is never needed again.
    Finished trials are read-only in Optuna, so the deleted ones are listed in the study user
    attr ``pruned_models``. Cost: one pass over the trials and the front; call it after each trial.
    """
    pruned = pruned_trials(study)
    trials = [
        t for t in study.get_trials(deepcopy=False) if TrialAttr.MODEL_ARTIFACT_ID in t.user_attrs
    ]
    candidates = [t for t in trials if t.state.is_finished() and t.number not in pruned]
    if not candidates:
        return []
    ranked = sorted(
        (t for t in trials if is_feasible(t)),
        key=lambda t: (-float(t.user_attrs.get(TrialAttr.VAL_ACCURACY, float("-inf"))), t.number),
    )
    keep = _front(study) | {t.number for t in ranked[:keep_top]}
    removed = [t for t in candidates if t.number not in keep]
    for trial in removed:
        # already gone: deleted by hand or by a run that stopped before recording it
        with contextlib.suppress(ArtifactNotFound):
            store.remove(trial.user_attrs[TrialAttr.MODEL_ARTIFACT_ID])
    if removed:
        study.set_user_attr(StudyAttr.PRUNED_MODELS, sorted(pruned | {t.number for t in removed}))
    return [t.number for t in removed]


def _front(study: optuna.Study) -> set[int]:
    """Numbers of the front's trials (none yet when a single-objective study has no feasible trial)."""
    try:
        return {t.number for t in study.best_trials}
    except ValueError:
        return set()
