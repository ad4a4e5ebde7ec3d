"""The "folder" source on real files the tests write: both layouts, validation folder names, refused layouts,
image modes and formats, and unreadable files (skipped and reported, or refused above the threshold)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import tiny_study_toml
from xsearch.cli import main
from xsearch.data import load_dataset
from xsearch.data.folder import IMAGE_SUFFIXES, read_folder, split_folders
from xsearch.data.images import decode_image

RED, GREEN, BLUE = (220, 30, 30), (30, 220, 30), (30, 30, 220)
FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".webp": "WEBP",
}


def write_images(
    folder: Path, colour: tuple[int, int, int], count: int, suffixes=(".jpg", ".PNG", ".bmp")
) -> None:
    """`count` flat images of `colour` in `folder`, cycling through `suffixes` (the format follows the suffix)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        suffix = suffixes[i % len(suffixes)]
        Image.new("RGB", (24 + i, 16), colour).save(
            folder / f"{i}{suffix}", format=FORMATS[suffix.lower()]
        )


def classes_folder(root: Path, count: int = 10) -> Path:
    write_images(root / "red", RED, count)
    write_images(root / "green", GREEN, count)
    return root


def colours_match_labels(x: np.ndarray, y: np.ndarray) -> bool:
    """Green images are labelled 0 (classes sort as green, red), red ones 1."""
    brightest = np.asarray(x).reshape(len(x), -1, 3).mean(axis=1).argmax(axis=1)
    return bool(np.all(np.where(brightest == 1, 0, 1) == y))


def test_class_folders_at_the_root_are_split_by_the_seed(tmp_path):
    root = classes_folder(tmp_path / "images")
    # images in a subfolder count too
    write_images(root / "red" / "more", RED, 2, suffixes=(".GIF", ".webp"))
    ds = load_dataset(
        "folder",
        8,
        data_dir=root,
        cache_dir=tmp_path / "cache",
        val_fraction=0.25,
        test_fraction=0.25,
    )
    assert ds.class_names == ["green", "red"]
    assert ds.num_classes == 2
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (10, 6, 6)
    assert sorted(np.concatenate([ds.y_train, ds.y_val, ds.y_test]).tolist()) == [0] * 10 + [1] * 12
    for split in ("train", "val", "test"):
        assert colours_match_labels(*ds.split(split))
    other = load_dataset(
        "folder",
        8,
        data_dir=root,
        cache_dir=tmp_path / "cache",
        val_fraction=0.25,
        test_fraction=0.25,
        seed=1,
    )
    assert not np.array_equal(ds.x_val, other.x_val) or not np.array_equal(ds.y_val, other.y_val)


@pytest.mark.parametrize("name", ["val", "validation", "valid", "Validation"])
def test_a_validation_folder_is_used_whatever_its_name(tmp_path, name):
    root = tmp_path / "images"
    classes_folder(root / "train", count=6)
    write_images(root / name / "red", RED, 3)
    write_images(root / "test" / "green", GREEN, 2)
    assert split_folders(root) == {
        "train": root / "train",
        "val": root / name,
        "test": root / "test",
    }
    ds = load_dataset("folder", 8, data_dir=root, cache_dir=tmp_path / "cache")
    assert ds.y_val.tolist() == [1, 1, 1]
    assert ds.y_test.tolist() == [0, 0]
    assert len(ds.y_train) == 12
    assert ds.summary()["images"] == {"train": 12, "val": 3, "test": 2}
    assert ds.summary()["class_counts"] == {"train": [6, 6], "val": [0, 3], "test": [2, 0]}


