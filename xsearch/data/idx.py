"""The "mnist" and "fashion-mnist" sources: the original idx files (official 60k/10k train/test split).

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each gzipped or not) are read from ``--data-dir`` when one is given; otherwise
from the first of the Keras cache (where ``keras.datasets.<name>.load_data()`` keeps them) and Debian's
package folder that has all four; otherwise Keras' own loader downloads them, where the network allows.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np

from xsearch.data.dataset import RawData, SourceSplit
from xsearch.data.keras_datasets import keras_datasets_dir

IDX_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one the MNIST files use
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FILE_NAMES = tuple(name for pair in SPLIT_FILES.values() for name in pair)


@dataclasses.dataclass(frozen=True)
class IdxDataset:
    """Where one idx data set lives: its classes, its Keras loader and cache folder, and Debian's package."""

    class_names: tuple[str, ...]
    keras_name: str  # keras.datasets.<keras_name>.load_data()
    keras_cache: str  # what that loader keeps under the Keras cache's datasets/ folder
    keras_idx: bool  # whether that is a folder of the idx files (else another format, which only the loader reads)
    debian_dir: Path | None
    debian_package: str | None


IDX_DATASETS = {
    "fashion-mnist": IdxDataset(
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        "fashion_mnist",
        "fashion-mnist",
        True,
        Path("/usr/share/datasets/fashion-mnist"),
        "dataset-fashion-mnist",
    ),
    "mnist": IdxDataset(tuple(str(d) for d in range(10)), "mnist", "mnist.npz", False, None, None),
}


def read_idx_source(source: str, data_dir: Path | None, image_size: int) -> RawData:
    """`source`'s official train and test splits, grey images made RGB at image_size (see the module docstring)."""
    dataset = IDX_DATASETS[source]
    if data_dir is not None:
        missing = [name for name in FILE_NAMES if _idx_file(data_dir, name) is None]
        if missing:
            raise FileNotFoundError(
                f"Source {source!r}: --data-dir {data_dir} lacks {', '.join(missing)} (.gz or not); "
                f"it needs the four idx files {', '.join(FILE_NAMES)}."
            )
        return _from_folder(data_dir, dataset, image_size)
    searched = _search_folders(dataset)
    for folder in searched:
        if all(_idx_file(folder, name) is not None for name in FILE_NAMES):
            return _from_folder(folder, dataset, image_size)
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(
            keras.datasets, dataset.keras_name
        ).load_data()
    except Exception as error:  # Keras raises a bare Exception when the download fails
        raise FileNotFoundError(_not_found(source, dataset, searched, error)) from None
    return _raw(x_train, y_train, x_test, y_test, dataset, image_size)


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array of one idx file (gzipped or not); ValueError naming the file when it is not one."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as file:
        try:
            data = file.read()
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: not a readable idx file ({error}).") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != IDX_UBYTE or data[3] == 0:
        raise ValueError(
            f"{path}: not an idx file of unsigned bytes (it starts {data[:4].hex() or 'empty'}; "
            "expected 0000 08 and a dimension count)."
        )
    dims = int(data[3])
    header = 4 + 4 * dims
    shape = (
        tuple(int(d) for d in np.frombuffer(data[4:header], ">u4")) if len(data) >= header else ()
    )
    if len(shape) != dims or len(data) - header != int(np.prod(shape)):
        raise ValueError(
            f"{path}: truncated or damaged idx file: its header gives shape {shape}, and "
            f"{max(len(data) - header, 0):,} bytes of data follow it."
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _from_folder(folder: Path, dataset: IdxDataset, image_size: int) -> RawData:
    arrays = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images_path, labels_path = _idx_file(folder, images_name), _idx_file(folder, labels_name)
        assert images_path is not None, "checked by the caller"
        assert labels_path is not None, "checked by the caller"
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{images_path} and {labels_path}: expected N grey images (N, H, W) and N labels; "
                f"found shapes {images.shape} and {labels.shape}."
            )
        if labels.max(initial=0) >= len(dataset.class_names):
            raise ValueError(
                f"{labels_path}: label {labels.max()} is not one of the {len(dataset.class_names)} classes."
            )
        arrays[split] = images, labels
    return _raw(*arrays["train"], *arrays["test"], dataset, image_size)


def _raw(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    dataset: IdxDataset,
    image_size: int,
) -> RawData:
    def split(x: np.ndarray, y: np.ndarray) -> SourceSplit:
        # grey (N, H, W, 1): made RGB block by block
        return SourceSplit.from_arrays(x[..., None], y, image_size)

    return RawData(
        train=split(x_train, y_train),
        test=split(x_test, y_test),
        class_names=list(dataset.class_names),
    )


def _idx_file(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name``, whichever exists."""
    return next((path for path in (folder / f"{name}.gz", folder / name) if path.is_file()), None)


def _search_folders(dataset: IdxDataset) -> list[Path]:
    folders = [keras_datasets_dir() / dataset.keras_cache] if dataset.keras_idx else []
    return folders + ([dataset.debian_dir] if dataset.debian_dir else [])


def _not_found(source: str, dataset: IdxDataset, searched: list[Path], error: Exception) -> str:
    looked = "; ".join(f"{folder} ({_holds(folder)})" for folder in searched)
    looked = f"Looked in {looked}; then" if looked else "Tried"
    install = (
        f"Install Debian's package {dataset.debian_package} (`apt-get install {dataset.debian_package}`), or pass"
        if dataset.debian_package
        else "Pass"
    )
    reason = str(error).splitlines()[0] if str(error) else repr(error)
    return (
        f"Source {source!r}: the idx files were not found. {looked} keras.datasets.{dataset.keras_name}.load_data(), "
        f"which reads {keras_datasets_dir() / dataset.keras_cache} or downloads it, and it failed ({reason}). "
        f"{install} --data-dir (data.data_dir) a folder with {', '.join(FILE_NAMES)} (.gz or not)."
    )


def _holds(folder: Path) -> str:
    present = [name for name in FILE_NAMES if _idx_file(folder, name) is not None]
    if not folder.is_dir():
        return "no such folder"
    return f"has {', '.join(present)} but not the rest" if present else "no idx files"
