"""`xsearch export`: one design of a study as a standalone ``.keras`` file with a model card beside it.

The file is a plain Keras model of built-in layers (raw 0-255 RGB pixels in, class probabilities
out): ``keras.saving.load_model(path)`` loads it, safe mode on, without xsearch installed. Its
model card ``<name>.card.json`` records the design, its metrics, where it came from, and the
file's sha256, which `load_exported` checks.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import keras
import optuna
from optuna.artifacts import download_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from xsearch.study.artifacts import ARTIFACT_ATTR, SHA256_ATTR, file_sha256, pruned_trials
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.data import Dataset, load_dataset
from xsearch.study.repeats import DUPLICATE_ATTR, is_repeat
from xsearch.study.early_stop import STOPPED_ATTR, STOPPED_BY_ATTR, is_stopped
from xsearch.results.pareto import pick_trial
from xsearch.study.spec import DataSpec, TrainingSpec
from xsearch.study.training import train_and_evaluate, with_normalization
from xsearch.model.weights import inherit_weights

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

Weights = Literal["trained", "none", "retrained"]
EXPORTS_ATTR = "exports"
"""Study user attr: one entry per export (path, sha256, trial, weights, exported_at)."""
_METRICS = ("val_accuracy", "val_top5", "test_accuracy", "test_top5", "params", "trainable_params", "macs",
            "flops", "latency_ms", "latency_p90_ms", "latency_batch", "throughput", "epochs")
_RUNTIME = ("device", "backend", "backend_version", "keras_version", "precision")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An exported model: its file, model card, sha256, which weights it holds, and what happened."""

    path: Path
    card_path: Path
    sha256: str
    weights: Weights
    message: str


def card_path_for(path: Path) -> Path:
    """The model card beside an exported model: ``model.keras`` -> ``model.card.json``."""
    return path.with_name(f"{path.stem}.card.json")


def export_trial(
    study: optuna.Study,
    trial: int | str,
    out: Path,
    store: ArtifactStore | None,
    force: bool = False,
    retrain: bool = False,
    weights: str | None = None,
) -> ExportResult:
    """Write the design of ``trial`` (a trial number or a pick: accuracy, params, latency, knee) to ``out``.

    Weights: the trial's kept model (``store``) when it is there, its sha256 checked against the
    trial's ``model_sha256`` (a mismatch raises ValueError); with ``retrain`` a new training with
    the study's data and budget, from ``weights`` (``imagenet`` or a path) when given; else none
    (the architecture only, freshly initialised). Files
    are written to a temporary name and renamed, so ``out`` is never partial. Raises ValueError for
    an ``out`` without the ``.keras`` suffix, or one that exists unless ``force``.
    """
    out = Path(out)
    _check_out(out, force)
    chosen = _resolve(study, trial)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.stem}.{uuid.uuid4().hex}.tmp.keras")
    try:
        kind, message, retrained = _write_model(study, chosen, store, temporary, retrain, weights)
        digest = file_sha256(temporary)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    card = _card(study, chosen, out, digest, kind, retrained)
    card_path = card_path_for(out)
    _write_json(card_path, card)
    entry = {"path": str(out.resolve()), "sha256": digest, "trial": chosen.number, "weights": kind,
             "exported_at": card["exported_at"]}
    study.set_user_attr(EXPORTS_ATTR, [*study.user_attrs.get(EXPORTS_ATTR, []), entry])
    is_repeat_number = isinstance(trial, int) and trial != chosen.number
    repeat = f"trial {trial} repeats trial {chosen.number}'s design; " if is_repeat_number else ""
    if is_stopped(chosen) and kind == "trained":
        message += (f"; its training stopped early at epoch {chosen.user_attrs[STOPPED_ATTR]} (trial "
                    f"{chosen.user_attrs.get(STOPPED_BY_ATTR)} dominated it): --retrain trains it fully")
    return ExportResult(out, card_path, digest, kind, f"{repeat}trial {chosen.number} -> {out}: {message}")


def load_exported(path: Path) -> keras.Model:
    """Load an exported model after checking its sha256 against the model card beside it (safe mode on)."""
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


def _check_out(out: Path, force: bool) -> None:
    if out.suffix != ".keras":
        raise ValueError(f"{out}: the export must be a .keras file, e.g. {out.with_suffix('.keras')}.")
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass --force (force=True) to overwrite it.")


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
    if is_repeat(found):
        return next(t for t in trials if t.number == found.user_attrs[DUPLICATE_ATTR])
    return found


def _write_model(
    study: optuna.Study, trial: FrozenTrial, store: ArtifactStore | None, path: Path, retrain: bool,
    weights: str | None,
) -> tuple[Weights, str, dict[str, Any] | None]:
    """Write the trial's model to ``path``: (weights kind, message, retraining metrics or None)."""
    if retrain:
        dataset = _study_dataset(study)
        model = _rebuild(study, trial, dataset.mean, dataset.std, dataset.num_classes)
        if weights:
            inherit_weights(model, weights)
        result = train_and_evaluate(model, dataset, _training_spec(study, trial), int(trial.user_attrs.get("seed", 0)))
        model.save(path)
        metrics = {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy}
        return "retrained", f"retrained: val_accuracy {result.val_accuracy:.4f}", metrics
    reason = _download_checked(trial, store, path, pruned=trial.number in pruned_trials(study))
    if reason is None:
        return "trained", "the trial's trained weights (sha256 checked)", None
    model = _rebuild(study, trial, *_normalization(study, trial))
    model.save(path)
    return "none", f"architecture only, NO trained weights: {reason} (use --retrain to train it)", None


