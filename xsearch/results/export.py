"""`xsearch export`: one design of a study as a standalone model file with a model card beside it.

The default ``.keras`` file is a plain Keras model of built-in layers (raw 0-255 RGB pixels in, class
probabilities out): ``keras.saving.load_model(path)`` loads it, safe mode on, without xsearch installed.
The deployment formats (`xsearch.model.runtimes`: a TensorFlow SavedModel folder, a ``.tflite`` LiteRT
file, an ``.onnx`` file) are written by Keras' exporters, then loaded in their runtime and checked
against the Keras model on a fixed batch before they take the final name. The model card
``<name>.card.json`` records the design, its metrics, where it came from, the format, the check, and
the sha256 of the file (of a folder: `export_sha256`), which `load_exported` checks for ``.keras``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Final, Literal

import keras
import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from xsearch.common.atomic import atomic_folder, atomic_path, check_writable, write_atomic
from xsearch.data import Dataset
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.runtimes import FORMATS, SUFFIXES, ConversionError, convert, load_predict, runtime_version
from xsearch.model.weights import inherit_weights, inherited_layers
from xsearch.results.pareto import pick_trial
from xsearch.study.artifacts import file_sha256, pruned_trials
from xsearch.study.early_stop import stop_reason, stop_rule
from xsearch.study.optuna_private import storage_description
from xsearch.study.record import StudyAttr, TrialAttr, is_stopped, repeat_of
from xsearch.study.setup import load_spec_dataset
from xsearch.study.spec import TrainingSpec, read_spec
from xsearch.study.training import train_and_evaluate, with_normalization

Weights = Literal["trained", "none", "retrained"]
_METRICS = (TrialAttr.VAL_ACCURACY, TrialAttr.VAL_TOP5, TrialAttr.TEST_ACCURACY, TrialAttr.TEST_TOP5, TrialAttr.PARAMS,
            TrialAttr.TRAINABLE_PARAMS, TrialAttr.MACS, TrialAttr.FLOPS, TrialAttr.LATENCY_MS, TrialAttr.LATENCY_P90_MS,
            TrialAttr.LATENCY_BATCH, TrialAttr.THROUGHPUT, TrialAttr.EPOCHS)
_RUNTIME = (TrialAttr.DEVICE, TrialAttr.BACKEND, TrialAttr.BACKEND_VERSION, TrialAttr.KERAS_VERSION, TrialAttr.PRECISION)
EXPORT_FORMATS: Final = ("keras", *FORMATS)
_RUNTIME_NAMES: Final = {"savedmodel": "TensorFlow", "tflite": "LiteRT (ai-edge-litert)", "onnx": "ONNX Runtime"}
CHECK_BATCH: Final = 8
CHECK_TOLERANCE: Final = 1e-3
"""Largest absolute difference allowed between a converted model's class probabilities and the Keras model's. The
runtimes reorder and fuse float32 arithmetic (XNNPACK, oneDNN, fused batch norm): about 1e-8 on xsearch's small
designs, growing with depth and peaked logits but staying near float32 rounding (1e-6 to 1e-5); a wrong conversion
(layout, normalization, batch norm in training mode) moves probabilities by 1e-2 or more. 1e-3 sits between the
two, and at it a top-1 class changes only between near ties."""


class ExportError(ValueError):
    """A deployment export that its exporter could not write, or whose runtime's outputs differ from Keras'."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An exported model: its file, model card, sha256, which weights it holds, and what happened."""

    path: Path
    card_path: Path
    sha256: str
    weights: Weights
    message: str
    format: str = "keras"


def card_path_for(path: Path) -> Path:
    """The model card beside an exported model: ``model.keras`` -> ``model.card.json`` (a SavedModel folder
    ``model`` -> ``model.card.json``)."""
    return path.with_name(f"{path.stem}.card.json")


