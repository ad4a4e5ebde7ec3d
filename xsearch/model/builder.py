"""Builds an Xception variant as a functional `keras.Model` of built-in Keras layers.

At the paper point the model is `keras.applications.Xception` layer for layer (same call order,
same weight shapes), so its weights, ImageNet ones included, load with ``set_weights``.
"""

from __future__ import annotations

import keras
from keras import layers

from xsearch.model.config import MIN_INPUT_SIZE, XceptionConfig

_ENTRY_FLOW = ((2, 128), (3, 256), (4, 728))
_MIDDLE_CHANNELS = 728


def build_model(
    config: XceptionConfig,
    input_shape: tuple[int, int, int] = (299, 299, 3),
    num_classes: int = 1000,
    include_top: bool = True,
    bn_momentum: float = 0.99,
    name: str = "xception",
) -> keras.Model:
    """Build the Xception variant described by ``config``.

    ``bn_momentum`` is the BatchNormalization momentum (Keras' default 0.99 matches the paper
    model; short trainings want a lower one, e.g. 0.9). Images must be at least
    ``MIN_INPUT_SIZE`` pixels on each side. Without the top the model returns the last feature map.
    """
    _check_inputs(input_shape, num_classes)
    block = _BlockFactory(config, bn_momentum)
    inputs = keras.Input(shape=input_shape, name="input_layer")

    x = layers.Conv2D(config.channels(32), 3, strides=2, use_bias=False, name="block1_conv1")(
        inputs
    )
    x = block.bn("block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(config.channels(64), 3, use_bias=False, name="block1_conv2")(x)
    x = block.bn("block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    for number, base in _ENTRY_FLOW:
        x = block.downsampling(x, f"block{number}", (base, base), relu_first=number > 2)

    for index in range(config.middle_repeats):
        x = block.middle(x, f"block{5 + index}")

    exit_number = 5 + config.middle_repeats
    x = block.downsampling(x, f"block{exit_number}", (728, 1024), relu_first=True)
    prefix = f"block{exit_number + 1}"
    for k, base in ((1, 1536), (2, 2048)):
        x = block.separable(x, config.channels(base), f"{prefix}_sepconv{k}")
        x = block.bn(f"{prefix}_sepconv{k}_bn")(x)
        x = layers.Activation("relu", name=f"{prefix}_sepconv{k}_act")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _check_inputs(input_shape: tuple[int, ...], num_classes: int) -> None:
    if len(input_shape) != 3 or any(int(side) < 1 for side in input_shape):
        raise ValueError(
            f"input_shape must be (height, width, channels); received {input_shape!r}."
        )
    height, width, _ = input_shape
    if min(height, width) < MIN_INPUT_SIZE:
        raise ValueError(
            f"input_shape {tuple(input_shape)!r} is too small: the Xception stem needs images of at "
            f"least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels (use 32x32 or more for useful models)."
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"num_classes must be an integer >= 1; received num_classes={num_classes!r}."
        )


class _BlockFactory:
    """Creates the modules of one model, in `keras.applications.Xception`'s call order."""

    def __init__(self, config: XceptionConfig, bn_momentum: float) -> None:
        self.config = config
        self.bn_momentum = bn_momentum

    def bn(self, name: str) -> layers.BatchNormalization:
        return layers.BatchNormalization(momentum=self.bn_momentum, name=name)

    def separable(self, x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
        """A separable conv on the config's spectrum point: spatial conv, [activation], 1x1 conv."""
        config = self.config
        if config.segments == "depthwise" and config.intermediate_activation == "none":
            return layers.SeparableConv2D(
                filters,
                3,
                padding="same",
                depth_multiplier=config.depth_multiplier,
                use_bias=False,
                name=name,
            )(x)
        if config.segments == "depthwise":
            x = layers.DepthwiseConv2D(
                3,
                padding="same",
                depth_multiplier=config.depth_multiplier,
                use_bias=False,
                name=f"{name}_depthwise",
            )(x)
        else:
            x = layers.Conv2D(
                x.shape[-1] * config.depth_multiplier,
                3,
                padding="same",
                groups=config.segments,
                use_bias=False,
                name=f"{name}_spatial",
            )(x)
        if config.intermediate_activation != "none":
            x = layers.Activation(config.intermediate_activation, name=f"{name}_mid_act")(x)
        return layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pointwise")(x)

    def downsampling(
        self, x: keras.KerasTensor, prefix: str, bases: tuple[int, int], relu_first: bool
    ) -> keras.KerasTensor:
        """Entry/exit-flow module: two separable convs, max-pool /2, strided 1x1 shortcut."""
        filters = [self.config.channels(base) for base in bases]
        residual = None
        if self.config.residual:
            residual = layers.Conv2D(
                filters[1], 1, strides=2, padding="same", use_bias=False, name=f"{prefix}_shortcut"
            )(x)
            residual = self.bn(f"{prefix}_shortcut_bn")(residual)
        for k, channels in enumerate(filters, start=1):
            if k > 1 or relu_first:
                x = layers.Activation("relu", name=f"{prefix}_sepconv{k}_act")(x)
            x = self.separable(x, channels, f"{prefix}_sepconv{k}")
            x = self.bn(f"{prefix}_sepconv{k}_bn")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}_pool")(x)
        if residual is not None:
            x = layers.Add(name=f"{prefix}_add")([x, residual])
        return x

    def middle(self, x: keras.KerasTensor, prefix: str) -> keras.KerasTensor:
        """Middle-flow module: three ReLU-separable-conv-BN steps around an identity shortcut."""
        residual = x
        channels = self.config.channels(_MIDDLE_CHANNELS)
        for k in (1, 2, 3):
            x = layers.Activation("relu", name=f"{prefix}_sepconv{k}_act")(x)
            x = self.separable(x, channels, f"{prefix}_sepconv{k}")
            x = self.bn(f"{prefix}_sepconv{k}_bn")(x)
        if self.config.residual:
            x = layers.Add(name=f"{prefix}_add")([x, residual])
        return x
