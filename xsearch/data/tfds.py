"""The "tfds:<name>" source: a TensorFlow Datasets dataset already prepared in a local data_dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xsearch.data.dataset import Block, RawData, SourceSplit
from xsearch.data.images import resize_images, to_rgb

SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
BLOCK_IMAGES = 256


def read_tfds(name: str, data_dir: Path | None, image_size: int) -> RawData:
    """Reads the "train" split and, when present, "validation" and "test" (download=False).

    The labels are read first without decoding the images (`tfds.decode.SkipDecoding`); the images are
    decoded a block at a time when the splits' blocks are read.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ValueError(
            f"Source 'tfds:{name}' needs TensorFlow Datasets, which is not installed: "
            "pip install tensorflow-datasets"
        ) from err

    def load(decoders: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
        try:
            return tfds.load(
                name,
                data_dir=data_dir,
                download=False,
                as_supervised=True,
                with_info=True,
                decoders=decoders,
            )
        # tfds reports a missing or unprepared dataset with varied exception types.
        except Exception as err:
            raise ValueError(
                f"Could not read TFDS dataset {name!r} from data_dir={data_dir} with download=False: {err}. "
                f"Prepare it first, e.g. `tfds build {name} --data_dir DIR`, and pass --data-dir DIR."
            ) from err

    splits, info = load(None)
    if "train" not in splits:
        raise ValueError(f"TFDS dataset {name!r} has no 'train' split; found {sorted(splits)}.")
    image_key, label_key = info.supervised_keys
    undecoded = load({image_key: tfds.decode.SkipDecoding()})[0]

    def split(theirs: str) -> SourceSplit:
        labels = np.array([label for _, label in tfds.as_numpy(undecoded[theirs])], np.int32)
        return SourceSplit(labels, _blocks(lambda: tfds.as_numpy(splits[theirs]), image_size))

    found = {ours: split(theirs) for ours, theirs in SPLIT_NAMES.items() if theirs in splits}
    return RawData(
        train=found["train"],
        val=found.get("val"),
        test=found.get("test"),
        class_names=list(info.features[label_key].names),
    )


def _blocks(
    pairs: Callable[[], Iterator[tuple[np.ndarray, Any]]], image_size: int
) -> Callable[[], Iterator[Block]]:
    """Blocks of `BLOCK_IMAGES` images of (image, label) pairs, each image resized and made RGB."""

    def blocks() -> Iterator[Block]:
        images = []
        for image, _ in pairs():
            images.append(resize_images(to_rgb(image[None]), image_size)[0])
            if len(images) == BLOCK_IMAGES:
                yield Block(np.stack(images))
                images = []
        if images:
            yield Block(np.stack(images))

    return blocks