def export_sha256(path: Path) -> str:
    """The sha256 of an exported file; of a folder (a SavedModel), the sha256 of the lines
    ``<relative path>\\0<file sha256>\\n`` of its files in sorted order of their relative paths."""
    if not path.is_dir():
        return file_sha256(path)
    files = sorted((file.relative_to(path).as_posix(), file) for file in path.rglob("*") if file.is_file())
    return hashlib.sha256("".join(f"{name}\0{file_sha256(file)}\n" for name, file in files).encode()).hexdigest()


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
    runtime on `CHECK_BATCH` seeded images; a failed conversion or check raises `ExportError` and leaves ``out``
    as it was. Raises ValueError for an ``out`` without the format's suffix (``.keras``, ``.tflite``, ``.onnx``; a
    SavedModel is a folder, a path without one), or one that exists unless ``force``.
    """
    out = Path(out)
    _check_out(out, force, fmt)
    chosen = _resolve(study, trial)
    out.parent.mkdir(parents=True, exist_ok=True)
    deployment: dict[str, Any] = {}
    if fmt == "keras":
        with atomic_path(out, suffix=".keras") as temporary:
            kind, message, retrained = _write_model(study, chosen, store, temporary, retrain, weights)
            digest = file_sha256(temporary)
    else:
        with tempfile.TemporaryDirectory(prefix="xsearch-export-") as folder:
            source = Path(folder) / "model.keras"
            kind, message, retrained = _write_model(study, chosen, store, source, retrain, weights)
            digest, deployment = _write_deployment(source, out, fmt)
        message += f"; checked in {deployment['runtime']['name']}: max |diff| {deployment['check']['max_abs_diff']:.2g}"
    card = _card(study, chosen, out, digest, kind, retrained, fmt, deployment)
    card_path = card_path_for(out)
    write_atomic(card_path, json.dumps(card, indent=2, default=str) + "\n")
    entry = {"path": str(out.resolve()), "format": fmt, "sha256": digest, "trial": chosen.number, "weights": kind,
             "exported_at": card["exported_at"]}
    study.set_user_attr(StudyAttr.EXPORTS, [*study.user_attrs.get(StudyAttr.EXPORTS, []), entry])
    is_repeat_number = isinstance(trial, int) and trial != chosen.number
    repeat = f"trial {trial} repeats trial {chosen.number}'s design; " if is_repeat_number else ""
    if is_stopped(chosen) and kind == "trained":
        message += (f"; its training stopped early at epoch {chosen.user_attrs[TrialAttr.STOPPED_AT_EPOCH]} "
                    f"({stop_reason(chosen)}): --retrain trains it fully")
    label = "" if fmt == "keras" else f" ({fmt})"
    return ExportResult(out, card_path, digest, kind, f"{repeat}trial {chosen.number} -> {out}{label}: {message}", fmt)


def load_exported(path: Path) -> keras.Model:
    """Load an exported ``.keras`` model after checking its sha256 against the model card beside it (safe mode on).

    Only ``.keras``: a deployment format loads in its runtime (`xsearch.model.runtimes.load_predict`), after
    comparing `export_sha256` with the card's ``sha256``."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: not a .keras file; give the path of an exported model (name.keras).")
    card_path = card_path_for(path)
    if not card_path.is_file():
        raise FileNotFoundError(f"{path}: its model card {card_path} is missing, so the file cannot be verified.")
    expected = json.loads(card_path.read_text())["sha256"]
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual} does not match {expected} in {card_path}; the file was changed.")
    return keras.saving.load_model(path, safe_mode=True)


def _check_out(out: Path, force: bool, fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}.")
    if fmt == "savedmodel":
        _check_savedmodel_out(out, force)
    else:
        suffix = SUFFIXES.get(fmt, ".keras")
        if out.suffix != suffix:
            raise ValueError(f"{out}: the export must be a {suffix} file, e.g. {out.with_suffix(suffix)}.")
        if out.is_dir():
            raise ValueError(f"{out} is a folder: give the path of a file to write, e.g. {out / f'model{suffix}'}.")
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass --force (force=True) to overwrite it.")
    check_writable(out)


def _check_savedmodel_out(out: Path, force: bool) -> None:
    """A SavedModel is a folder without a suffix; ``force`` replaces only a folder that holds a SavedModel."""
    if out.suffix:
        raise ValueError(f"{out}: a savedmodel export is a folder, a path without a suffix, e.g. {out.with_suffix('')}.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: a savedmodel export is a folder; choose another path.")
    if force and out.is_dir() and not (out / "saved_model.pb").is_file():
        raise ValueError(f"{out} is a folder that holds no SavedModel (saved_model.pb): --force replaces only an "
                         "earlier savedmodel export; choose another path.")