def _download_checked(trial: FrozenTrial, store: ArtifactStore | None, path: Path, pruned: bool) -> str | None:
    """Download the trial's kept model to ``path`` and check its sha256; else why there is none."""
    artifact_id = trial.user_attrs.get(ARTIFACT_ATTR)
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
    actual, expected = file_sha256(path), trial.user_attrs.get(SHA256_ATTR)
    if actual != expected:
        raise ValueError(
            f"artifact {artifact_id} of trial {trial.number} has sha256 {actual}, but the trial recorded "
            f"{expected}: the stored model was changed or damaged; use --retrain to train the design again."
        )
    return None


def _rebuild(study: optuna.Study, trial: FrozenTrial, mean: Any, std: Any, num_classes: int) -> keras.Model:
    """The trial's design behind its normalization layer, initialised with the trial's seed."""
    raw = _spec(study)
    config = XceptionConfig.from_json(trial.user_attrs["config"], source=f"trial {trial.number} config")
    size = int(trial.user_attrs.get("image_size", raw["data"]["image_size"]))
    keras.utils.set_random_seed(int(trial.user_attrs.get("seed", 0)))
    core = build_model(config, (size, size, 3), num_classes, bn_momentum=_training_spec(study, trial).bn_momentum)
    return with_normalization(core, mean, std)


def _normalization(study: optuna.Study, trial: FrozenTrial) -> tuple[Any, Any, int]:
    """(mean, std, class count) recorded on the trial, else from the study's data set."""
    attrs = trial.user_attrs
    if {"norm_mean", "norm_std", "num_classes"} <= set(attrs):
        return attrs["norm_mean"], attrs["norm_std"], int(attrs["num_classes"])
    dataset = _study_dataset(study)
    return dataset.mean, dataset.std, dataset.num_classes


def _spec(study: optuna.Study) -> dict[str, Any]:
    text = study.user_attrs.get("xsearch_spec")
    if text is None:
        raise ValueError(f"study {study.study_name!r} has no 'xsearch_spec' user attr: it was not made by xsearch run.")
    return json.loads(text)


def _training_spec(study: optuna.Study, trial: FrozenTrial) -> TrainingSpec:
    """The study's training budget, at the batch the trial trained with (``"auto"`` resolved)."""
    training = TrainingSpec(**_spec(study)["training"])
    return dataclasses.replace(training, batch_size=int(trial.user_attrs.get("batch_size", training.batch_size)))


def _study_dataset(study: optuna.Study) -> Dataset:
    """The study's data set, loaded (from the cache when it is there) as `xsearch run` did."""
    raw = _spec(study)
    data = DataSpec(**raw["data"])
    return load_dataset(data.source, data.image_size, data_dir=data.data_dir, seed=int(raw["seed"]),
                        val_fraction=data.val_fraction, test_fraction=data.test_fraction, max_train=data.max_train)


def _card(
    study: optuna.Study, trial: FrozenTrial, out: Path, digest: str, weights: Weights,
    retrained: dict[str, Any] | None,
) -> dict[str, Any]:
    """The model card: design, metrics, provenance and checksum of one export."""
    attrs = trial.user_attrs
    raw = _spec(study)
    card: dict[str, Any] = {
        "model_file": out.name,
        "sha256": digest,
        "weights": weights,
        "input": "raw RGB pixels in [0, 255], shape (batch, size, size, 3); output: class probabilities",
        "config": json.loads(attrs["config"]),
        "metrics": {key: attrs[key] for key in _METRICS if key in attrs},
        "metrics_note": "measured in the trial" + ("" if weights == "trained" else "; these weights differ"),
        **{key: attrs.get(key) for key in _RUNTIME},
        "dataset": attrs.get("dataset", raw["data"]["source"]),
        "image_size": attrs.get("image_size", raw["data"]["image_size"]),
        "num_classes": attrs.get("num_classes"),
        "training": dataclasses.asdict(_training_spec(study, trial)),  # "auto" resolved to the trial's batch
        "seed": attrs.get("seed"),
        "study": study.study_name,
        "trial": trial.number,
        "storage": _storage_url(study),
        "versions": {"xsearch": _version("xsearch"), "keras": keras.__version__, "optuna": optuna.__version__},
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if is_stopped(trial):
        card["stopped_early"] = {"at_epoch": attrs[STOPPED_ATTR], "dominated_by_trial": attrs.get(STOPPED_BY_ATTR)}
    if retrained is not None:
        card["retrained_metrics"] = retrained
    return card


def _storage_url(study: optuna.Study) -> str:
    """The study's storage URL, password hidden (or the storage class for non-RDB storages)."""
    storage = getattr(study._storage, "_backend", study._storage)
    url = getattr(storage, "url", None)
    if url is None:
        return type(storage).__name__
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary name beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(temporary, path)
