"""The "folder" source: image files in one folder per class.

Two layouts: ``ROOT/<class>/`` (val and test carved off by the seed), or ``ROOT/train/<class>/`` with
optional ``val/`` (or ``validation/``, ``valid/``) and ``test/`` beside it, each with class folders
that train/ has. Images may sit in subfolders of their class folder. Files ending in `IMAGE_SUFFIXES`
(any case) are images; other files, hidden files and Thumbs.db-style files are left out and counted.
Files that cannot be decoded are reported as unreadable rows of their block (`Block.unreadable`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from xsearch.data.dataset import Block, RawData, SourceSplit
from xsearch.data.images import DECODE_ERRORS, decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SYSTEM_FILES = ("thumbs.db", "ehthumbs.db", "desktop.ini")
VAL_FOLDERS = ("val", "validation", "valid")
SPLIT_FOLDERS = ("train", *VAL_FOLDERS, "test")
BLOCK_FILES = 256  # files decoded per task of the thread pool
LAYOUTS = (
    "ROOT/<class>/*.jpg (val and test carved off by the seed), or ROOT/train/<class>/*.jpg with optional "
    "ROOT/val/<class>/ (or validation/, valid/) and ROOT/test/<class>/"
)


def read_folder(root: Path, image_size: int) -> RawData:
    """Lists the images of every split folder under `root`; classes are the train folder's sorted subfolders.

    Nothing is decoded here: each split's blocks decode its files in parallel threads when read.
    """
    folders = split_folders(root)
    class_names = _class_folders(folders["train"], root)
    splits, ignored = {}, []
    for split, folder in folders.items():
        files, labels, left_out = _list_split(folder, class_names)
        splits[split] = SourceSplit(np.array(labels, np.int32), _decoder(files, image_size), files)
        ignored += left_out
    return RawData(
        train=splits["train"],
        val=splits.get("val"),
        test=splits.get("test"),
        class_names=class_names,
        ignored=ignored,
    )


def split_folders(root: Path) -> dict[str, Path]:
    """The folder of each split `root` has: {"train": root} for ``ROOT/<class>/``, else train/ and the
    val/ (validation/, valid/) and test/ beside it. Any other folder beside train/ is an error."""
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(
            f"Image folder {root} {what}; pass the folder that holds the images as {LAYOUTS}."
        )
    folders = {
        p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir() and not _hidden(p.name)
    }
    named = [name for name in folders if name in SPLIT_FOLDERS]
    if "train" not in folders:
        if named:
            raise ValueError(
                f"Image folder {root} has {folders[named[0]].name}/ but no train/ folder; "
                f"the layouts are {LAYOUTS}."
            )
        return {"train": root}
    others = sorted(folders[name].name for name in folders if name not in SPLIT_FOLDERS)
    if others:
        raise ValueError(
            f"Image folder {root} has train/ and also {', '.join(f + '/' for f in others)}: beside "
            f"train/ only {', '.join(f + '/' for f in SPLIT_FOLDERS[1:])} are valid (each holding class "
            "folders); move the others into train/<class>/ or out of the folder."
        )
    validation = [name for name in named if name in VAL_FOLDERS]
    if len(validation) > 1:
        raise ValueError(
            f"Image folder {root} has {' and '.join(folders[n].name + '/' for n in validation)}: "
            "keep one validation folder."
        )
    found = {"train": folders["train"]}
    if validation:
        found["val"] = folders[validation[0]]
    if "test" in folders:
        found["test"] = folders["test"]
    return found


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_FILES


def _class_folders(folder: Path, root: Path) -> list[str]:
    """The class names: the subfolders of the training folder (at least 2 when that is `root` itself, where one
    folder is more likely a folder too high up, such as PetImages/ above Cat/ and Dog/)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))
    if not names or (folder == root and len(names) == 1):
        found = (
            f"only {names[0]}/; if it holds the class folders, pass {folder / names[0]}"
            if names
            else "none"
        )
        raise ValueError(
            f"Folder {folder} has no class folders ({found}). The layouts are {LAYOUTS}."
        )
    return names


def _list_split(folder: Path, class_names: list[str]) -> tuple[list[str], list[int], list[str]]:
    """(image files, their labels, files left out) of a split folder, whose class folders are among `class_names`."""
    present = sorted(p.name for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))
    extra = sorted(set(present) - set(class_names))
    if extra:
        raise ValueError(
            f"Folder {folder} has class folders that the training folder lacks: {extra}; "
            f"valid classes are {class_names}."
        )
    files: list[str] = []
    labels: list[int] = []
    ignored: list[str] = []
    for name in present:
        images, left_out = _list_images(folder / name)
        if not images:
            raise ValueError(
                f"Class folder {folder / name} has no images; expected files ending in "
                f"{', '.join(IMAGE_SUFFIXES)} (any case)."
            )
        files += images
        labels += [class_names.index(name)] * len(images)
        ignored += left_out
    return files, labels, ignored


def _list_images(folder: Path) -> tuple[list[str], list[str]]:
    """(image files, other files) under `folder` and its subfolders, sorted; hidden folders are skipped."""
    images: list[str] = []
    others: list[str] = []
    for directory, subfolders, names in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            is_image = not _hidden(name) and Path(name).suffix.lower() in IMAGE_SUFFIXES
            (images if is_image else others).append(os.path.join(directory, name))
    return images, others


def _decoder(files: list[str], image_size: int) -> Callable[[], Iterator[Block]]:
    def blocks() -> Iterator[Block]:
        """Blocks of `BLOCK_FILES` decoded images in order, decoded by a thread pool a few blocks ahead."""
        threads = os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending: deque[Future[Block]] = deque()
            for start in range(0, len(files), BLOCK_FILES):
                pending.append(
                    pool.submit(_decode_block, files[start : start + BLOCK_FILES], image_size)
                )
                if len(pending) > 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    return blocks


def _decode_block(files: list[str], image_size: int) -> Block:
    images = np.zeros((len(files), image_size, image_size, 3), np.uint8)
    unreadable = []
    for row, file in enumerate(files):
        try:
            images[row] = decode_image(Path(file), image_size)
        except DECODE_ERRORS:
            unreadable.append(row)
    return Block(images, tuple(unreadable))
