"""`xsearch export`: one design of a study as a standalone model file with a model card beside it.

The trial is a number or a pick of the front (a repeat's design is the trial that trained it); its weights are its
kept model (sha256 checked), a new training with the study's data and budget, or none. The file, its conversion to a
deployment format and the check in its runtime are `xsearch.deploy.export`'s; the card records the design, its
metrics, where it came from, the format, the check and the file's sha256, and the study records the export.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Literal

import keras
import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from xsearch.common.checksum import file_sha256
from xsearch.data import Dataset
from xsearch.deploy.export import check_out, write_card, write_export
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.weights import inherit_weights, inherited_layers
from xsearch.results.pareto import pick_trial
from xsearch.study.artifacts import pruned_trials
from xsearch.study.early_stop import stop_reason, stop_rule
from xsearch.study.fit import train_and_evaluate, with_normalization
from xsearch.study.optuna_private import storage_description
from xsearch.study.record import StudyAttr, TrialAttr, is_stopped, repeat_of
from xsearch.study.setup import load_spec_dataset
from xsearch.study.spec import TrainingSpec, read_spec

Weights = Literal["trained", "none", "retrained"]
_METRICS = (
    TrialAttr.VAL_ACCURACY,
    TrialAttr.VAL_TOP5,
    TrialAttr.TEST_ACCURACY,
    TrialAttr.TEST_TOP5,
    TrialAttr.PARAMS,
    TrialAttr.TRAINABLE_PARAMS,
    TrialAttr.MACS,
    TrialAttr.FLOPS,
    TrialAttr.LATENCY_MS,
    TrialAttr.LATENCY_P90_MS,
    TrialAttr.LATENCY_BATCH,
    TrialAttr.THROUGHPUT,
    TrialAttr.EPOCHS,
)
_RUNTIME = (
    TrialAttr.DEVICE,
    TrialAttr.BACKEND,
    TrialAttr.BACKEND_VERSION,
    TrialAttr.KERAS_VERSION,
    TrialAttr.PRECISION,
)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An exported model: its file, model card, sha256, which weights it holds, and what happened."""

    path: Path
    card_path: Path
    sha256: str
    weights: Weights
    message: str
    format: str = "keras"


def export_trial(
    study: optuna.Study,
    trial: int | str,
    out: Path,
    store: FileSystemArtifactStore | None,
    force: bool = False,
    retrain: bool = False,
    weights: str | None = None,
    fmt: str = "keras",
) -> ExportResult:
    """Write the design of ``trial`` (a trial number or a pick: accuracy, params, latency, knee) to ``out`` in ``fmt``.

    Weights: the trial's kept model (``store``) when it is there, its sha256 checked against the
    trial's ``model_sha256`` (a mismatch raises ValueError); with ``retrain`` a new training with
    the study's data and budget, from ``weights`` (``imagenet`` or a path) when given (a study with a
    ``[transfer]`` schedule retrains with it, from its own weights unless ``weights`` is given); else none
    (the architecture only, freshly initialised). A study's ``[transfer]`` schedule is on the card. Files
    are written to a temporary name and renamed, so ``out`` is never partial. ``fmt`` is ``keras``, or a
    deployment format (``savedmodel``, ``tflite``, ``onnx``) converted from the Keras model and checked in its
    runtime (`xsearch.deploy.export.write_export`); a failed conversion or check raises
    `xsearch.deploy.export.ExportError` and leaves ``out`` as it was. Raises ValueError for an ``out`` without the
    format's suffix (``.keras``, ``.tflite``, ``.onnx``; a SavedModel is a folder, a path without one), or one that
    exists unless ``force``.
    """
    out = Path(out)
    check_out(out, force, fmt)
    chosen = _resolve(study, trial)
    out.parent.mkdir(parents=True, exist_ok=True)
    written, digest, deployment = write_export(
        out, fmt, lambda path: _write_model(study, chosen, store, path, retrain, weights)
    )
    kind, message, retrained = written
    if fmt != "keras":
        message += f"; checked in {deployment['runtime']['name']}: max |diff| {deployment['check']['max_abs_diff']:.2g}"
    card = _card(study, chosen, out, digest, kind, retrained, fmt, deployment)
    card_path = write_card(out, card)
    entry = {
        "path": str(out.resolve()),
        "format": fmt,
        "sha256": digest,
        "trial": chosen.number,
        "weights": kind,
        "exported_at": card["exported_at"],
    }
    study.set_user_attr(StudyAttr.EXPORTS, [*study.user_attrs.get(StudyAttr.EXPORTS, []), entry])
    is_repeat_number = isinstance(trial, int) and trial != chosen.number
    repeat = f"trial {trial} repeats trial {chosen.number}'s design; " if is_repeat_number else ""
    if is_stopped(chosen) and kind == "trained":
        message += (
            f"; its training stopped early at epoch {chosen.user_attrs[TrialAttr.STOPPED_AT_EPOCH]} "
            f"({stop_reason(chosen)}): --retrain trains it fully"
        )
    label = "" if fmt == "keras" else f" ({fmt})"
    return ExportResult(
        out,
        card_path,
        digest,
        kind,
        f"{repeat}trial {chosen.number} -> {out}{label}: {message}",
        fmt,
    )


