"""scikit-learn's embedded 8x8 handwritten digits, served as 32x32x3 images.

The one dataset that needs no download and no TensorFlow: the default of
`experiments.train`, and the data of every end-to-end test.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from winact_jax.data import splits
from winact_jax.data.dataset import UNIT_RANGE, Dataset, Split

IMAGE_SIZE = 32  # every model here is built for CIFAR-sized inputs
_MAX_VALUE = 16  # the digits' pixels are counts 0..16 (4x4 blocks of a 32x32 bitmap)


def upsample(images_8x8: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> (N, size, size, 3) uint8 0..255.

    Values are first mapped linearly onto 0..255, then each image is resized with
    PIL's bilinear filter (pixel centres aligned, edges clamped) and rounded, so
    strokes stay smooth rather than blocky; the grey image is repeated over the
    three channels. PIL rather than `jax.image.resize` so that loading runs no JAX
    computation (it may come before `jax.distributed.initialize`).
    """
    # float32 images open in PIL's 32-bit float mode "F", so nothing is rounded twice.
    scaled = np.asarray(images_8x8, np.float32) * (255.0 / _MAX_VALUE)
    resized = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)) for image in scaled])
    grey = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def load_digits(*, seed: int = splits.SPLIT_SEED) -> Dataset:
    """The 1797 digits, split stratified 70/15/15: train 1257, validation 270, test 270.

    Pixels: 0..16 mapped to 0..255 and stored uint8; `normalize` scales to [0, 1]
    like the CIFAR protocol. `seed` draws the split (default: the fixed project
    split).
    """
    from sklearn.datasets import load_digits as sklearn_digits  # embedded, no download

    bunch = sklearn_digits()
    images = upsample(bunch.images)
    labels = bunch.target.astype(np.int32)
    everything = Split(images, labels)
    train, validation, test = splits.train_validation_test_split(labels, seed=seed)
    return Dataset(
        name="digits",
        train=everything.take(train),
        validation=everything.take(validation),
        test=everything.take(test),
        num_classes=10,
        class_names=tuple(str(digit) for digit in range(10)),
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        pixel_range=UNIT_RANGE,
    )
