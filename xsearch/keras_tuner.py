"""KerasTuner plugin: `XceptionHyperModel` builds one Xception variant per trial from a `SearchSpace`.

Works with every KerasTuner tuner (``RandomSearch``, ``BayesianOptimization``, ``Hyperband``, ...)::

    tuner = keras_tuner.RandomSearch(XceptionHyperModel((32, 32, 3), 10), objective="val_accuracy")
"""

from __future__ import annotations

import keras
import keras_tuner

from xsearch.model.builder import build_model
from xsearch.model.device import jit_compile_setting
from xsearch.model.space import SearchSpace


class XceptionHyperModel(keras_tuner.HyperModel):
    """Samples an `XceptionConfig` from ``space`` on ``hp`` and returns it built and compiled.

    The model takes normalised float images of ``input_shape`` and ends in a softmax over
    ``num_classes``; it is compiled with Adam, sparse categorical cross-entropy and accuracy.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        space: SearchSpace | str = "xception-small",
        learning_rate: float = 1e-3,
        bn_momentum: float = 0.9,
        name: str = "xception",
    ) -> None:
        super().__init__(name=name)
        height, width, channels = input_shape
        self.input_shape = (height, width, channels)
        self.num_classes = num_classes
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_toml(space)
        self.learning_rate = learning_rate
        self.bn_momentum = bn_momentum

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = self.space.sample_keras_tuner(hp)
        model = build_model(
            config, self.input_shape, self.num_classes, bn_momentum=self.bn_momentum, name=self.name
        )
        model.compile(
            keras.optimizers.Adam(self.learning_rate),
            keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
            jit_compile=jit_compile_setting(),
        )
        return model
