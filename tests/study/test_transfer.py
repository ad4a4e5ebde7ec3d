"""Transfer learning: `[transfer]` freezes the inherited layers for the first epochs, then fine-tunes all."""

import json
import re

import keras
import numpy as np
import pytest

from tests.helpers import tiny_study_toml
from xsearch.cli import main
from xsearch.data import Dataset
from xsearch.model.builder import build_model
from xsearch.model.space import SearchSpace
from xsearch.model.weights import IMAGENET_FILES
from xsearch.study.fit import train_and_evaluate, with_normalization
from xsearch.study.repeats import setup_digest
from xsearch.study.setup import prepare_study
from xsearch.study.spec import StudySpec, TrainingSpec, TransferSpec, load_study_spec

DESIGN = {
    "middle_repeats": 0,
    "width": 0.125,
    "depth_multiplier": 1,
    "segments": "depthwise",
    "intermediate_activation": "none",
    "residual": True,
}


def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)  # noqa: E731
    labels = lambda n: rng.integers(0, 4, n)  # noqa: E731
    return Dataset(
        name="random",
        x_train=images(64),
        y_train=labels(64),
        x_val=images(16),
        y_val=labels(16),
        x_test=images(0),
        y_test=labels(0),
        num_classes=4,
        mean=np.full(3, 127.5),
        std=np.full(3, 64.0),
        class_names=[str(c) for c in range(4)],
    )


def _model() -> tuple[keras.Model, list[keras.layers.Layer], keras.layers.Layer]:
    """A tiny design; every weighted layer but the head plays an inherited one."""
    keras.utils.set_random_seed(0)
    core = build_model(
        SearchSpace.from_toml("tiny").decode(DESIGN), (16, 16, 3), 4, bn_momentum=0.5
    )
    inherited = [layer for layer in core.layers if layer.weights and layer.name != "predictions"]
    return (
        with_normalization(core, np.full(3, 127.5), np.full(3, 64.0)),
        inherited,
        core.get_layer("predictions"),
    )


def _weights(layers: list[keras.layers.Layer]) -> list[np.ndarray]:
    return [np.array(w) for layer in layers for w in layer.get_weights()]


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> list[bool]:
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


class _Watch(keras.callbacks.Callback):
    """Per epoch: (epoch, the first inherited layer's ``trainable``, the learning rate, optimizer steps at its start),
    and the weights at the end of each epoch."""

    def __init__(self, inherited, head):
        super().__init__()
        self.layers, self.epochs, self.weights = [*inherited, head], [], []

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.epochs.append(
            (
                epoch,
                self.layers[0].trainable,
                float(optimizer.learning_rate),
                int(optimizer.iterations),
            )
        )

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(_weights(self.layers))


TRANSFER = TransferSpec(frozen_epochs=1, fine_tune_learning_rate=1e-4)


def test_the_frozen_phase_changes_no_inherited_weight_and_the_fine_tune_phase_changes_all():
    model, inherited, head = _model()
    watch = _Watch(inherited, head)
    spec = TrainingSpec(
        epochs=2, batch_size=32, learning_rate=1e-2, schedule="constant", augment=False
    )
    before = _weights([*inherited, head])
    result = train_and_evaluate(
        model,
        _dataset(),
        spec,
        seed=0,
        callbacks=[watch],
        workers=1,
        transfer=TRANSFER,
        inherited=inherited,
    )

    count = len(_weights(inherited))
    frozen = _changed(before, watch.weights[0])
    assert not any(frozen[:count])  # kernels and the BatchNormalization statistics (inference mode)
    assert all(frozen[count:])  # the head's kernel and bias
    tuned = _changed(watch.weights[0], watch.weights[1])
    assert all(tuned)  # the BatchNormalization statistics too
    assert [(epoch, trainable, round(rate, 6)) for epoch, trainable, rate, _ in watch.epochs] == [
        (0, False, 0.01),
        (1, True, 0.0001),
    ]
    assert all(layer.trainable for layer in inherited)
    assert result.epochs == 2
    assert len(result.curves["val_accuracy"]) == 2
    assert len(result.epoch_times_s) == 2
    assert result.frozen_epochs == 1
    assert result.frozen_params == sum(layer.count_params() for layer in inherited)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("initial_epoch", "expected"),
    [
        (
            1,
            [(1, False, 3e-3, 2), (2, True, 1e-4, 0), (3, True, 1e-4, 2)],
        ),  # in the frozen phase: its second epoch
        (
            3,
            [(3, True, 1e-4, 2)],
        ),  # in the fine-tune phase: its second epoch, at that point of its schedule
    ],
)
def test_a_resumed_training_continues_in_the_phase_of_its_epoch(initial_epoch, expected):
    model, inherited, head = _model()
    watch = _Watch(inherited, head)
    spec = TrainingSpec(
        epochs=4, batch_size=32, learning_rate=3e-3, schedule="constant", augment=False
    )
    result = train_and_evaluate(
        model,
        _dataset(),
        spec,
        seed=0,
        callbacks=[watch],
        workers=1,
        initial_epoch=initial_epoch,
        transfer=TransferSpec(frozen_epochs=2),
        inherited=inherited,
    )
    assert [(e, t, round(r, 6), i) for e, t, r, i in watch.epochs] == expected  # 2 steps an epoch
    assert result.epochs == len(expected) == len(result.curves["loss"])
    assert result.frozen_epochs == 2


