"""Weight inheritance: copy a `keras.applications.Xception`'s weights into a design of the space.

Our builder names the paper's layers as Keras does (``block1_conv1``, ``block2_sepconv1_bn``, ...),
so a layer inherits when a Keras layer maps onto its name and every weight shape matches. Two
mappings make variants inherit too: the exit flow (Keras' ``block13``/``block14``) maps by position
from the end (``block(5+r)``/``block(6+r)`` for ``r`` middle modules), and the residual 1x1 convs,
unnamed in Keras (``conv2d``, ``batch_normalization``, ...), map in order onto our
``block{N}_shortcut``/``block{N}_shortcut_bn``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import h5py
import keras

IMAGENET_FILES = {
    True: "xception_weights_tf_dim_ordering_tf_kernels.h5",
    False: "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
_IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
_IMAGENET_HASHES = {
    True: "0a58e3b7378bc2990ea3b43d5981f1f6",
    False: "b0042744bf5b25fce3cb969f33bebb97",
}
_BLOCK = re.compile(r"^block(\d+)_(.+)$")
_ENTRY_SHORTCUT_BLOCKS = (2, 3, 4)


@dataclasses.dataclass(frozen=True)
class InheritReport:
    """What `inherit_weights` copied: layers (with weights), weight tensors and scalars; ``layers`` names them."""

    source: str
    layers: tuple[str, ...]
    layers_inherited: int
    layers_total: int
    weights_inherited: int
    params_inherited: int
    params_total: int

    def summary(self) -> str:
        share = self.params_inherited / self.params_total if self.params_total else 0.0
        return (
            f"inherited {self.layers_inherited}/{self.layers_total} layers, {self.weights_inherited} weight "
            f"tensors, {self.params_inherited:,}/{self.params_total:,} parameters ({share:.1%}) from {self.source}"
        )


def inherit_weights(model: keras.Model, source: str) -> InheritReport:
    """Copy into ``model`` every Keras Xception layer whose mapped name and weight shapes match.

    ``source`` is ``"imagenet"`` (Keras' ImageNet weights: the file in the Keras cache
    ``$KERAS_HOME/models`` or ``~/.keras/models``, downloaded there when missing) or the path of a
    ``.h5``/``.weights.h5`` file saved from a `keras.applications.Xception` (any head). ``model`` is
    a `build_model` model or one wrapped by `with_normalization`. Layers that do not match keep
    their weights.
    """
    core = _find_core(model)
    reference = _file_reference(weights_file(source))
    inherited: list[str] = []
    weights = params = 0
    for ref_layer, name in _name_map(reference, core):
        try:
            layer = core.get_layer(name)
        except ValueError:
            continue
        values = ref_layer.get_weights()
        if [tuple(w.shape) for w in layer.weights] != [v.shape for v in values]:
            continue
        layer.set_weights(values)
        inherited.append(layer.name)
        weights += len(values)
        params += sum(int(v.size) for v in values)
    return InheritReport(
        source=source,
        layers=tuple(inherited),
        layers_inherited=len(inherited),
        layers_total=sum(1 for layer in core.layers if layer.weights),
        weights_inherited=weights,
        params_inherited=params,
        params_total=core.count_params(),
    )


def input_normalization(source: str | None, mean: Any, std: Any) -> tuple[list[float], list[float]]:
    """The per-channel (mean, std) a model's input layer subtracts and divides by: Keras' Xception
    preprocessing (pixels to [-1, 1]) for ImageNet weights, which were trained on it; else the data set's."""
    if source == "imagenet":
        return [127.5] * 3, [127.5] * 3
    return [float(v) for v in mean], [float(v) for v in std]


def check_weights(source: str) -> None:
    """Raise FileNotFoundError or ValueError, naming the file, unless `inherit_weights` can read ``source``."""
    _file_reference(weights_file(source))


def inherited_layers(model: keras.Model, report: InheritReport) -> list[keras.layers.Layer]:
    """The layers of ``model`` (or of the Xception in its `with_normalization` wrapper) that ``report`` filled."""
    core = _find_core(model)
    return [core.get_layer(name) for name in report.layers]


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models``, else ``~/.keras/models``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "models"


