"""The "folder" source: `train/<class>/*.{jpg,jpeg,png}` plus optional `val/` and `test/` folders."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from xsearch.data.dataset import RawData
from xsearch.data.images import decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")
MAX_LISTED = 10


def read_folder(root: Path, image_size: int) -> RawData:
    """Decodes every image under `root` to RGB (image_size, image_size); classes are train/'s sorted subfolders."""
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} does not exist; pass the folder that holds train/<class>/.")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"Image folder {root} has no train/ folder; expected {train_dir}/<class>/*.jpg|jpeg|png "
            "and optionally val/<class>/ and test/<class>/."
        )
    class_names = _class_folders(train_dir)
    files = {
        split: _list_images(root / split, class_names)
        for split in SPLITS
        if split == "train" or (root / split).is_dir()
    }
    paths = [path for items in files.values() for path, _ in items]
    images = _decode_all(paths, image_size)
    splits, start = {}, 0
    for split, items in files.items():
        labels = np.array([label for _, label in items], np.int32)
        splits[split] = (images[start : start + len(items)], labels)
        start += len(items)
    return RawData(
        train=splits["train"], val=splits.get("val"), test=splits.get("test"), class_names=class_names
    )


def _class_folders(split_dir: Path) -> list[str]:
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ValueError(f"Folder {split_dir} has no class folders; expected {split_dir}/<class>/*.jpg|jpeg|png.")
    return names


def _list_images(split_dir: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """(path, label) of every image in `split_dir`, whose class folders must be among `class_names`."""
    present = _class_folders(split_dir)
    extra = sorted(set(present) - set(class_names))
    if extra:
        raise ValueError(
            f"Folder {split_dir} has class folders that train/ lacks: {extra}; valid classes are {class_names}."
        )
    items = []
    for name in present:
        images = sorted(
            p for p in (split_dir / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise ValueError(
                f"Class folder {split_dir / name} has no images; expected files ending in "
                f"{', '.join(IMAGE_SUFFIXES)} (any case)."
            )
        items += [(path, class_names.index(name)) for path in images]
    return items


def _decode_all(paths: list[Path], size: int) -> np.ndarray:
    """Decodes `paths` with a thread pool; raises ValueError listing the files that could not be read."""
    out = np.empty((len(paths), size, size, 3), np.uint8)

    def decode(i: int) -> bool:
        try:
            out[i] = decode_image(paths[i], size)
        except (OSError, SyntaxError, ValueError):
            return False
        return True

    with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4)) as pool:
        ok = list(pool.map(decode, range(len(paths))))
    bad = [str(path) for path, good in zip(paths, ok) if not good]
    if bad:
        more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise ValueError(
            f"{len(bad)} image file(s) could not be decoded: {', '.join(bad[:MAX_LISTED])}{more}; "
            "remove or replace them (valid: readable JPEG or PNG files)."
        )
    return out
