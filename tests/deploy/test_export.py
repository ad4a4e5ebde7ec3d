"""The deployment formats (`xsearch.deploy.export`, through `export_trial --format savedmodel|tflite|onnx`): a kept
model converted, checked in its runtime, written atomically.

The study is synthetic (a kept model that was never trained stands for a trained one, as in
`tests/results/test_trial_export_synthetic.py`), so each conversion and its check take a few seconds."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import TINY_DATA, TINY_TRAINING, xsearch_study
from xsearch.cli import main
from xsearch.common.checksum import file_sha256
from xsearch.deploy.export import ExportError, card_path_for, export_sha256
from xsearch.deploy.runtimes import load_predict
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.results.trial_export import export_trial
from xsearch.study.artifacts import artifact_store, keep_trial_model
from xsearch.study.fit import with_normalization
from xsearch.study.record import StudyAttr, TrialAttr
from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec

SPEC = StudySpec(
    name="tiny",
    space="tiny",
    trials=1,
    seed=0,
    data=DataSpec(**TINY_DATA),
    training=TrainingSpec(**TINY_TRAINING, bn_momentum=0.5),
)
MEAN, STD = [127.5, 120.0, 110.0], [64.0, 60.0, 50.0]
NAMES = {"savedmodel": "model", "tflite": "model.tflite", "onnx": "model.onnx"}


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    """A run folder with a study of one COMPLETE trial whose (untrained) model was kept:
    (folder, study, store, model)."""
    folder = tmp_path_factory.mktemp("formats-run")
    study = xsearch_study("tiny", folder / "study.db", SPEC)
    store = artifact_store(folder)
    config = XceptionConfig(middle_repeats=0, width=0.125)
    trial = study.ask()
    keras.utils.set_random_seed(0)
    core = build_model(config, (16, 16, 3), 10, bn_momentum=0.5)
    model = with_normalization(core, np.array(MEAN), np.array(STD))
    keep_trial_model(study, trial, model, store)
    attrs = {
        TrialAttr.CONFIG: config.to_json(),
        TrialAttr.SEED: 0,
        TrialAttr.IMAGE_SIZE: 16,
        TrialAttr.NUM_CLASSES: 10,
        TrialAttr.NORM_MEAN: MEAN,
        TrialAttr.NORM_STD: STD,
        TrialAttr.VAL_ACCURACY: 0.9,
        **model_costs(core),
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [0.9, attrs["params"], 1.0])
    return folder, study, store, model


def _pixels(count, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, 16, 16, 3)).astype(np.float32)


def _leftovers(folder):
    """Temporary names beside the destination (the atomic writes' private folders)."""
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_each_format_is_written_checked_in_its_runtime_and_carded(kept, tmp_path, fmt):
    _, study, store, model = kept
    result = export_trial(study, 0, tmp_path / NAMES[fmt], store, fmt=fmt)
    card = json.loads(card_path_for(result.path).read_text())
    assert result.format == card["format"] == fmt
    assert result.weights == card["weights"] == "trained"
    assert result.path.is_dir() == (fmt == "savedmodel")
    assert result.card_path == tmp_path / "model.card.json"
    check = card["check"]
    assert check["passed"]
    assert check["batch"] == 8
    assert check["tolerance"] == 1e-3
    assert check["max_abs_diff"] < 1e-4
    assert card["runtime"]["name"]
    assert card["runtime"]["version"] != "not installed"
    assert card["conversion_seconds"] > 0
    assert card["sha256"] == result.sha256 == export_sha256(result.path)
    if fmt != "savedmodel":
        assert result.sha256 == file_sha256(result.path)
    pixels = _pixels(5, seed=1)  # another batch than the export's own check
    predicted = load_predict(result.path, fmt, threads=1, batch_size=5)(pixels)
    np.testing.assert_allclose(predicted, model.predict_on_batch(pixels), atol=1e-4)
    assert study.user_attrs[StudyAttr.EXPORTS][-1] | {"exported_at": None} == {
        "path": str(result.path.resolve()),
        "format": fmt,
        "sha256": result.sha256,
        "trial": 0,
        "weights": "trained",
        "exported_at": None,
    }
    assert _leftovers(tmp_path) == []


def test_a_savedmodel_digest_covers_every_file_of_its_folder(kept, tmp_path):
    _, study, store, _ = kept
    result = export_trial(study, 0, tmp_path / "model", store, fmt="savedmodel")
    variables = next((result.path / "variables").iterdir())
    variables.write_bytes(variables.read_bytes() + b"\0")
    assert export_sha256(result.path) != result.sha256


@pytest.mark.parametrize(
    ("fmt", "name", "expected"),
    [
        (
            "onnx",
            "model.keras",
            r"model\.keras: the export must be a \.onnx file, e\.g\. .*model\.onnx",
        ),
        ("tflite", "model.onnx", r"model\.onnx: the export must be a \.tflite file"),
        ("keras", "model.onnx", r"model\.onnx: the export must be a \.keras file"),
        (
            "savedmodel",
            "model.onnx",
            r"model\.onnx: a savedmodel export is a folder, a path without a suffix, e\.g\. .*model\.",
        ),
    ],
)
def test_a_path_without_the_formats_suffix_is_refused(kept, tmp_path, fmt, name, expected):
    _, study, store, _ = kept
    with pytest.raises(ValueError, match=expected):
        export_trial(study, 0, tmp_path / name, store, fmt=fmt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
def test_an_existing_destination_needs_force_and_is_then_replaced_whole(kept, tmp_path, fmt):
    _, study, store, _ = kept
    out = tmp_path / NAMES[fmt]
    first = export_trial(study, 0, out, store, fmt=fmt)
    with pytest.raises(ValueError, match="already exists; pass --force"):
        export_trial(study, 0, out, store, fmt=fmt)
    assert export_sha256(out) == first.sha256
    second = export_trial(study, 0, out, store, force=True, fmt=fmt)
    assert export_sha256(out) == second.sha256 == json.loads(second.card_path.read_text())["sha256"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([out.name, "model.card.json"])


def test_force_replaces_only_a_folder_that_holds_a_savedmodel(kept, tmp_path):
    _, study, store, _ = kept
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"cat")
    with pytest.raises(ValueError, match="holds no SavedModel"):
        export_trial(study, 0, tmp_path / "photos", store, force=True, fmt="savedmodel")
    assert [path.name for path in (tmp_path / "photos").iterdir()] == ["cat.jpg"]


def _broken_exporter(self, filepath, format, **kwargs):  # `format`: Keras' parameter name
    """An exporter that writes part of its output, then fails."""
    if format == "tf_saved_model":
        Path(filepath).mkdir()
        Path(filepath, "saved_model.pb").write_bytes(b"half")
    else:
        Path(filepath).write_bytes(b"half")
    raise RuntimeError("no converter for op FancyConv")


@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
def test_a_failed_conversion_names_the_format_and_reason_and_leaves_nothing(
    kept, tmp_path, monkeypatch, fmt
):
    _, study, store, _ = kept
    monkeypatch.setattr(keras.Model, "export", _broken_exporter)
    with pytest.raises(
        ExportError, match=f"the {fmt} exporter failed.*no converter for op FancyConv"
    ):
        export_trial(study, 0, tmp_path / NAMES[fmt], store, fmt=fmt)
    assert list(tmp_path.iterdir()) == []


def test_a_conversion_whose_outputs_differ_is_refused_and_an_earlier_export_kept(
    kept, tmp_path, monkeypatch
):
    _, study, store, _ = kept
    out = tmp_path / "model.onnx"
    earlier = export_trial(study, 0, out, store, fmt="onnx")

    def shifted(path, fmt, threads, batch_size):
        predict = load_predict(path, fmt, threads, batch_size)
        return lambda batch: predict(batch) + 0.01

    monkeypatch.setattr("xsearch.deploy.export.load_predict", shifted)
    with pytest.raises(
        ExportError,
        match=r"differ from the Keras model's by up to 0\.01 on 8 images \(tolerance 0\.001\)",
    ):
        export_trial(study, 0, out, store, force=True, fmt="onnx")
    assert file_sha256(out) == earlier.sha256
    assert _leftovers(tmp_path) == []


def test_a_file_its_runtime_cannot_run_is_refused_and_leaves_nothing(kept, tmp_path, monkeypatch):
    _, study, store, _ = kept

    def missing(path, fmt, threads, batch_size):
        raise ModuleNotFoundError("No module named 'onnxruntime'")

    monkeypatch.setattr("xsearch.deploy.export.load_predict", missing)
    with pytest.raises(
        ExportError, match=r"does not run in ONNX Runtime.*No module named 'onnxruntime'"
    ):
        export_trial(study, 0, tmp_path / "model.onnx", store, fmt="onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_exports_onnx_and_answers_2_for_a_bad_suffix_or_a_failed_conversion(
    kept, tmp_path, capsys, monkeypatch
):
    folder, *_ = kept
    out = tmp_path / "deploy" / "knee.onnx"
    arguments = [
        "export",
        "--study",
        "tiny",
        "--run-dir",
        str(folder),
        "--trial",
        "0",
        "--format",
        "onnx",
    ]
    assert main([*arguments, "--out", str(out)]) == 0
    assert "(onnx)" in capsys.readouterr().out
    assert json.loads(out.with_name("knee.card.json").read_text())["check"]["passed"]
    assert load_predict(out, "onnx", threads=1, batch_size=2)(_pixels(2, seed=2)).shape == (2, 10)

    assert main([*arguments, "--out", str(tmp_path / "knee.tflite")]) == 2
    assert "must be a .onnx file" in capsys.readouterr().err
    monkeypatch.setattr(keras.Model, "export", _broken_exporter)
    assert main([*arguments, "--out", str(tmp_path / "other.onnx")]) == 2
    assert "onnx exporter failed" in capsys.readouterr().err
    assert not (tmp_path / "other.onnx").exists()
