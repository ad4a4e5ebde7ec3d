"""A Keras model as a standalone model file in a format, with its model card beside it.

The default ``.keras`` file is a plain Keras model of built-in layers (raw 0-255 RGB pixels in, class
probabilities out): ``keras.saving.load_model(path)`` loads it, safe mode on, without xsearch installed.
The deployment formats (`xsearch.deploy.runtimes`: a TensorFlow SavedModel folder, a ``.tflite`` LiteRT
file, an ``.onnx`` file) are written by Keras' exporters, then loaded in their runtime and checked
against the Keras model on a fixed batch before they take the final name. The model card
``<name>.card.json`` records the sha256 of the file (of a folder: `export_sha256`), which `load_exported`
checks for ``.keras``; what else it records is the caller's (`xsearch.results.trial_export`: a trial's design,
metrics and provenance).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import keras
import numpy as np

from xsearch.common.atomic import atomic_folder, atomic_path, check_writable, write_atomic
from xsearch.common.checksum import file_sha256
from xsearch.deploy.runtimes import (
    FORMATS,
    SUFFIXES,
    ConversionError,
    convert,
    load_predict,
    runtime_version,
)

EXPORT_FORMATS: Final = ("keras", *FORMATS)
_RUNTIME_NAMES: Final = {
    "savedmodel": "TensorFlow",
    "tflite": "LiteRT (ai-edge-litert)",
    "onnx": "ONNX Runtime",
}
CHECK_BATCH: Final = 8
CHECK_TOLERANCE: Final = 1e-3
"""Largest absolute difference allowed between a converted model's class probabilities and the Keras model's. The
runtimes reorder and fuse float32 arithmetic (XNNPACK, oneDNN, fused batch norm): about 1e-8 on xsearch's small
designs, growing with depth and peaked logits but staying near float32 rounding (1e-6 to 1e-5); a wrong conversion
(layout, normalization, batch norm in training mode) moves probabilities by 1e-2 or more. 1e-3 sits between the
two, and at it a top-1 class changes only between near ties."""

Written = TypeVar("Written")


class ExportError(ValueError):
    """A deployment export that its exporter could not write, or whose runtime's outputs differ from Keras'."""


def card_path_for(path: Path) -> Path:
    """The model card beside an exported model: ``model.keras`` -> ``model.card.json`` (a SavedModel folder
    ``model`` -> ``model.card.json``)."""
    return path.with_name(f"{path.stem}.card.json")


def export_sha256(path: Path) -> str:
    """The sha256 of an exported file; of a folder (a SavedModel), the sha256 of the lines
    ``<relative path>\\0<file sha256>\\n`` of its files in sorted order of their relative paths."""
    if not path.is_dir():
        return file_sha256(path)
    files = sorted(
        (file.relative_to(path).as_posix(), file) for file in path.rglob("*") if file.is_file()
    )
    return hashlib.sha256(
        "".join(f"{name}\0{file_sha256(file)}\n" for name, file in files).encode()
    ).hexdigest()


def check_out(out: Path, force: bool, fmt: str) -> None:
    """Raise ValueError for an unknown ``fmt``, an ``out`` without the format's suffix (``.keras``, ``.tflite``,
    ``.onnx``; a SavedModel is a folder, a path without one), or one that exists unless ``force``."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}."
        )
    if fmt == "savedmodel":
        _check_savedmodel_out(out, force)
    else:
        suffix = SUFFIXES.get(fmt, ".keras")
        if out.suffix != suffix:
            raise ValueError(
                f"{out}: the export must be a {suffix} file, e.g. {out.with_suffix(suffix)}."
            )
        if out.is_dir():
            raise ValueError(
                f"{out} is a folder: give the path of a file to write, e.g. {out / f'model{suffix}'}."
            )
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass --force (force=True) to overwrite it.")
    check_writable(out)


def write_export(
    out: Path, fmt: str, write_keras: Callable[[Path], Written]
) -> tuple[Written, str, dict[str, Any]]:
    """Write a model to ``out`` in ``fmt``, under a temporary name renamed at the end, so that ``out`` is never partial.

    ``write_keras(path)`` writes the model as a ``.keras`` file: ``out`` itself for ``keras``; for a deployment format
    a file that is converted to ``out`` and checked in its runtime on `CHECK_BATCH` seeded images (a failed
    conversion or check raises `ExportError` and leaves ``out`` as it was). Returns what ``write_keras`` returned,
    the sha256 of ``out`` (`export_sha256`), and the card's entries of a deployment format (its runtime, conversion
    seconds and check; empty for ``keras``).
    """
    if fmt == "keras":
        with atomic_path(out, suffix=".keras") as temporary:
            written = write_keras(temporary)
            digest = file_sha256(temporary)
        return written, digest, {}
    with tempfile.TemporaryDirectory(prefix="xsearch-export-") as folder:
        source = Path(folder) / "model.keras"
        written = write_keras(source)
        digest, deployment = _write_deployment(source, out, fmt)
    return written, digest, deployment


