"""Datasets read through TensorFlow Datasets: CIFAR-10/100, STL-10, Caltech-101, Tiny ImageNet.

TensorFlow and TFDS are imported inside these functions, never when
`winact_jax.data` is imported: runs on digits never load TensorFlow.

Each loader prepares the dataset with TFDS (download, or the archive placed in
`<data_dir>/downloads/manual/`, then conversion to TFDS's record files in
`<data_dir>/<name>/<version>/`), reads whole splits into uint8 NumPy arrays and
draws the splits the dataset lacks with `seed` (the fixed project split by default;
test sets that the dataset defines never depend on it). Sizes:

    name           train   validation   test    classes  image     pixels
    cifar10        45000   5000         10000   10       32x32x3   [0, 1]
    cifar100       45000   5000         10000   100      32x32x3   [0, 1]
    stl10          4500    500          8000    10       96x96x3   [0, 1]
    caltech101     6073    1302         1302    101      64x64x3   [-1, 1]
    tiny_imagenet  90000   10000        10000   200      64x64x3   [0, 1]

`data_dir=None` is TFDS's default: `$TFDS_DATA_DIR` if set, else
`~/tensorflow_datasets`.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import threading
import urllib.parse
import zipfile

import numpy as np

from winact_jax import extras
from winact_jax.data import splits
from winact_jax.data.dataset import (
    SYMMETRIC_RANGE,
    UNIT_RANGE,
    Dataset,
    DataUnavailableError,
    Split,
)

# The archive each dataset is built from: what a user without internet places in
# `<data_dir>/downloads/manual/`. TFDS picks up a file there by the name its
# checksums register (tests check these names against TFDS's own); our Tiny
# ImageNet builder looks for its archive there itself.
SOURCE_FILES: dict[str, tuple[str, str]] = {
    "cifar10": (
        "cifar-10-binary.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    ),
    "cifar100": (
        "cifar-100-binary.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    ),
    "stl10": ("stl10_binary.tar.gz", "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"),
    "caltech101": (
        "caltech-101.zip",
        "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1",
    ),
    "tiny_imagenet": ("tiny-imagenet-200.zip", "http://cs231n.stanford.edu/tiny-imagenet-200.zip"),
}

CALTECH_CLUTTER_CLASS = "background_google"  # TFDS lower-cases the folder names
CALTECH_CROP_SIZE = 256  # the seed's CenterCrop(256)
CALTECH_IMAGE_SIZE = 64

_READ_BATCH_SIZE = 1024  # examples per tf.data batch while reading a split to NumPy

# What a failed preparation raises when the data is missing, unreachable or a placed
# archive is unreadable: network errors (requests' are OSErrors), a missing file, TFDS's
# AssertionError for a missing manual directory, a bad archive or checksum.
_DATA_ERRORS = (OSError, AssertionError, zipfile.BadZipFile)
_TFDS_DATA_ERROR_NAMES = ("DownloadError", "ExtractError", "NonMatchingChecksumError")

# How long to wait for the archive's host before calling the network absent. TFDS's
# own downloader retries an unreachable host for minutes (urllib3's 10 retries with
# back-off); one probe first, then a single try without retries, makes an offline
# run fail in seconds.
_NETWORK_PROBE_TIMEOUT_S = 3.0

# Name fragments of what TFDS writes before renaming it into place: downloads go to
# "<file>.tmp.<uuid>/", extractions and prepared datasets to "incomplete.<...>".
_TEMPORARY_MARKERS = (".tmp.", "incomplete.")


# --------------------------------------------------------------------------- loaders


def load_cifar10(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    """CIFAR-10 through TFDS `cifar10`: train 45000, validation 5000, test 10000.

    The validation split is a stratified 10% of TFDS's train (50000) drawn with
    `seed`; test is TFDS's test. Pixels scaled to [0, 1] (as for CIFAR-100).
    """
    return _load_train_test_dataset("cifar10", data_dir=data_dir, seed=seed)


def load_cifar100(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    """CIFAR-100 (fine labels) through TFDS `cifar100`: 45000 / 5000 / 10000.

    The validation split is a stratified 10% of TFDS's train (50000) drawn with
    `seed`; test is TFDS's test. Pixels scaled to [0, 1], as in the seed paper.
    """
    return _load_train_test_dataset("cifar100", data_dir=data_dir, seed=seed)


def load_stl10(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    """STL-10's labelled images through TFDS `stl10`: 4500 / 500 / 8000, 96x96.

    The validation split is a stratified 10% of TFDS's train (5000) drawn with
    `seed`; test is TFDS's test (8000); the 100000 unlabelled images are not read.
    Pixels scaled to [0, 1]: the STL-10 seed names no scaling; [0, 1] is
    torchvision's ToTensor and matches the CIFAR protocol.
    """
    return _load_train_test_dataset("stl10", data_dir=data_dir, seed=seed)


def load_caltech101(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    """Caltech-101 through TFDS `caltech101`, as the seed paper prepared it.

    - All labelled images: TFDS's train (30 per class) and test splits together.
    - The clutter class BACKGROUND_Google (467 images) is dropped: the paper counts
      101 categories, and its 95 batches of 64 per epoch match 70% of the 8677
      object images (6073), not of all 9144 (6400 would be 100 batches).
    - Each image is center-cropped to 256x256 as torchvision's CenterCrop(256)
      does: a side longer than 256 is cropped around its centre, a shorter one is
      zero-padded evenly on both sides (most images are about 300x200, so most get
      black bands above and below). Then bilinear resize (antialiased) to 64x64.
    - A stratified 70/15/15 split drawn with `seed`: train 6073, validation 1302,
      test 1302.

    Pixels scaled to [-1, 1], as in the seed paper.
    """
    tf, _ = _import_tfds()

    def center_crop_and_resize(image, label):
        image = tf.image.resize_with_crop_or_pad(image, CALTECH_CROP_SIZE, CALTECH_CROP_SIZE)
        image = tf.image.resize(image, (CALTECH_IMAGE_SIZE, CALTECH_IMAGE_SIZE), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    builder = _prepared_builder("caltech101", data_dir)
    everything = _read_split(builder, "train+test", preprocess=center_crop_and_resize)
    tfds_names = list(builder.info.features["label"].names)

    clutter = tfds_names.index(CALTECH_CLUTTER_CLASS)
    objects = everything.take(np.flatnonzero(everything.labels != clutter))
    # Labels above the clutter class move down by one, so they run 0..100.
    labels = (objects.labels - (objects.labels > clutter)).astype(np.int32)
    objects = Split(objects.images, labels)

    train, validation, test = splits.train_validation_test_split(labels, seed=seed)
    class_names = tuple(name for name in tfds_names if name != CALTECH_CLUTTER_CLASS)
    return Dataset(
        name="caltech101",
        train=objects.take(train),
        validation=objects.take(validation),
        test=objects.take(test),
        num_classes=len(class_names),
        class_names=class_names,
        image_shape=(CALTECH_IMAGE_SIZE, CALTECH_IMAGE_SIZE, 3),
        pixel_range=SYMMETRIC_RANGE,
    )


def load_tiny_imagenet(*, data_dir: str | None = None, seed: int = splits.SPLIT_SEED) -> Dataset:
    """Tiny ImageNet through our TFDS builder: train 90000, validation 10000, test 10000.

    As in the seed paper, the archive's 10000 labelled `val` images (TFDS split
    `validation`, labels from val/val_annotations.txt) are the test set; our
    validation split is a stratified 10% of the 100000 training images drawn with
    `seed`. Class names are words.txt's entries, in wnids.txt's order. Pixels
    scaled to [0, 1]: the seed names no scaling for Tiny ImageNet; [0, 1] is
    torchvision's ToTensor and matches the CIFAR-100 protocol.
    """
    _import_tfds()
    from winact_jax.data.tiny_imagenet import TinyImagenet  # imports TFDS

    builder = _prepared_builder("tiny_imagenet", data_dir, builder_class=TinyImagenet)
    train = _read_split(builder, "train")
    test = _read_split(builder, "validation")
    class_names = tuple(builder.info.metadata["class_words"])
    return _with_validation_carved("tiny_imagenet", train, test, class_names, pixel_range=UNIT_RANGE, seed=seed)


def _load_train_test_dataset(name: str, *, data_dir: str | None, seed: int) -> Dataset:
    """A TFDS dataset with train and test splits, validation carved from train."""
    builder = _prepared_builder(name, data_dir)
    train = _read_split(builder, "train")
    test = _read_split(builder, "test")
    class_names = tuple(builder.info.features["label"].names)
    return _with_validation_carved(name, train, test, class_names, pixel_range=UNIT_RANGE, seed=seed)


def _with_validation_carved(
    name: str,
    train: Split,
    test: Split,
    class_names: tuple[str, ...],
    *,
    pixel_range: tuple[float, float],
    seed: int,
) -> Dataset:
    kept, validation = splits.stratified_split(train.labels, splits.VALIDATION_FRACTION, seed=seed)
    return Dataset(
        name=name,
        train=train.take(kept),
        validation=train.take(validation),
        test=test,
        num_classes=len(class_names),
        class_names=class_names,
        image_shape=tuple(train.images.shape[1:]),
        pixel_range=pixel_range,
    )


# --------------------------------------------------------------------------- TFDS


def _import_tfds():
    """Imports TensorFlow and TFDS, keeping TensorFlow off the accelerators.

    tf.data only decodes and resizes images here; a GPU build of TensorFlow would
    otherwise reserve accelerator memory that JAX needs.
    """
    tf = extras.require("tensorflow", "tfds", "the TFDS datasets")
    tfds = extras.require("tensorflow_datasets", "tfds", "the TFDS datasets")

    # A RuntimeError means TensorFlow already initialised its devices: nothing to hide.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return tf, tfds


def _prepared_builder(name: str, data_dir: str | None, *, builder_class=None):
    """The TFDS builder of `name`, its data prepared in `data_dir`.

    On failure, whatever the attempt left in `data_dir` (TFDS's temporary download
    and dataset folders, folders it created and left empty) is removed, so the
    next attempt starts clean; a missing or unreachable archive is reported as
    `DataUnavailableError` with what to place where.
    """
    _, tfds = _import_tfds()
    if builder_class is None:
        builder = tfds.builder(name, data_dir=data_dir)
        download_config = tfds.download.DownloadConfig()
    else:
        builder = builder_class(data_dir=data_dir)
        # Not hosted on TFDS's bucket: skip the look-up.
        download_config = tfds.download.DownloadConfig(try_download_gcs=False)

    root = os.fspath(builder.data_dir_root)
    local = "://" not in root  # the clean-up below walks local folders only
    offline = (
        local
        and name in SOURCE_FILES
        and not builder.is_prepared()
        and not _archive_on_disk(name, root)
        and _unreachable(SOURCE_FILES[name][1]) is not None
    )
    if offline:
        # The archive's host does not answer: one try, no GCS look-up and no
        # retries, so the download fails at once with its own error (and TFDS's
        # test doubles, which replace the download, still run).
        download_config = tfds.download.DownloadConfig(try_download_gcs=False)
    existed_before = _preparation_outputs(root, builder.name) if local else set()
    try:
        with _no_download_retries() if offline else contextlib.nullcontext():
            builder.download_and_prepare(download_config=download_config)
    except BaseException as error:
        if local:
            _remove_partial_outputs(root, builder.name, existed_before)
        if _is_data_error(error):
            raise DataUnavailableError(missing_data_message(name, root, error)) from error
        raise
    return builder


def _read_split(builder, split: str, preprocess=None) -> Split:
    """A whole TFDS split as uint8 images and int32 labels, in TFDS's stored order."""
    tf, tfds = _import_tfds()
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    if preprocess is not None:
        dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Both are known for TFDS splits (and after our fixed-size preprocessing), so the
    # arrays are allocated once and filled: Tiny ImageNet's 1.2 GB train is held once.
    num_examples = int(dataset.cardinality())
    image_shape = tuple(dataset.element_spec[0].shape)
    if num_examples < 0 or None in image_shape:
        raise ValueError(f"{builder.name} {split}: size {num_examples} or image shape {image_shape} unknown")
    images = np.empty((num_examples, *image_shape), np.uint8)
    labels = np.empty((num_examples,), np.int32)
    filled = 0
    batches = dataset.batch(_READ_BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
    for image_batch, label_batch in tfds.as_numpy(batches):
        end = filled + len(label_batch)
        images[filled:end] = image_batch
        labels[filled:end] = label_batch
        filled = end
    if filled != num_examples:
        raise RuntimeError(f"{builder.name} {split}: read {filled} of {num_examples} examples")
    return Split(images, labels)


# --------------------------------------------------------------------------- failures


def missing_data_message(name: str, data_dir: str, cause: BaseException | None = None) -> str:
    """What to place where, and the command to run then, for dataset `name`."""
    file_name, url = SOURCE_FILES[name]
    manual_dir = os.path.join(data_dir, "downloads", "manual")
    reason = ""
    if cause is not None:
        cause_text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        reason = f" ({type(cause).__name__}: {cause_text[:300]})"
    return (
        f"Dataset {name!r} is not prepared in {data_dir}, and preparing it failed{reason}.\n"
        f"Without internet, place the file\n"
        f"    {file_name}\n"
        f"(from {url}) in the directory\n"
        f"    {manual_dir}{os.sep}\n"
        f"then retry with\n"
        f"    python -m winact_jax.data prepare {name} --data-dir {data_dir}"
    )


def _archive_on_disk(name: str, data_dir: str) -> bool:
    """Whether `name`'s archive is in `<data_dir>/downloads/manual/`, or a finished
    download of it in `<data_dir>/downloads/` (TFDS names those after the URL, so
    the archive's stem is part of the name): then preparing needs no network."""
    file_name = SOURCE_FILES[name][0]
    downloads = pathlib.Path(data_dir) / "downloads"
    if (downloads / "manual" / file_name).exists():
        return True
    stem = file_name.split(".")[0]
    return downloads.is_dir() and any(
        stem in entry.name and not any(marker in entry.name for marker in _TEMPORARY_MARKERS)
        for entry in downloads.iterdir()
        if entry.name != "manual"
    )


def _unreachable(url: str, timeout: float = _NETWORK_PROBE_TIMEOUT_S) -> OSError | None:
    """None if a TCP connection to `url`'s host opens within `timeout` seconds,
    else the error (name resolution included, which a socket timeout does not
    bound: hence the thread)."""
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[OSError | None] = []

    def probe():
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return TimeoutError(f"no answer from {parsed.hostname}:{port} in {timeout:g} s (offline?)")
    if outcome[0] is not None:
        error = outcome[0]
        return type(error)(f"cannot reach {parsed.hostname}:{port} (offline?): {error}")
    return None


@contextlib.contextmanager
def _no_download_retries():
    """TFDS's downloader with urllib3 retries off, restored afterwards."""
    from tensorflow_datasets.core.download import downloader

    retries = downloader.MAX_RETRIES
    downloader.MAX_RETRIES = 0
    try:
        yield
    finally:
        downloader.MAX_RETRIES = retries


def _is_data_error(error: BaseException) -> bool:
    return isinstance(error, _DATA_ERRORS) or type(error).__name__ in _TFDS_DATA_ERROR_NAMES


def _preparation_outputs(data_dir: str, name: str) -> set[pathlib.Path]:
    """Every path a preparation of `name` can write: `data_dir` itself, and all
    under `data_dir/<name>/` and `data_dir/downloads/` (where TFDS puts downloads,
    extractions and the manual directory)."""
    root = pathlib.Path(data_dir)
    found = set()
    for top in (root, root / name, root / "downloads"):
        if top.exists():
            found.add(top)
            if top != root:
                found.update(top.rglob("*"))
    return found


def _remove_partial_outputs(data_dir: str, name: str, existed_before: set[pathlib.Path]) -> None:
    """Removes what a failed preparation of `name` created, except finished downloads.

    TFDS writes downloads, extractions and the prepared dataset under temporary
    names and renames them when complete, so a temporary name marks a partial
    output. Folders the attempt created and left empty go too (`data_dir` itself
    included). Paths that existed before the attempt are never touched.
    """
    created = _preparation_outputs(data_dir, name) - existed_before
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):  # deepest first
        if not os.path.lexists(path):  # inside a temporary folder already removed
            continue
        if any(marker in path.name for marker in _TEMPORARY_MARKERS):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