@pytest.mark.slow
def test_a_retry_restored_from_a_frozen_phase_checkpoint_keeps_the_inherited_weights_frozen(
    tmp_path,
):
    # the worker dies after the first epoch's checkpoint
    class DieAfterFirst(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    spec = TrainingSpec(
        epochs=3, batch_size=32, learning_rate=1e-2, schedule="constant", augment=False
    )
    checkpoint = str(tmp_path / "trial-0.weights.h5")
    model, inherited, _ = _model()
    original = _weights(inherited)
    train_and_evaluate(
        model,
        _dataset(),
        spec,
        seed=0,
        workers=1,
        transfer=TransferSpec(frozen_epochs=2),
        inherited=inherited,
        callbacks=[
            keras.callbacks.ModelCheckpoint(checkpoint, save_weights_only=True),
            DieAfterFirst(),
        ],
    )

    # the retry builds and inherits again, then restores the checkpoint
    retry, inherited, head = _model()
    retry.load_weights(checkpoint)
    watch = _Watch(inherited, head)
    result = train_and_evaluate(
        retry,
        _dataset(),
        spec,
        seed=0,
        workers=1,
        initial_epoch=1,
        callbacks=[watch],
        transfer=TransferSpec(frozen_epochs=2),
        inherited=inherited,
    )
    count = len(original)
    assert [trainable for _, trainable, _, _ in watch.epochs] == [False, True]
    assert result.epochs == 2
    assert not any(_changed(original, watch.weights[0][:count]))  # frozen through both attempts
    assert all(_changed(original, watch.weights[1][:count]))


def test_a_stopping_rule_in_the_frozen_phase_ends_the_training():
    class StopAfterFirst(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    model, inherited, _ = _model()
    spec = TrainingSpec(epochs=3, batch_size=32, augment=False)
    result = train_and_evaluate(
        model,
        _dataset(),
        spec,
        seed=0,
        callbacks=[StopAfterFirst()],
        workers=1,
        transfer=TransferSpec(frozen_epochs=2),
        inherited=inherited,
    )
    assert result.epochs == 1
    assert result.frozen_epochs == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "frozen_epochs = 2",
            "transfer.frozen_epochs must be an integer in [1, training.epochs - 1 = 1]",
        ),
        ("frozen_epochs = 0", "received 0"),
        (
            "frozen_epochs = 1\nfine_tune_learning_rate = 0",
            "transfer.fine_tune_learning_rate must be a number > 0; received 0",
        ),
        ("frozen_epochs = 1\nfine_tune_learning_rate = -1e-4", "received -0.0001"),
        ("fine_tune_rate = 1e-4", "fine_tune_rate"),
    ],
)
def test_bad_transfer_tables_name_the_key_and_what_is_valid(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(tiny_study_toml(weights="x.weights.h5") + f"[transfer]\n{table}\n")
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        load_study_spec(path)
    assert str(path) in str(info.value)


def test_the_transfer_table_is_read_round_trips_and_enters_the_digest_only_when_there(tmp_path):
    path = tmp_path / "transfer.toml"
    path.write_text(
        tiny_study_toml(weights="imagenet")
        + "[transfer]\nfrozen_epochs = 1\nfine_tune_learning_rate = 1e-5\n"
    )
    spec = load_study_spec(path)
    assert spec.transfer == TransferSpec(frozen_epochs=1, fine_tune_learning_rate=1e-5)
    assert StudySpec.from_dict(spec.to_dict()) == spec
    without = StudySpec(
        weights="imagenet", training=spec.training, data=spec.data, space=spec.space
    )
    assert setup_digest(StudySpec()) == "97156f3f5021b2d1"
    digests = {
        setup_digest(s) for s in (spec, without, StudySpec(**{**vars(spec), "transfer": TRANSFER}))
    }
    assert len(digests) == 3


def test_a_transfer_schedule_without_weights_exits_2_before_any_write(tmp_path, capsys):
    path = tmp_path / "no-weights.toml"
    path.write_text(tiny_study_toml() + "[transfer]\nfrozen_epochs = 1\n")
    out = tmp_path / "run"
    with pytest.raises(
        ValueError, match=r"\[transfer\] schedule but no weights.*weights = \"imagenet\""
    ):
        prepare_study(load_study_spec(path), out)
    assert main(["run", "--study", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "[transfer]" in error
    assert "weights" in error
    assert not out.exists()


def test_imagenet_weights_missing_offline_exit_2_before_any_write_naming_the_path(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    path = tmp_path / "imagenet.toml"
    path.write_text(tiny_study_toml(weights="imagenet") + "[transfer]\nfrozen_epochs = 1\n")
    out = tmp_path / "run"
    assert main(["run", "--study", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "keras-home" / "models" / IMAGENET_FILES[True]) in error
    assert not out.exists()
    assert (
        main(
            [
                "run",
                "--study",
                str(path),
                "--out",
                str(out),
                "--weights",
                str(tmp_path / "none.weights.h5"),
            ]
        )
        == 2
    )
    assert "none.weights.h5: no such weights file" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_the_readme_walkthrough_runs_offline_on_a_folder_with_a_weights_file(tmp_path, capsys):
    """`cats-vs-dogs` as the README runs it, with a Keras Xception weights file for ImageNet's and a tiny budget."""
    from PIL import Image

    from xsearch.common.resources import shipped_files
    from xsearch.study.storage import load_study, run_storage

    rng = np.random.default_rng(0)
    for label, channel in (("cat", 0), ("dog", 2)):
        (tmp_path / "PetImages" / label).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 120, (24, 24, 3), dtype=np.uint8)
            pixels[..., channel] += 120
            Image.fromarray(pixels).save(tmp_path / "PetImages" / label / f"{index}.jpg")
    weights = tmp_path / "xception-notop.weights.h5"
    keras.applications.Xception(
        weights=None, include_top=False, input_shape=(71, 71, 3)
    ).save_weights(weights)

    text = shipped_files("studies")["cats-vs-dogs"].read_text()
    for old, new in (
        ("trials = 12", "trials = 1"),
        ("latency_batch = 32", "latency_batch = 1"),
        ("image_size = 150", "image_size = 16"),
        ("epochs = 8", "epochs = 2"),
        ("batch_size = 32", "batch_size = 8"),
        ("frozen_epochs = 3", "frozen_epochs = 1"),
    ):
        assert old in text
        text = text.replace(old, new)
    study_file = tmp_path / "cats-vs-dogs.toml"
    study_file.write_text(text)
    run = tmp_path / "runs" / "cats-vs-dogs"
    assert (
        main(
            [
                "run",
                "--study",
                str(study_file),
                "--data-dir",
                str(tmp_path / "PetImages"),
                "--weights",
                str(weights),
                "--out",
                str(run),
            ]
        )
        == 0
    )
    trial = load_study(run_storage("cats-vs-dogs", out=run), "cats-vs-dogs").trials[0]
    attrs = trial.user_attrs
    assert attrs["frozen_epochs"] == 1
    assert attrs["epochs"] == 2
    assert len(attrs["curves"]["val_accuracy"]) == 2
    # all but the new head
    assert attrs["frozen_params"] == attrs["params_inherited"] == attrs["params"] - 2049 * 2

    assert main(["report", "--study", "cats-vs-dogs", "--out", str(run)]) == 0
    out = tmp_path / "cats-vs-dogs.keras"
    assert (
        main(
            [
                "export",
                "--study",
                "cats-vs-dogs",
                "--run-dir",
                str(run),
                "--pick",
                "accuracy",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    card = json.loads(out.with_name("cats-vs-dogs.card.json").read_text())
    assert card["transfer"]["frozen_epochs"] == 1
    assert card["transfer"]["frozen_params"] == attrs["frozen_params"]
    assert card["weights"] == "trained"
    assert card["num_classes"] == 2
