"""Analytic costs of a built model: parameters and multiply-accumulates (MACs) per layer."""

from __future__ import annotations

import math
from typing import TypedDict

import keras
from keras import layers


class ModelCosts(TypedDict):
    params: int
    trainable_params: int
    macs: int
    flops: int


def layer_macs(layer: keras.layers.Layer) -> int:
    """MACs of one call of a conv or dense layer for one input sample (0 for other layers).

    Bias additions and activations are not counted, as in the published figures.
    """
    if isinstance(layer, layers.SeparableConv2D):
        out_positions = _positions(layer.output.shape)
        kernel = math.prod(layer.kernel_size)
        spatial = layer.input.shape[-1] * layer.depth_multiplier
        return out_positions * spatial * (kernel + layer.filters)
    if isinstance(layer, layers.DepthwiseConv2D):
        return (
            _positions(layer.output.shape) * layer.output.shape[-1] * math.prod(layer.kernel_size)
        )
    if isinstance(layer, layers.Conv2D):
        per_output = math.prod(layer.kernel_size) * layer.input.shape[-1] // layer.groups
        return _positions(layer.output.shape) * layer.filters * per_output
    if isinstance(layer, layers.Dense):
        return _positions(layer.output.shape) * layer.input.shape[-1] * layer.units
    return 0


def model_costs(model: keras.Model) -> ModelCosts:
    """Parameters, MACs and FLOPs (= 2 x MACs) of one forward pass of one sample at the model's input size."""
    macs = sum(layer_macs(layer) for layer in _leaf_layers(model))
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return ModelCosts(
        params=int(model.count_params()),
        trainable_params=int(trainable),
        macs=int(macs),
        flops=int(2 * macs),
    )


def _positions(shape: tuple[int | None, ...]) -> int:
    """Number of output positions per sample: every dimension but the batch and the channels."""
    positions = 1
    for side in shape[1:-1]:
        positions *= int(side or 0)
    return positions


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    leaves: list[keras.layers.Layer] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        else:
            leaves.append(layer)
    return leaves
