"""The "arrays" source (a folder of .npy files or one .npz) and the block-wise .npy/.npz reading and writing."""

from __future__ import annotations

import numpy as np
import pytest

import xsearch.data.arrays
from xsearch.data import load_dataset
from xsearch.data.arrays import read_arrays
from xsearch.data.npy import HEADER_BYTES, NpyFile, array_blocks, array_shape


def coloured(labels: list[int], side: int = 6) -> np.ndarray:
    """uint8 NHWC images whose pixels are all (label * 40, 10, 200)."""
    x = np.zeros((len(labels), side, side, 3), np.uint8)
    x[..., 0] = np.array(labels, np.uint8)[:, None, None] * 40
    x[..., 1], x[..., 2] = 10, 200
    return x


def test_npy_files_with_their_own_splits_and_class_names(tmp_path):
    y_train, y_val, y_test = [0, 1, 2] * 4, [2, 1], [0]
    for split, labels in (("train", y_train), ("val", y_val), ("test", y_test)):
        np.save(tmp_path / f"x_{split}.npy", coloured(labels))
        np.save(tmp_path / f"y_{split}.npy", np.array(labels, np.int64))
    np.save(tmp_path / "class_names.npy", np.array(["ant", "bee", "cat"]))
    ds = load_dataset("arrays", 6, data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert ds.name == f"arrays:{tmp_path.resolve()}"
    assert ds.class_names == ["ant", "bee", "cat"]
    assert ds.y_train.tolist() == y_train
    assert ds.y_val.tolist() == y_val
    assert ds.y_test.tolist() == y_test
    np.testing.assert_array_equal(ds.x_val, coloured(y_val))
    assert ds.summary()["images"] == {"train": 12, "val": 2, "test": 1}


def test_one_npz_of_float_nchw_images_and_one_hot_labels(tmp_path, monkeypatch):
    monkeypatch.setattr(xsearch.data.arrays, "BLOCK_ROWS", 4)  # several blocks per array
    labels = np.arange(20) % 2
    nhwc = coloured(labels.tolist()).astype(np.float32) / 255
    np.savez_compressed(
        tmp_path / "mine.npz", x_train=nhwc.transpose(0, 3, 1, 2), y_train=np.eye(2)[labels]
    )
    ds = load_dataset(
        "arrays",
        6,
        data_dir=tmp_path / "mine.npz",
        cache_dir=tmp_path / "cache",
        layout="NCHW",
        val_fraction=0.25,
        test_fraction=0.25,
    )
    assert ds.class_names == ["0", "1"]
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (10, 5, 5)
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        np.testing.assert_array_equal(x, coloured(y.tolist()))  # 0..1 floats scaled back to 0..255


def test_float_0_255_and_grey_images_are_made_uint8_rgb(tmp_path):
    np.save(tmp_path / "x_train.npy", np.full((10, 5, 7), 99.6, np.float64))  # (N, H, W): grey
    np.save(tmp_path / "y_train.npy", np.arange(10) % 2)
    raw = read_arrays(tmp_path, 4)
    images = np.concatenate([block.images for block in raw.train.blocks()])
    assert images.shape == (10, 4, 4, 3)
    assert images.dtype == np.uint8
    assert (images == 100).all()


@pytest.mark.parametrize(
    ("arrays", "layout", "message"),
    [
        ({"y_train": None}, "NHWC", "needs x_train and y_train .*it holds x_train"),
        ({"x_val": np.zeros((2, 6, 6, 3), np.uint8)}, "NHWC", "has only one of x_val and y_val"),
        (
            {"x_train": np.zeros((4, 3, 6, 6), np.uint8)},
            "NHWC",
            r"must have 1 or 3 channels; shape \(4, 3, 6, 6\) has 6",
        ),
        ({}, "NCWH", "layout must be one of NHWC, NCHW"),
        (
            {"x_train": np.zeros((4, 6, 6, 3), np.int64)},
            "NHWC",
            "images must be uint8 .* or float .*found int64",
        ),
        (
            {"x_train": np.full((4, 6, 6, 3), 300.0)},
            "NHWC",
            r"must be in \[0, 1\] or \[0, 255\]; found values in \[300.0, 300.0\]",
        ),
        ({"x_train": np.full((4, 6, 6, 3), np.nan)}, "NHWC", "NaN or infinite"),
        ({"y_train": np.zeros(3, np.int32)}, "NHWC", "3 labels for 4 images"),
        ({"y_train": np.array([0, 1, -1, 0])}, "NHWC", "labels must be >= 0; found -1"),
        (
            {"y_train": np.array([0.0, 1.0, 1.0, 0.0])},
            "NHWC",
            r"integer class indices .*found float64 \(4,\)",
        ),
        (
            {"y_train": np.full((4, 2), 0.5)},
            "NHWC",
            "each row must hold one 1 and zeros; soft labels",
        ),
        ({"class_names": np.array(["a"])}, "NHWC", "at least 2 .*the largest label is 1"),
        (
            {"x_val": np.zeros((2, 6, 6, 3)), "y_val": np.zeros(2, np.int32)},
            "NHWC",
            "give every split the same dtype",
        ),
    ],
)
def test_bad_arrays_are_refused_with_what_would_be_valid(tmp_path, arrays, layout, message):
    good = {"x_train": np.zeros((4, 6, 6, 3), np.uint8), "y_train": np.array([0, 1, 0, 1])}
    np.savez(
        tmp_path / "data.npz",
        **{key: value for key, value in {**good, **arrays}.items() if value is not None},
    )
    with pytest.raises(ValueError, match=message):
        read_arrays(tmp_path / "data.npz", 6, layout)


def test_missing_arrays_source_says_what_to_pass(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"nowhere does not exist; pass a folder of x_train.npy, y_train.npy",
    ):
        load_dataset("arrays", 6, data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    with pytest.raises(
        ValueError, match=r"folder .* needs x_train and y_train .*found no such .npy files"
    ):
        load_dataset("arrays", 6, data_dir=tmp_path, cache_dir=tmp_path / "cache")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk.npz is not an .npz file"):
        read_arrays(tmp_path / "junk.npz", 6)


def test_npy_file_rows_at_any_positions_holes_left_out_and_blocks_read_back_from_npy_and_npz(
    tmp_path,
):
    # row i is all i
    rows = np.arange(8, dtype=np.uint8)[:, None, None].repeat(2, axis=1).repeat(3, axis=2)
    file = NpyFile(tmp_path / "x.npy", 10, (2, 3), np.uint8)
    file.write(np.array([9, 0, 1, 2, 5]), rows[:5])
    file.write(np.array([], np.int64), rows[:0])
    file.write(np.array([6, 7, 3]), rows[5:])
    with pytest.raises(
        ValueError, match=r"rows must be uint8 of shape \(n, \(2, 3\)\), one per position"
    ):
        file.write(np.array([4]), np.zeros((1, 3, 2), np.uint8))
    assert file.close(np.array([4, 8])) == 8  # rows 4 and 8 were never written: left out
    whole = np.load(tmp_path / "x.npy")
    assert (tmp_path / "x.npy").stat().st_size == HEADER_BYTES + whole.nbytes
    assert whole[:, 0, 0].tolist() == [1, 2, 3, 7, 4, 5, 6, 0]
    np.savez_compressed(tmp_path / "a.npz", x=whole, f=np.asfortranarray(np.zeros((4, 3))))
    for source in ((tmp_path / "x.npy", None), (tmp_path / "a.npz", "x")):
        assert array_shape(source) == ((8, 2, 3), np.dtype(np.uint8))
        blocks = list(array_blocks(source, 3))
        assert [len(b) for b in blocks] == [3, 3, 2]
        np.testing.assert_array_equal(np.concatenate(blocks), whole)
    with pytest.raises(ValueError, match="Fortran order"):
        list(array_blocks((tmp_path / "a.npz", "f"), 2))
    with pytest.raises(ValueError, match="has no 'z' array; it holds x, f"):
        array_shape((tmp_path / "a.npz", "z"))