def _resolve(study: optuna.Study, trial: int | str) -> FrozenTrial:
    """The trial of that number (for a repeat, the trial that trained its design), or the pick of
    the front; it must be COMPLETE."""
    if isinstance(trial, str):
        return pick_trial(study, trial)
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == trial), None)
    if found is None:
        raise ValueError(
            f"study {study.study_name!r} has no trial {trial} (trials 0 to {len(trials) - 1})."
        )
    if found.state != TrialState.COMPLETE:
        raise ValueError(
            f"trial {trial} of study {study.study_name!r} is {found.state.name}, not COMPLETE."
        )
    twin = repeat_of(found)
    return found if twin is None else next(t for t in trials if t.number == twin)


def _write_model(
    study: optuna.Study,
    trial: FrozenTrial,
    store: FileSystemArtifactStore | None,
    path: Path,
    retrain: bool,
    weights: str | None,
) -> tuple[Weights, str, dict[str, Any] | None]:
    """Write the trial's model to ``path``: (weights kind, message, retraining metrics or None)."""
    if retrain:
        dataset = load_spec_dataset(read_spec(study))
        model = _rebuild(study, trial, dataset.mean, dataset.std, dataset.num_classes)
        spec = read_spec(study)
        # the schedule needs them
        weights = weights or (spec.weights if spec.transfer is not None else None)
        inherited = inherited_layers(model, inherit_weights(model, weights)) if weights else []
        result = train_and_evaluate(
            model,
            dataset,
            _training_spec(study, trial),
            int(trial.user_attrs.get(TrialAttr.SEED, 0)),
            transfer=spec.transfer,
            inherited=inherited,
        )
        model.save(path)
        metrics = {
            TrialAttr.VAL_ACCURACY: result.val_accuracy,
            TrialAttr.TEST_ACCURACY: result.test_accuracy,
        }
        return "retrained", f"retrained: val_accuracy {result.val_accuracy:.4f}", metrics
    reason = _download_checked(trial, store, path, pruned=trial.number in pruned_trials(study))
    if reason is None:
        return "trained", "the trial's trained weights (sha256 checked)", None
    model = _rebuild(study, trial, *_normalization(study, trial))
    model.save(path)
    return (
        "none",
        f"architecture only, NO trained weights: {reason} (use --retrain to train it)",
        None,
    )


def _download_checked(
    trial: FrozenTrial, store: FileSystemArtifactStore | None, path: Path, pruned: bool
) -> str | None:
    """Download the trial's kept model to ``path`` and check its sha256; else why there is none."""
    artifact_id = trial.user_attrs.get(TrialAttr.MODEL_ARTIFACT_ID)
    if artifact_id is None:
        return f"trial {trial.number} kept no model"
    if pruned:
        return f"the model of trial {trial.number} was pruned (only the front and the top val_accuracy are kept)"
    if store is None:
        return "no artifact store was given"
    try:
        download_artifact(artifact_store=store, file_path=str(path), artifact_id=artifact_id)
    except ArtifactNotFound:
        return f"artifact {artifact_id} of trial {trial.number} is missing from the artifact store"
    actual, expected = file_sha256(path), trial.user_attrs.get(TrialAttr.MODEL_SHA256)
    if actual != expected:
        raise ValueError(
            f"artifact {artifact_id} of trial {trial.number} has sha256 {actual}, but the trial recorded "
            f"{expected}: the stored model was changed or damaged; use --retrain to train the design again."
        )
    return None


