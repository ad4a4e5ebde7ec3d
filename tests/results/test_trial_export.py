"""`export_trial`: a study's design as a standalone .keras file with a model card, loadable without xsearch."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import optuna
import pytest

from tests.helpers import TINY_DATA, TINY_TRAINING
from xsearch import XceptionConfig, build_model
from xsearch.common.checksum import file_sha256
from xsearch.data import load_dataset
from xsearch.deploy.export import load_exported
from xsearch.model.costs import model_costs
from xsearch.model.device import runtime_info
from xsearch.results.pareto import PICKS, pick_trial
from xsearch.results.trial_export import export_trial
from xsearch.study.artifacts import artifact_store, keep_trial_model
from xsearch.study.fit import train_and_evaluate, with_normalization
from xsearch.study.record import StudyAttr, TrialAttr
from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec

SPEC = StudySpec(
    name="tiny",
    space="tiny",
    trials=3,
    seed=0,
    data=DataSpec(**TINY_DATA),
    training=TrainingSpec(**TINY_TRAINING, learning_rate=3e-3, bn_momentum=0.5),
)  # the tiny study's settings; val accuracy ~0.75-0.85


def _dataset():
    data = SPEC.data
    return load_dataset(
        data.source,
        data.image_size,
        seed=SPEC.seed,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        max_train=data.max_train,
    )


def _add_trial(study, store, dataset, config, latency_ms, train):
    """One trial as `xsearch run` records it; trained and kept when ``train``, else given poor values."""
    trial = study.ask()
    seed = SPEC.seed + trial.number
    core = build_model(
        config, (16, 16, 3), dataset.num_classes, bn_momentum=SPEC.training.bn_momentum
    )
    record = {
        "config": config.to_json(),
        "seed": seed,
        "dataset": dataset.name,
        "image_size": 16,
        "latency_ms": latency_ms,
        **model_costs(core),
        **runtime_info(),
    }
    if train:
        model = with_normalization(core, dataset.mean, dataset.std)
        result = train_and_evaluate(model, dataset, SPEC.training, seed, workers=1)
        record.update(
            val_accuracy=result.val_accuracy,
            test_accuracy=result.test_accuracy,
            norm_mean=dataset.mean.tolist(),
            norm_std=dataset.std.tolist(),
            num_classes=dataset.num_classes,
        )
        keep_trial_model(study, trial, model, store)
    else:
        record.update(val_accuracy=0.05)
    for key, value in record.items():
        trial.set_user_attr(key, value)
    # dominated
    values = (
        [record["val_accuracy"], record["params"], latency_ms] if train else [0.05, 10**7, 100.0]
    )
    study.tell(trial, values)
    return trial.number


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished study of two trained, kept designs (a trade-off front) and one never trained."""
    folder = tmp_path_factory.mktemp("run")
    study = optuna.create_study(
        study_name=SPEC.name,
        storage=f"sqlite:///{folder / 'study.db'}",
        directions=["maximize", "minimize", "minimize"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params", "latency_ms"])
    study.set_user_attr("xsearch_spec", json.dumps(dataclasses.asdict(SPEC), default=str))
    store = artifact_store(folder)
    dataset = _dataset()
    wide = _add_trial(
        study, store, dataset, XceptionConfig(middle_repeats=0, width=0.25), 1.0, train=True
    )
    narrow = _add_trial(
        study, store, dataset, XceptionConfig(middle_repeats=0, width=0.125), 2.0, train=True
    )
    plain = XceptionConfig(middle_repeats=0, width=0.125, residual=False)
    untrained = _add_trial(study, store, dataset, plain, 9.0, train=False)
    return study, store, dataset, {"wide": wide, "narrow": narrow, "untrained": untrained}


@pytest.mark.slow
def test_each_pick_and_a_trial_number_export_the_trained_model_with_a_card(tmp_path, run):
    study, store, _, numbers = run
    exports_before = len(study.user_attrs.get(StudyAttr.EXPORTS, []))
    for choice in (*PICKS, numbers["narrow"]):
        result = export_trial(study, choice, tmp_path / f"{choice}.keras", store)
        number = choice if isinstance(choice, int) else pick_trial(study, choice).number
        trial = study.trials[number]
        card = json.loads(result.card_path.read_text())
        assert result.weights == "trained"
        assert result.card_path == tmp_path / f"{choice}.card.json"
        assert (
            result.sha256
            == file_sha256(result.path)
            == card["sha256"]
            == trial.user_attrs["model_sha256"]
        )
        assert card["trial"] == number
        assert card["study"] == "tiny"
        assert card["storage"].startswith("sqlite:///")
        assert card["config"] == json.loads(trial.user_attrs["config"])
        assert card["metrics"]["val_accuracy"] == trial.user_attrs["val_accuracy"]
        assert card["backend"]
        assert card["device"]
        assert card["image_size"] == 16
        assert card["versions"]["keras"]
    picked = {pick_trial(study, "params").number, pick_trial(study, "latency").number}
    assert picked == {numbers["narrow"], numbers["wide"]}
    exports = study.user_attrs[StudyAttr.EXPORTS]
    assert len(exports) == exports_before + 5
    assert exports[-1]["sha256"] == result.sha256


@pytest.mark.slow
def test_an_existing_path_needs_force_and_the_suffix_must_be_keras(tmp_path, run):
    study, store, _, _ = run
    out = tmp_path / "model.keras"
    export_trial(study, "knee", out, store)
    with pytest.raises(ValueError, match=f"{out} already exists.*--force"):
        export_trial(study, "knee", out, store)
    assert export_trial(study, "knee", out, store, force=True).path == out
    with pytest.raises(ValueError, match=r"model\.h5: the export must be a \.keras file"):
        export_trial(study, "knee", tmp_path / "model.h5", store)


LOADER = """
import json, sys
sys.meta_path = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
try:
    import xsearch
except ImportError:
    pass
else:
    raise SystemExit("xsearch is importable here: " + xsearch.__file__)
import keras, numpy as np
model = keras.saving.load_model(sys.argv[1])
split = np.load(sys.argv[2])
accuracy = float(np.mean(np.argmax(model.predict(split["x"].astype("float32"), verbose=0), -1) == split["y"]))
print("RESULT" + json.dumps({"accuracy": accuracy}))
"""


@pytest.mark.slow
def test_the_export_loads_without_xsearch_and_reproduces_the_val_accuracy(tmp_path, run):
    study, store, dataset, _ = run
    result = export_trial(study, "accuracy", tmp_path / "best.keras", store)
    np.savez(tmp_path / "val.npz", x=dataset.x_val, y=dataset.y_val)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, str(result.path), str(tmp_path / "val.npz")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = json.loads(done.stdout.split("RESULT")[-1])["accuracy"]
    recorded = pick_trial(study, "accuracy").user_attrs["val_accuracy"]
    difference = abs(accuracy - recorded)
    print(
        f"val accuracy: recorded {recorded:.6f}, exported model {accuracy:.6f}, |difference| {difference:.2g}"
    )
    assert difference < 1e-6  # float32 rounding of the recorded metric
    assert (
        load_exported(result.path).count_params()
        == json.loads(result.card_path.read_text())["metrics"]["params"]
    )


@pytest.mark.slow
def test_without_a_kept_model_the_export_is_the_architecture_only(tmp_path, run):
    study, store, _, numbers = run
    result = export_trial(study, numbers["untrained"], tmp_path / "arch.keras", store)
    assert result.weights == "none"
    assert "NO trained weights" in result.message
    assert "kept no model" in result.message
    card = json.loads(result.card_path.read_text())
    assert card["weights"] == "none"
    assert "these weights differ" in card["metrics_note"]
    model = load_exported(result.path)
    # the normalization constants are not weights
    assert model.count_params() == card["metrics"]["params"]

    empty = artifact_store(tmp_path / "elsewhere")
    missing = export_trial(study, numbers["wide"], tmp_path / "missing.keras", empty)
    assert missing.weights == "none"
    assert "missing from the artifact store" in missing.message


@pytest.mark.slow
def test_a_changed_artifact_or_export_is_refused(tmp_path, run):
    study, store, _, numbers = run
    copy = shutil.copytree(store._base_path, tmp_path / "artifacts")
    artifact = copy / study.trials[numbers["wide"]].user_attrs[TrialAttr.MODEL_ARTIFACT_ID]
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(
        ValueError, match=f"trial {numbers['wide']} has sha256 .* but the trial recorded"
    ):
        export_trial(study, numbers["wide"], tmp_path / "bad.keras", artifact_store(tmp_path))
    assert not (tmp_path / "bad.keras").exists()
    assert not list(tmp_path.glob(".bad.*"))

    result = export_trial(study, numbers["wide"], tmp_path / "good.keras", store)
    with open(result.path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=r"does not match .* in .*good.card.json"):
        load_exported(result.path)
    with pytest.raises(ValueError, match=r"not a .keras file"):
        load_exported(tmp_path / "good.card.json")


@pytest.mark.slow
def test_retrain_trains_the_design_again(tmp_path, run):
    study, store, _, numbers = run
    result = export_trial(
        study, numbers["untrained"], tmp_path / "again.keras", store, retrain=True
    )
    card = json.loads(result.card_path.read_text())
    assert result.weights == "retrained"
    assert 0 <= card["retrained_metrics"]["val_accuracy"] <= 1
    load_exported(result.path)
