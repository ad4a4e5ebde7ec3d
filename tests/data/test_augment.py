"""`flip_crop`'s reflect padding matches numpy's."""

import numpy as np
import pytest

from xsearch.data.augment import reflect_pad


@pytest.mark.parametrize(("height", "width"), [(2, 2), (3, 5), (8, 8), (17, 9)])
def test_reflect_pad_matches_numpy_for_every_pad_smaller_than_the_image(height, width):
    images = np.random.default_rng(0).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    for pad_y in range(1, height):
        for pad_x in range(1, width):
            expected = np.pad(
                images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect"
            )
            np.testing.assert_array_equal(reflect_pad(images, pad_y, pad_x), expected)


def test_reflect_pad_rejects_a_pad_as_large_as_the_image():
    with pytest.raises(ValueError, match=r"pads \(4, 1\) for 4x8 images"):
        reflect_pad(np.zeros((1, 4, 8, 3), np.uint8), 4, 1)
