"""Trained models kept as Optuna artifacts, and the prune policy (front + top-k by val_accuracy)."""

import optuna
import pytest

from xsearch import XceptionConfig, build_model
from xsearch.common.checksum import file_sha256
from xsearch.study.artifacts import artifact_store, keep_trial_model, prune_artifacts
from xsearch.study.record import StudyAttr, TrialAttr

FAIL = optuna.trial.TrialState.FAIL


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(XceptionConfig(middle_repeats=0, width=0.125), (16, 16, 3), 10)


@pytest.fixture
def study(tmp_path):
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        study_name="s",
        directions=["maximize", "minimize", "minimize"],
    )


def _trial(study, store, model, values, state=None):
    trial = study.ask()
    if values is not None:
        trial.set_user_attr("val_accuracy", values[0])
    keep_trial_model(study, trial, model, store)
    if state is not None:
        study.tell(trial, state=state)
    elif values is not None:
        study.tell(trial, values)
    return trial.number


def _stored(store, study, number):
    return store._get_filepath(
        study.trials[number].user_attrs[TrialAttr.MODEL_ARTIFACT_ID]
    ).is_file()


def test_keep_trial_model_uploads_the_file_and_records_id_and_sha256(tmp_path, study, tiny_model):
    store = artifact_store(tmp_path / "run")
    number = _trial(study, store, tiny_model, (0.5, 10, 1.0))
    attrs = study.trials[number].user_attrs
    (meta,) = optuna.artifacts.get_all_artifact_meta(study.trials[number], storage=study._storage)
    assert meta.artifact_id == attrs[TrialAttr.MODEL_ARTIFACT_ID]
    assert meta.filename == f"trial-{number}.keras"
    copy = tmp_path / "copy.keras"
    optuna.artifacts.download_artifact(
        artifact_store=store, file_path=str(copy), artifact_id=attrs[TrialAttr.MODEL_ARTIFACT_ID]
    )
    assert file_sha256(copy) == attrs[TrialAttr.MODEL_SHA256]


def test_prune_keeps_the_front_and_the_top_k_and_never_touches_running_trials(
    tmp_path, study, tiny_model
):
    store = artifact_store(tmp_path / "run")
    best = _trial(study, store, tiny_model, (0.90, 100, 1.0))  # front (best accuracy)
    second = _trial(study, store, tiny_model, (0.85, 200, 2.0))  # dominated, 2nd accuracy: top-2
    small = _trial(study, store, tiny_model, (0.50, 10, 0.5))  # front (fewest params)
    third = _trial(study, store, tiny_model, (0.60, 300, 3.0))  # dominated, 3rd accuracy
    worse = _trial(study, store, tiny_model, (0.40, 50, 5.0))  # dominated by `small`
    failed = _trial(study, store, tiny_model, (0.99, 1, 0.1), state=FAIL)
    running = _trial(study, store, tiny_model, None)

    assert prune_artifacts(study, store, keep_top=2) == [third, worse, failed]
    assert study.user_attrs[StudyAttr.PRUNED_MODELS] == [third, worse, failed]
    assert [
        n for n in (best, second, small, third, worse, failed, running) if _stored(store, study, n)
    ] == [best, second, small, running]
    assert prune_artifacts(study, store, keep_top=2) == []  # nothing new to prune

    # dominates `best`; pushes `second` out of top-2
    newer = _trial(study, store, tiny_model, (0.95, 90, 0.9))
    assert prune_artifacts(study, store, keep_top=2) == [second]
    # `best` is still top-2
    assert all(_stored(store, study, n) for n in (best, small, newer, running))
