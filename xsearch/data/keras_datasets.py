"""The "cifar10" and "cifar100" sources, read with `keras.datasets` (downloaded once into the Keras cache)."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from xsearch.data.dataset import RawData, SourceSplit

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
    "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
    "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
    "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
# source -> (class names, the Keras cache entry `get_file` keeps the archive under, the original archive)
CIFAR = {
    "cifar10": (CIFAR10_CLASSES, "cifar-10-batches-py-target_archive", "cifar-10-python.tar.gz"),
    "cifar100": (CIFAR100_CLASSES, "cifar-100-python-target_archive", "cifar-100-python.tar.gz"),
}


def keras_datasets_dir() -> Path:
    """The folder where `keras.datasets` loaders keep their downloads ($KERAS_HOME/datasets, else ~/.keras/datasets)."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "datasets"


def read_cifar(source: str, image_size: int) -> RawData:
    """CIFAR's official train and test splits (fine labels for cifar100), resized to image_size."""
    class_names, cached, archive = CIFAR[source]
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, source).load_data()
    except Exception as err:  # Keras raises a bare Exception when the download fails.
        raise ValueError(
            f"Could not load {source} with keras.datasets.{source}.load_data(): {err}. Offline, Keras reads "
            f"the cached archive {keras_datasets_dir() / cached} (a copy of {archive}; "
            "$KERAS_HOME replaces ~/.keras); put it there or run once with network access."
        ) from err
    return RawData(
        train=SourceSplit.from_arrays(x_train, y_train, image_size),
        test=SourceSplit.from_arrays(x_test, y_test, image_size),
        class_names=list(class_names),
    )
