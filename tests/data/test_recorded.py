"""What a study trained on is recorded: on the study (`record_data`), in the run folder (unreadable files), in
`xsearch report` and in the exported model's card."""

from __future__ import annotations

import json

import numpy as np
import optuna
from PIL import Image

from tests.helpers import xsearch_study
from xsearch.data import load_dataset
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.results.report import report_html, report_summary
from xsearch.results.trial_export import export_trial
from xsearch.study.artifacts import artifact_store, keep_trial_model
from xsearch.study.fit import with_normalization
from xsearch.study.record import StudyAttr, TrialAttr
from xsearch.study.setup import UNREADABLE_LIST, record_data
from xsearch.study.spec import DataSpec, StudySpec


def folder_with_a_broken_file(root):
    for name, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        (root / name).mkdir(parents=True)
        for i in range(30):
            Image.new("RGB", (12, 12), colour).save(root / name / f"{i}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def test_the_data_is_recorded_on_the_study_in_the_run_folder_and_in_the_report(tmp_path):
    dataset = load_dataset(
        "folder",
        8,
        data_dir=folder_with_a_broken_file(tmp_path / "images"),
        cache_dir=tmp_path / "c",
    )
    study = optuna.create_study(study_name="pets", directions=["maximize", "minimize", "minimize"])
    run = tmp_path / "run"
    record_data(study, dataset, run)
    data = study.user_attrs[StudyAttr.DATA]
    assert data == json.loads(json.dumps(dataset.summary()))
    images = data["images"]
    assert list(images) == ["train", "val", "test"]
    assert sum(images.values()) == 60
    assert data["class_names"] == ["cat", "dog"]
    assert {split: sum(counts) for split, counts in data["class_counts"].items()} == images
    assert data["unreadable_files"] == 1
    assert data["ignored_files"] == 0
    assert data["source"] == "folder"
    assert data["image_size"] == 8
    assert data["cache_key"] == dataset.cache_key
    assert (
        run / UNREADABLE_LIST
    ).read_text() == f"{tmp_path.resolve() / 'images' / 'dog' / 'broken.jpg'}\n"

    summary = report_summary(study).splitlines()[-1]
    counts = f"train {images['train']}, val {images['val']}, test {images['test']} images"
    assert summary.startswith(
        f"data: folder:{tmp_path.resolve() / 'images'} 8x8, {counts}, 2 classes"
    )
    assert "1 unreadable files left out" in summary
    assert dataset.cache_key in summary
    assert counts in report_html(study)


def test_the_card_of_an_export_holds_the_image_counts(tmp_path):
    dataset = load_dataset("digits", 8, cache_dir=tmp_path / "cache", max_train=200)
    spec = StudySpec(name="digits", space="tiny", data=DataSpec(image_size=8, max_train=200))
    study = xsearch_study("digits", tmp_path / "study.db", spec)
    record_data(study, dataset, tmp_path)
    assert not (tmp_path / UNREADABLE_LIST).exists()  # nothing left out, nothing listed
    config = XceptionConfig(middle_repeats=0, width=0.125)
    model = with_normalization(build_model(config, (8, 8, 3), 10), np.zeros(3), np.ones(3))
    trial = study.ask()
    store = artifact_store(tmp_path)
    keep_trial_model(study, trial, model, store)
    for key, value in {
        TrialAttr.CONFIG: config.to_json(),
        TrialAttr.IMAGE_SIZE: 8,
        TrialAttr.NUM_CLASSES: 10,
        TrialAttr.NORM_MEAN: [0.0] * 3,
        TrialAttr.NORM_STD: [1.0] * 3,
    }.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [0.5, 1000, 1.0])
    card = json.loads(
        export_trial(study, trial.number, tmp_path / "m.keras", store).card_path.read_text()
    )
    assert card["data"]["images"] == {"train": 200, "val": 180, "test": 180}
    assert card["data"]["class_names"] == [str(d) for d in range(10)]
    assert card["data"]["source"] == "digits"