def write_card(out: Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as the model card of the export ``out`` (`card_path_for`), atomically; returns its path."""
    card_path = card_path_for(out)
    write_atomic(card_path, json.dumps(card, indent=2, default=str) + "\n")
    return card_path


def load_exported(path: Path) -> keras.Model:
    """Load an exported ``.keras`` model after checking its sha256 against the model card beside it (safe mode on).

    Only ``.keras``: a deployment format loads in its runtime (`xsearch.deploy.runtimes.load_predict`), after
    comparing `export_sha256` with the card's ``sha256``."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(
            f"{path}: not a .keras file; give the path of an exported model (name.keras)."
        )
    card_path = card_path_for(path)
    if not card_path.is_file():
        raise FileNotFoundError(
            f"{path}: its model card {card_path} is missing, so the file cannot be verified."
        )
    expected = json.loads(card_path.read_text())["sha256"]
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"{path}: sha256 {actual} does not match {expected} in {card_path}; the file was changed."
        )
    return keras.saving.load_model(path, safe_mode=True)


def _check_savedmodel_out(out: Path, force: bool) -> None:
    """A SavedModel is a folder without a suffix; ``force`` replaces only a folder that holds a SavedModel."""
    if out.suffix:
        raise ValueError(
            f"{out}: a savedmodel export is a folder, a path without a suffix, e.g. {out.with_suffix('')}."
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: a savedmodel export is a folder; choose another path.")
    if force and out.is_dir() and not (out / "saved_model.pb").is_file():
        raise ValueError(
            f"{out} is a folder that holds no SavedModel (saved_model.pb): --force replaces only an "
            "earlier savedmodel export; choose another path."
        )


def _write_deployment(source: Path, out: Path, fmt: str) -> tuple[str, dict[str, Any]]:
    """Convert the ``.keras`` file ``source`` to ``out`` in ``fmt`` and check it in its runtime: (sha256, card entries).

    Raises `ExportError`, leaving ``out`` as it was, when the exporter fails or the check does not pass."""
    model = keras.saving.load_model(source, safe_mode=True)
    destination = atomic_folder(out) if fmt == "savedmodel" else atomic_path(out, suffix=out.suffix)
    with destination as temporary:
        try:
            seconds = convert(model, fmt, temporary)
        except ConversionError as error:
            raise ExportError(
                f"{out}: the {fmt} exporter failed, nothing was written: {error}"
            ) from error
        try:
            check = _check_in_runtime(model, temporary, fmt)
        # the runtime's own failure to load or run the file, whatever its type
        except Exception as error:
            raise ExportError(
                f"{out}: the {fmt} file does not run in {_RUNTIME_NAMES[fmt]}, nothing was written: "
                f"{type(error).__name__}: {error}"[:500]
            ) from error
        if not check["passed"]:
            raise ExportError(
                f"{out}: in {_RUNTIME_NAMES[fmt]} the {fmt} model's probabilities differ from the Keras "
                f"model's by up to {check['max_abs_diff']:.3g} on {check['batch']} images (tolerance "
                f"{check['tolerance']:g}): the conversion is wrong, nothing was written."
            )
        digest = export_sha256(temporary)
    runtime = {"name": _RUNTIME_NAMES[fmt], "version": runtime_version(fmt)}
    return digest, {"runtime": runtime, "conversion_seconds": round(seconds, 3), "check": check}


def _check_in_runtime(model: keras.Model, path: Path, fmt: str) -> dict[str, Any]:
    """The model file at ``path`` run in its runtime against ``model`` on `CHECK_BATCH` seeded 0-255 pixel images."""
    batch = (
        np.random.default_rng(0)
        .integers(0, 256, (CHECK_BATCH, *model.input_shape[1:]))
        .astype(np.float32)
    )
    expected = np.asarray(model.predict_on_batch(batch))
    actual = np.asarray(
        load_predict(path, fmt, threads=os.cpu_count() or 1, batch_size=CHECK_BATCH)(batch)
    )
    diff = float(np.max(np.abs(actual - expected))) if actual.shape == expected.shape else math.inf
    return {
        "batch": CHECK_BATCH,
        "max_abs_diff": diff,
        "tolerance": CHECK_TOLERANCE,
        "passed": diff <= CHECK_TOLERANCE,
    }