def _resolve(study: optuna.Study, trial: int | str) -> FrozenTrial:
    """The trial of that number (for a repeat, the trial that trained its design), or the pick of
    the front; it must be COMPLETE."""
    if isinstance(trial, str):
        return pick_trial(study, trial)
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == trial), None)
    if found is None:
        raise ValueError(f"study {study.study_name!r} has no trial {trial} (trials 0 to {len(trials) - 1}).")
    if found.state != TrialState.COMPLETE:
        raise ValueError(f"trial {trial} of study {study.study_name!r} is {found.state.name}, not COMPLETE.")
    twin = repeat_of(found)
    return found if twin is None else next(t for t in trials if t.number == twin)


def _write_model(
    study: optuna.Study, trial: FrozenTrial, store: FileSystemArtifactStore | None, path: Path, retrain: bool,
    weights: str | None,
) -> tuple[Weights, str, dict[str, Any] | None]:
    """Write the trial's model to ``path``: (weights kind, message, retraining metrics or None)."""
    if retrain:
        dataset = load_spec_dataset(read_spec(study))
        model = _rebuild(study, trial, dataset.mean, dataset.std, dataset.num_classes)
        spec = read_spec(study)
        weights = weights or (spec.weights if spec.transfer is not None else None)  # the schedule needs them
        inherited = inherited_layers(model, inherit_weights(model, weights)) if weights else []
        result = train_and_evaluate(model, dataset, _training_spec(study, trial), int(trial.user_attrs.get(TrialAttr.SEED, 0)),
                                    transfer=spec.transfer, inherited=inherited)
        model.save(path)
        metrics = {TrialAttr.VAL_ACCURACY: result.val_accuracy, TrialAttr.TEST_ACCURACY: result.test_accuracy}
        return "retrained", f"retrained: val_accuracy {result.val_accuracy:.4f}", metrics
    reason = _download_checked(trial, store, path, pruned=trial.number in pruned_trials(study))
    if reason is None:
        return "trained", "the trial's trained weights (sha256 checked)", None
    model = _rebuild(study, trial, *_normalization(study, trial))
    model.save(path)
    return "none", f"architecture only, NO trained weights: {reason} (use --retrain to train it)", None


def _write_deployment(source: Path, out: Path, fmt: str) -> tuple[str, dict[str, Any]]:
    """Convert the ``.keras`` file ``source`` to ``out`` in ``fmt`` and check it in its runtime: (sha256, card entries).

    Raises `ExportError`, leaving ``out`` as it was, when the exporter fails or the check does not pass."""
    model = keras.saving.load_model(source, safe_mode=True)
    destination = atomic_folder(out) if fmt == "savedmodel" else atomic_path(out, suffix=out.suffix)
    with destination as temporary:
        try:
            seconds = convert(model, fmt, temporary)
        except ConversionError as error:
            raise ExportError(f"{out}: the {fmt} exporter failed, nothing was written: {error}") from error
        try:
            check = _check_in_runtime(model, temporary, fmt)
        except Exception as error:  # the runtime's own failure to load or run the file, whatever its type
            raise ExportError(f"{out}: the {fmt} file does not run in {_RUNTIME_NAMES[fmt]}, nothing was written: "
                              f"{type(error).__name__}: {error}"[:500]) from error
        if not check["passed"]:
            raise ExportError(f"{out}: in {_RUNTIME_NAMES[fmt]} the {fmt} model's probabilities differ from the Keras "
                              f"model's by up to {check['max_abs_diff']:.3g} on {check['batch']} images (tolerance "
                              f"{check['tolerance']:g}): the conversion is wrong, nothing was written.")
        digest = export_sha256(temporary)
    runtime = {"name": _RUNTIME_NAMES[fmt], "version": runtime_version(fmt)}
    return digest, {"runtime": runtime, "conversion_seconds": round(seconds, 3), "check": check}