def test_a_folder_beside_train_that_is_no_split_is_refused_with_the_valid_names(tmp_path):
    root = tmp_path / "images"
    classes_folder(root / "train", count=2)
    write_images(root / "extra" / "red", RED, 1)
    with pytest.raises(
        ValueError,
        match=r"has train/ and also extra/: beside train/ only val/, validation/, valid/, test/",
    ):
        load_dataset("folder", 8, data_dir=root, cache_dir=tmp_path / "cache")
    (root / "extra" / "red" / "0.jpg").unlink()
    (root / "extra" / "red").rmdir()
    (root / "extra").rename(root / "val")
    write_images(root / "valid" / "red", RED, 1)
    with pytest.raises(ValueError, match="has val/ and valid/: keep one validation folder"):
        load_dataset("folder", 8, data_dir=root, cache_dir=tmp_path / "cache")
    tests_only = tmp_path / "tests-only"
    write_images(tests_only / "test" / "red", RED, 1)
    with pytest.raises(ValueError, match="has test/ but no train/ folder"):
        load_dataset("folder", 8, data_dir=tests_only, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not [
        p for p in (tmp_path / "cache").iterdir() if p.is_dir()
    ]


def test_structure_errors_name_the_folder(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="missing does not exist"):
        load_dataset("folder", 8, data_dir=tmp_path / "missing", cache_dir=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty has no class folders \\(none\\)"):
        load_dataset("folder", 8, data_dir=tmp_path / "empty", cache_dir=cache)
    classes_folder(tmp_path / "one-up" / "PetImages")
    with pytest.raises(
        ValueError,
        match=f"only PetImages/; if it holds the class folders, pass {tmp_path}/one-up/PetImages",
    ):
        load_dataset("folder", 8, data_dir=tmp_path / "one-up", cache_dir=cache)
    root = classes_folder(tmp_path / "images")
    (root / "owl").mkdir()
    (root / "owl" / "notes.txt").write_text("no images here")
    with pytest.raises(
        ValueError,
        match=r"owl has no images; expected files ending in .jpg, .jpeg, .png, .bmp, .gif, .webp",
    ):
        load_dataset("folder", 8, data_dir=root, cache_dir=cache)
    split = tmp_path / "split"
    classes_folder(split / "train", count=2)
    write_images(split / "val" / "fox", BLUE, 1)
    with pytest.raises(
        ValueError, match=r"val has class folders that the training folder lacks: \['fox'\]"
    ):
        load_dataset("folder", 8, data_dir=split, cache_dir=cache)
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("folder", 8, cache_dir=cache)


def test_grey_cmyk_rgba_palette_and_16_bit_images_decode_to_rgb(tmp_path):
    images = {
        "grey.png": Image.new("L", (9, 7), 90),
        "cmyk.jpg": Image.new("CMYK", (9, 7), (0, 255, 255, 0)),  # red in print colours
        "rgba.png": Image.new("RGBA", (9, 7), (10, 200, 30, 128)),
        "deep.png": Image.new("I;16", (9, 7), 65535),
        "palette.gif": Image.new("RGB", (9, 7), BLUE).quantize(4),
    }
    images["palette.gif"].info["transparency"] = 0
    for name, image in images.items():
        image.save(tmp_path / name)
    decoded = {name: decode_image(tmp_path / name, 4) for name in images}
    assert all(x.shape == (4, 4, 3) and x.dtype == np.uint8 for x in decoded.values())
    assert (decoded["grey.png"] == 90).all()
    assert (decoded["rgba.png"] == (10, 200, 30)).all()
    assert (decoded["cmyk.jpg"][..., 0] > 200).all()
    assert (decoded["cmyk.jpg"][..., 1:] < 50).all()
    assert (decoded["deep.png"] == 255).all()
    assert (decoded["palette.gif"] == BLUE).all()


def test_a_truncated_jpeg_and_thumbs_db_are_skipped_and_reported(tmp_path, capsys):
    root = classes_folder(tmp_path / "images", count=20)
    whole = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(whole, format="JPEG")
    (root / "red" / "cut.jpg").write_bytes(whole.getvalue()[:300])
    (root / "green" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    (root / "green" / ".hidden.jpg").write_bytes(b"resource fork")
    raw = read_folder(root, 8)
    assert len(raw.train.files) == 41
    assert sorted(Path(f).name for f in raw.ignored) == [".hidden.jpg", "Thumbs.db"]

    ds = load_dataset("folder", 8, data_dir=root, cache_dir=tmp_path / "cache")
    err = capsys.readouterr().err
    assert "left out 1 of 41 image files that could not be decoded (2.4%)" in err
    assert "cut.jpg" in err
    assert "left out 2 files that are not images" in err
    assert "Thumbs.db" in err
    assert ds.unreadable == [str(root.resolve() / "red" / "cut.jpg")]
    assert ds.ignored == 2
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 40
    assert ds.summary()["unreadable_files"] == 1
    assert ds.summary()["ignored_files"] == 2
    listing = tmp_path / "cache" / ds.cache_key / "unreadable.txt"
    assert listing.read_text() == f"{root.resolve() / 'red' / 'cut.jpg'}\n"
    assert (
        load_dataset("folder", 8, data_dir=root, cache_dir=tmp_path / "cache").unreadable
        == ds.unreadable
    )
    assert capsys.readouterr().err == ""  # said once, when the cache was built


def test_more_unreadable_files_than_the_threshold_are_refused_naming_them(tmp_path):
    root = classes_folder(tmp_path / "images", count=10)
    for i in range(2):
        (root / "red" / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    cache = tmp_path / "cache"
    with pytest.raises(
        ValueError,
        match=r"2 of 22 image files \(9.1%\) could not be decoded, more than "
        r"data.max_bad_fraction = 0.05 allows: .*broken0.jpg, .*broken1.jpg",
    ) as error:
        load_dataset("folder", 8, data_dir=root, cache_dir=cache)
    listing = Path(str(error.value).split("The full list is in ")[1].split(". ")[0])
    assert listing.parent == cache
    assert listing.read_text().count("broken") == 2
    assert [p for p in cache.iterdir() if p.is_dir()] == []  # no cache, no staging folder left
    ds = load_dataset("folder", 8, data_dir=root, cache_dir=cache, max_bad_fraction=0.1)
    assert len(ds.unreadable) == 2
    assert not listing.exists()
    with pytest.raises(ValueError, match=r"more than data.max_bad_fraction = 0.0 allows"):
        # checked on every load
        load_dataset("folder", 8, data_dir=root, cache_dir=cache, max_bad_fraction=0.0)


def test_every_image_suffix_in_any_case_is_read(tmp_path):
    root = tmp_path / "images"
    write_images(
        root / "a", RED, 12, suffixes=(*IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES))
    )
    write_images(root / "b", GREEN, 2)
    raw = read_folder(root, 8)
    assert len(raw.train.files) == 14
    assert raw.ignored == []


def test_the_command_line_refuses_too_many_unreadable_files_with_exit_2_and_leaves_the_run_folder_alone(
    tmp_path, capsys
):
    root = classes_folder(tmp_path / "images", count=5)
    (root / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    study = tmp_path / "s.toml"
    study.write_text(
        tiny_study_toml(trials=1, seed_trials=[], data={"source": "folder", "max_train": None})
    )
    status = main(
        ["run", "--study", str(study), "--data-dir", str(root), "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert (
        "1 of 11 image files (9.1%) could not be decoded, more than data.max_bad_fraction = 0.05 allows"
        in err
    )
    assert "broken.jpg" in err
    assert not (tmp_path / "run").exists()