def _find_core(model: keras.Model) -> keras.Model:
    """``model`` itself, or the Xception inside a `with_normalization` wrapper."""
    for candidate in (model, *(layer for layer in model.layers if isinstance(layer, keras.Model))):
        if any(layer.name == "block1_conv1" for layer in candidate.layers):
            return candidate
    raise ValueError(
        f"model {model.name!r} is not an xsearch Xception: it has no layer 'block1_conv1'."
    )


def weights_file(source: str) -> Path:
    """The file ``source`` names: for ``"imagenet"`` the one in the Keras cache, downloaded there when
    missing; FileNotFoundError (naming where to put it) or ValueError when there is no usable file."""
    if source != "imagenet":
        path = Path(source)
        if not path.name.endswith(".h5"):
            raise ValueError(
                f"{path}: weights must be a .h5 or .weights.h5 file of a keras.applications.Xception."
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no such weights file (give 'imagenet' or a .h5/.weights.h5 path)."
            )
        return path
    folder = keras_models_dir()
    for include_top in (True, False):
        if (folder / IMAGENET_FILES[include_top]).is_file():
            return folder / IMAGENET_FILES[include_top]
    name = IMAGENET_FILES[True]
    try:
        path = keras.utils.get_file(
            name,
            _IMAGENET_URL + name,
            cache_dir=str(folder.parent),
            cache_subdir="models",
            file_hash=_IMAGENET_HASHES[True],
        )
    except Exception as error:
        raise FileNotFoundError(
            f"no ImageNet Xception weights in {folder} and the download failed ({error}). Put "
            f"{IMAGENET_FILES[True]} (or {IMAGENET_FILES[False]}) at {folder / name}: on a machine "
            "online, run python -c \"import keras; keras.applications.Xception(weights='imagenet')\" "
            f"and copy the file from ~/.keras/models, or download {_IMAGENET_URL + name}."
        ) from None
    return Path(path)


def _file_reference(path: Path) -> keras.Model:
    """A `keras.applications.Xception` holding the weights of ``path`` (its head read from the file)."""
    classes = _head_classes(path)
    reference = keras.applications.Xception(
        weights=None,
        include_top=classes is not None,
        classes=classes or 1000,
        input_shape=(71, 71, 3),
    )
    try:
        reference.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"{path}: not the weights of a keras.applications.Xception ({error})."
        ) from None
    return reference


def _head_classes(path: Path) -> int | None:
    """The class count of the file's Dense head (Xception's only 2-D weight), or None without one."""
    shapes: list[tuple[int, ...]] = []
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda _, item: (
                    shapes.append(item.shape) if isinstance(item, h5py.Dataset) else None
                )
            )
    except OSError as error:
        raise ValueError(
            f"{path}: not an HDF5 weights file ({error}): give 'imagenet' or a "
            ".h5/.weights.h5 file saved from a keras.applications.Xception."
        ) from None
    heads = [shape for shape in shapes if len(shape) == 2]
    return int(heads[0][1]) if heads else None


def _name_map(reference: keras.Model, core: keras.Model) -> list[tuple[keras.layers.Layer, str]]:
    """Each weighted reference layer with the name of its counterpart in ``core``."""
    ref_last, our_last = _last_block(reference), _last_block(core)
    shortcut_blocks = (*_ENTRY_SHORTCUT_BLOCKS, ref_last - 1)
    unnamed: dict[type, int] = {}
    mapping: list[tuple[keras.layers.Layer, str]] = []
    for layer in reference.layers:
        if not layer.weights:
            continue
        match = _BLOCK.match(layer.name)
        if match:
            number, rest = int(match[1]), match[2]
            if number >= ref_last - 1:
                number += our_last - ref_last  # exit flow: by position from the end
            elif number > 4 and number > our_last - 2:
                continue  # a middle module the variant does not have
            mapping.append((layer, f"block{number}_{rest}"))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization)):
            index = unnamed[type(layer)] = unnamed.get(type(layer), -1) + 1
            block = shortcut_blocks[index] + (our_last - ref_last if index == 3 else 0)
            suffix = "_bn" if isinstance(layer, keras.layers.BatchNormalization) else ""
            mapping.append((layer, f"block{block}_shortcut{suffix}"))
        else:
            mapping.append((layer, layer.name))
    return mapping


def _last_block(model: keras.Model) -> int:
    return max(int(m[1]) for layer in model.layers if (m := _BLOCK.match(layer.name)))