def _check_in_runtime(model: keras.Model, path: Path, fmt: str) -> dict[str, Any]:
    """The model file at ``path`` run in its runtime against ``model`` on `CHECK_BATCH` seeded 0-255 pixel images."""
    batch = np.random.default_rng(0).integers(0, 256, (CHECK_BATCH, *model.input_shape[1:])).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(batch))
    actual = np.asarray(load_predict(path, fmt, threads=os.cpu_count() or 1, batch_size=CHECK_BATCH)(batch))
    diff = float(np.max(np.abs(actual - expected))) if actual.shape == expected.shape else math.inf
    return {"batch": CHECK_BATCH, "max_abs_diff": diff, "tolerance": CHECK_TOLERANCE, "passed": diff <= CHECK_TOLERANCE}


def _download_checked(trial: FrozenTrial, store: FileSystemArtifactStore | None, path: Path, pruned: bool) -> str | None:
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


def _rebuild(study: optuna.Study, trial: FrozenTrial, mean: Any, std: Any, num_classes: int) -> keras.Model:
    """The trial's design behind its normalization layer, initialised with the trial's seed."""
    attrs = trial.user_attrs
    config = XceptionConfig.from_json(attrs[TrialAttr.CONFIG], source=f"trial {trial.number} config")
    size = int(attrs.get(TrialAttr.IMAGE_SIZE, read_spec(study).data.image_size))
    keras.utils.set_random_seed(int(attrs.get(TrialAttr.SEED, 0)))
    core = build_model(config, (size, size, 3), num_classes, bn_momentum=_training_spec(study, trial).bn_momentum)
    return with_normalization(core, mean, std)


def _normalization(study: optuna.Study, trial: FrozenTrial) -> tuple[Any, Any, int]:
    """(mean, std, class count) recorded on the trial, else from the study's data set."""
    attrs = trial.user_attrs
    if {TrialAttr.NORM_MEAN, TrialAttr.NORM_STD, TrialAttr.NUM_CLASSES} <= set(attrs):
        return attrs[TrialAttr.NORM_MEAN], attrs[TrialAttr.NORM_STD], int(attrs[TrialAttr.NUM_CLASSES])
    dataset: Dataset = load_spec_dataset(read_spec(study))
    return dataset.mean, dataset.std, dataset.num_classes


def _training_spec(study: optuna.Study, trial: FrozenTrial) -> TrainingSpec:
    """The study's training budget, at the batch the trial trained with (``"auto"`` resolved)."""
    training = read_spec(study).training
    return dataclasses.replace(training, batch_size=int(trial.user_attrs.get(TrialAttr.BATCH_SIZE, training.batch_size)))


def _card(
    study: optuna.Study, trial: FrozenTrial, out: Path, digest: str, weights: Weights,
    retrained: dict[str, Any] | None, fmt: str, deployment: dict[str, Any],
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
        "metrics_note": "measured in the trial" + ("" if weights == "trained" else "; these weights differ"),
        **{key: attrs.get(key) for key in _RUNTIME},
        "dataset": attrs.get(TrialAttr.DATASET, spec.data.source),
        "image_size": attrs.get(TrialAttr.IMAGE_SIZE, spec.data.image_size),
        "num_classes": attrs.get(TrialAttr.NUM_CLASSES),
        "data": study.user_attrs.get(StudyAttr.DATA),  # images per split and class, source, cache key, files left out
        "training": dataclasses.asdict(_training_spec(study, trial)),  # "auto" resolved to the trial's batch
        "seed": attrs.get(TrialAttr.SEED),
        "study": study.study_name,
        "trial": trial.number,
        "storage": storage_description(study),
        "versions": {"xsearch": _version("xsearch"), "keras": keras.__version__, "optuna": optuna.__version__},
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if is_stopped(trial):
        card["stopped_early"] = {"at_epoch": attrs[TrialAttr.STOPPED_AT_EPOCH], "rule": stop_rule(trial),
                                 "dominated_by_trial": attrs.get(TrialAttr.STOPPED_BY)}
    if spec.transfer is not None:
        card["transfer"] = {**dataclasses.asdict(spec.transfer), "weights": attrs.get(TrialAttr.WEIGHTS_SOURCE),
                            **{key: attrs.get(key) for key in (TrialAttr.PARAMS_INHERITED, TrialAttr.FROZEN_PARAMS,
                                                               TrialAttr.FROZEN_EPOCHS)}}
    if retrained is not None:
        card["retrained_metrics"] = retrained
    return card


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
