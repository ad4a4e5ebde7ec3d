"""The decoded-dataset cache: hits skip decoding, keys separate settings, writes are atomic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

import xsearch.data.folder
from xsearch.data import load_dataset


def image_folder(root):
    for label, colour in enumerate([(200, 0, 0), (0, 200, 0)]):
        (root / "train" / f"c{label}").mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (10, 10), colour).save(root / "train" / f"c{label}" / f"{i}.png")
    return root


def test_second_load_reads_cache_without_decoding(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images")
    first = load_dataset("folder", 12, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2)

    def no_decode(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(xsearch.data.folder, "decode_image", no_decode)
    second = load_dataset("folder", 12, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2)
    for field in dataclasses.fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b and type(a) is type(b)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".npz"] == []  # no temp files left
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("folder", 12, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2, seed=1)


def test_cache_key_covers_settings(tmp_path):
    for kwargs in ({}, {"seed": 1}, {"val_fraction": 0.2}, {"max_train": 50}, {"image_size": 9}):
        load_dataset("digits", **{"image_size": 8, **kwargs}, cache_dir=tmp_path)
    load_dataset("digits", 8, cache_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 5 and all(n.startswith("digits-") and n.endswith(".npz") for n in names)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path / "env-cache"))
    load_dataset("digits", 8)
    assert len(list((tmp_path / "env-cache").glob("digits-8px-*.npz"))) == 1
