"""`export_trial` and `load_exported` on a synthetic study, without training: a kept model that was never
trained stands for a trained one, so the file, the card, the sha256 checks and the refusals run in seconds
(`test_trial_export.py` does the same on trained models, in the slow tier)."""

import json
import shutil

import numpy as np
import pytest

from tests.helpers import TINY_DATA, TINY_TRAINING, xsearch_study
from xsearch.deploy.export import card_path_for, load_exported
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device import runtime_info
from xsearch.results.trial_export import export_trial
from xsearch.study.artifacts import artifact_store, keep_trial_model
from xsearch.study.fit import with_normalization
from xsearch.study.record import StudyAttr, TrialAttr
from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec

SPEC = StudySpec(
    name="tiny",
    space="tiny",
    trials=2,
    seed=0,
    data=DataSpec(**TINY_DATA),
    training=TrainingSpec(**TINY_TRAINING, bn_momentum=0.5),
)
MEAN, STD = [127.5, 120.0, 110.0], [64.0, 60.0, 50.0]


def _add(study, store, config, values, keep):
    """A COMPLETE trial recorded as `xsearch run` records one; its freshly initialised model kept when ``keep``."""
    trial = study.ask()
    core = build_model(config, (16, 16, 3), 10, bn_momentum=0.5)
    attrs = {
        TrialAttr.CONFIG: config.to_json(),
        TrialAttr.SEED: trial.number,
        TrialAttr.IMAGE_SIZE: 16,
        TrialAttr.NUM_CLASSES: 10,
        TrialAttr.NORM_MEAN: MEAN,
        TrialAttr.NORM_STD: STD,
        TrialAttr.VAL_ACCURACY: values[0],
        TrialAttr.LATENCY_MS: values[2],
        **model_costs(core),
        **runtime_info(),
    }
    model = with_normalization(core, np.array(MEAN), np.array(STD))
    if keep:
        keep_trial_model(study, trial, model, store)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [values[0], attrs["params"], values[2]])
    return trial.number, model


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A study of two designs, the front: one whose model was kept, one that kept none."""
    folder = tmp_path_factory.mktemp("synthetic-run")
    study = xsearch_study("tiny", folder / "study.db", SPEC)
    store = artifact_store(folder)
    kept, model = _add(
        study, store, XceptionConfig(middle_repeats=0, width=0.25), (0.9, 0, 2.0), keep=True
    )
    bare, _ = _add(
        study, store, XceptionConfig(middle_repeats=0, width=0.125), (0.5, 0, 1.0), keep=False
    )
    return study, store, model, {"kept": kept, "bare": bare}


def test_a_kept_model_is_exported_with_its_weights_and_a_card(synthetic, tmp_path):
    study, store, model, numbers = synthetic
    result = export_trial(study, "accuracy", tmp_path / "best.keras", store)
    trial = study.trials[numbers["kept"]]
    card = json.loads(result.card_path.read_text())
    assert result.weights == "trained"
    assert result.card_path == card_path_for(result.path) == tmp_path / "best.card.json"
    assert result.sha256 == card["sha256"] == trial.user_attrs[TrialAttr.MODEL_SHA256]
    assert card["trial"] == numbers["kept"]
    assert card["study"] == "tiny"
    assert card["storage"].startswith("sqlite:///")
    assert card["config"] == json.loads(trial.user_attrs[TrialAttr.CONFIG])
    assert card["image_size"] == 16
    assert card["metrics"]["val_accuracy"] == 0.9
    assert card["training"]["bn_momentum"] == 0.5
    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    loaded = load_exported(result.path)
    np.testing.assert_allclose(
        loaded.predict_on_batch(pixels), model.predict_on_batch(pixels), rtol=1e-5, atol=1e-6
    )
    assert study.user_attrs[StudyAttr.EXPORTS][-1]["sha256"] == result.sha256


def test_without_a_kept_model_the_export_is_the_architecture_with_the_recorded_normalization(
    synthetic, tmp_path
):
    study, store, _, numbers = synthetic
    result = export_trial(study, numbers["bare"], tmp_path / "arch.keras", store)
    assert result.weights == "none"
    assert "kept no model" in result.message
    card = json.loads(result.card_path.read_text())
    assert card["weights"] == "none"
    assert "these weights differ" in card["metrics_note"]
    model = load_exported(result.path)
    assert model.count_params() == card["metrics"]["params"]
    assert model.output_shape == (None, 10)


def test_refusals_an_existing_file_a_wrong_suffix_a_changed_export_or_artifact(synthetic, tmp_path):
    study, store, _, numbers = synthetic
    out = tmp_path / "model.keras"
    export_trial(study, numbers["kept"], out, store)
    with pytest.raises(ValueError, match=r"already exists.*--force"):
        export_trial(study, numbers["kept"], out, store)
    assert export_trial(study, numbers["kept"], out, store, force=True).path == out
    with pytest.raises(ValueError, match=r"model\.h5: the export must be a \.keras file"):
        export_trial(study, numbers["kept"], tmp_path / "model.h5", store)
    with pytest.raises(ValueError, match="has no trial 7"):
        export_trial(study, 7, tmp_path / "none.keras", store)

    with open(out, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=r"does not match .* in .*model.card.json"):
        load_exported(out)

    copy = shutil.copytree(store._base_path, tmp_path / "copy" / "artifacts")
    artifact = copy / study.trials[numbers["kept"]].user_attrs[TrialAttr.MODEL_ARTIFACT_ID]
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(
        ValueError, match=f"trial {numbers['kept']} has sha256 .* but the trial recorded"
    ):
        export_trial(
            study, numbers["kept"], tmp_path / "bad.keras", artifact_store(tmp_path / "copy")
        )
    assert not (tmp_path / "bad.keras").exists()
    assert not list(tmp_path.glob(".bad.*"))