def _rebuild(
    study: optuna.Study, trial: FrozenTrial, mean: Any, std: Any, num_classes: int
) -> keras.Model:
    """The trial's design behind its normalization layer, initialised with the trial's seed."""
    attrs = trial.user_attrs
    config = XceptionConfig.from_json(
        attrs[TrialAttr.CONFIG], source=f"trial {trial.number} config"
    )
    size = int(attrs.get(TrialAttr.IMAGE_SIZE, read_spec(study).data.image_size))
    keras.utils.set_random_seed(int(attrs.get(TrialAttr.SEED, 0)))
    core = build_model(
        config, (size, size, 3), num_classes, bn_momentum=_training_spec(study, trial).bn_momentum
    )
    return with_normalization(core, mean, std)


def _normalization(study: optuna.Study, trial: FrozenTrial) -> tuple[Any, Any, int]:
    """(mean, std, class count) recorded on the trial, else from the study's data set."""
    attrs = trial.user_attrs
    if {TrialAttr.NORM_MEAN, TrialAttr.NORM_STD, TrialAttr.NUM_CLASSES} <= set(attrs):
        return (
            attrs[TrialAttr.NORM_MEAN],
            attrs[TrialAttr.NORM_STD],
            int(attrs[TrialAttr.NUM_CLASSES]),
        )
    dataset: Dataset = load_spec_dataset(read_spec(study))
    return dataset.mean, dataset.std, dataset.num_classes


def _training_spec(study: optuna.Study, trial: FrozenTrial) -> TrainingSpec:
    """The study's training budget, at the batch the trial trained with (``"auto"`` resolved)."""
    training = read_spec(study).training
    return dataclasses.replace(
        training, batch_size=int(trial.user_attrs.get(TrialAttr.BATCH_SIZE, training.batch_size))
    )


def _card(
    study: optuna.Study,
    trial: FrozenTrial,
    out: Path,
    digest: str,
    weights: Weights,
    retrained: dict[str, Any] | None,
    fmt: str,
    deployment: dict[str, Any],
) -> dict[str, Any]:
    """The model card: design, metrics, provenance, format (with its runtime check) and checksum of one export."""
    attrs = trial.user_attrs
    spec = read_spec(study)
    card: dict[str, Any] = {
        "model_file": out.name,
        "format": fmt,
        **deployment,  # a deployment format's runtime, conversion seconds and check
        "sha256": digest,
        "weights": weights,
        "input": "raw RGB pixels in [0, 255], shape (batch, size, size, 3); output: class probabilities",
        "config": json.loads(attrs[TrialAttr.CONFIG]),
        "metrics": {key: attrs[key] for key in _METRICS if key in attrs},
        "metrics_note": "measured in the trial"
        + ("" if weights == "trained" else "; these weights differ"),
        **{key: attrs.get(key) for key in _RUNTIME},
        "dataset": attrs.get(TrialAttr.DATASET, spec.data.source),
        "image_size": attrs.get(TrialAttr.IMAGE_SIZE, spec.data.image_size),
        "num_classes": attrs.get(TrialAttr.NUM_CLASSES),
        # images per split and class, source, cache key, files left out
        "data": study.user_attrs.get(StudyAttr.DATA),
        # "auto" resolved to the trial's batch
        "training": dataclasses.asdict(_training_spec(study, trial)),
        "seed": attrs.get(TrialAttr.SEED),
        "study": study.study_name,
        "trial": trial.number,
        "storage": storage_description(study),
        "versions": {
            "xsearch": _version("xsearch"),
            "keras": keras.__version__,
            "optuna": optuna.__version__,
        },
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if is_stopped(trial):
        card["stopped_early"] = {
            "at_epoch": attrs[TrialAttr.STOPPED_AT_EPOCH],
            "rule": stop_rule(trial),
            "dominated_by_trial": attrs.get(TrialAttr.STOPPED_BY),
        }
    if spec.transfer is not None:
        card["transfer"] = {
            **dataclasses.asdict(spec.transfer),
            "weights": attrs.get(TrialAttr.WEIGHTS_SOURCE),
            **{
                key: attrs.get(key)
                for key in (
                    TrialAttr.PARAMS_INHERITED,
                    TrialAttr.FROZEN_PARAMS,
                    TrialAttr.FROZEN_EPOCHS,
                )
            },
        }
    if retrained is not None:
        card["retrained_metrics"] = retrained
    return card


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
