"""The "tfds:<name>" source: a TensorFlow Datasets dataset already prepared in a local data_dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xsearch.data.dataset import RawData, Split
from xsearch.data.images import resize_images, to_rgb


def read_tfds(name: str, data_dir: Path | None, image_size: int) -> RawData:
    """Reads the "train" split and, when present, "validation" and "test" (download=False)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ValueError(
            f"Source 'tfds:{name}' needs TensorFlow Datasets, which is not installed: "
            "pip install tensorflow-datasets"
        ) from err
    try:
        splits, info = tfds.load(
            name, data_dir=data_dir, download=False, as_supervised=True, with_info=True
        )
    except Exception as err:  # tfds reports a missing or unprepared dataset with varied exception types.
        raise ValueError(
            f"Could not read TFDS dataset {name!r} from data_dir={data_dir} with download=False: {err}. "
            f"Prepare it first, e.g. `tfds build {name} --data_dir DIR`, and pass --data-dir DIR."
        ) from err
    if "train" not in splits:
        raise ValueError(f"TFDS dataset {name!r} has no 'train' split; found {sorted(splits)}.")

    def read(split: str) -> Split | None:
        if split not in splits:
            return None
        pairs = [
            (resize_images(to_rgb(image[None]), image_size)[0], label)
            for image, label in tfds.as_numpy(splits[split])
        ]
        return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int32)

    label = info.features[info.supervised_keys[1]]
    train = read("train")
    if train is None:
        raise ValueError(f"tfds:{name}: the data set has no 'train' split.")
    return RawData(train=train, val=read("validation"), test=read("test"), class_names=list(label.names))
