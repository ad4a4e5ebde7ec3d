"""`BatchStream`: a Keras `PyDataset` that serves uint8 image batches, optionally shuffled and augmented."""

from __future__ import annotations

import keras
import numpy as np

from xsearch.data.augment import flip_crop


class BatchStream(keras.utils.PyDataset):
    """Batches of uint8 NHWC images (`x`, as stored) and int32 labels (`y`), using numpy only.

    The model casts and normalises the pixels on the device (`xsearch.study.fit.with_normalization`),
    so the host neither converts them to float32 nor copies 4x the bytes to the device.

    With `shuffle`, each epoch has its own permutation; with `augment`, each image is randomly flipped
    and cropped (see `flip_crop`). Both are deterministic in (`seed`, epoch, batch index), so
    batches do not depend on the order Keras's `workers` threads fetch them in.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        *,
        augment: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        workers: int = 1,
        drop_remainder: bool = False,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)
        if x.ndim != 4 or len(x) != len(y):
            raise ValueError(
                f"BatchStream needs x of shape (N, H, W, C) and y of shape (N,); received {x.shape} and {np.shape(y)}."
            )
        if batch_size < 1:
            raise ValueError(
                f"BatchStream batch_size must be >= 1; received batch_size={batch_size!r}."
            )
        self.x = x
        self.y = np.asarray(y, np.int32)
        self.batch_size = batch_size
        self.augment = augment
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.epoch = 0
        self._order = self._permutation()

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.y) // self.batch_size
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(
                f"Batch index {index} out of range for a BatchStream of {len(self)} batches."
            )
        indices = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        images = (
            flip_crop(self.x, indices, np.random.default_rng([self.seed, self.epoch, index]))
            if self.augment
            else self.x[indices]
        )
        return images, self.y[indices]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.y))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))
