"""The trial's Keras callbacks: the epoch checkpoint."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from xsearch.study.keras_callbacks import Checkpoint, checkpoint_path, trial_checkpoint_files


def _model() -> keras.Model:
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_a_checkpoint_keeps_the_last_two_epochs_of_its_trial_only(tmp_path):
    model = _model()
    checkpoint = Checkpoint(tmp_path, 7)
    checkpoint.set_model(model)
    other = checkpoint_path(tmp_path, 8, 1)
    other.write_bytes(b"another trial's")
    for epoch in range(4):
        checkpoint.on_epoch_end(epoch)
    assert trial_checkpoint_files(tmp_path, 7) == [
        checkpoint_path(tmp_path, 7, 3),
        checkpoint_path(tmp_path, 7, 4),
    ]
    assert other.exists()
    restored = _model()
    restored.load_weights(str(checkpoint_path(tmp_path, 7, 4)))
    for saved, loaded in zip(model.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, loaded)


def test_a_save_that_fails_leaves_no_partial_file_and_the_last_whole_checkpoint(
    tmp_path, monkeypatch
):
    model = _model()
    checkpoint = Checkpoint(tmp_path, 0)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0)

    def torn(path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"\x89HDF")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save_weights", torn)
    with pytest.raises(OSError, match="No space"):
        checkpoint.on_epoch_end(1)
    assert trial_checkpoint_files(tmp_path, 0) == [checkpoint_path(tmp_path, 0, 1)]
