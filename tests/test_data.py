"""The datasets: splits, digits, the TFDS loaders on fake data, the missing-data error.

No dataset can be downloaded here, so the TFDS paths run on data made in the test:
Tiny ImageNet on a zip written in the real archive layout and prepared by our
builder end to end; Caltech-101, CIFAR and STL-10 through `tfds.testing.mock_data`,
which stands in for the prepared records while the loaders' own code (reading,
cropping, label remapping, splitting) runs for real.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import winact_jax.data as wd
from winact_jax.data import digits, splits

# --------------------------------------------------------------------------- helpers


def assert_partition(parts, total):
    """The parts are disjoint and together hold every index below `total`."""
    joined = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(joined), np.arange(total))


def assert_stratified(labels, part_labels, fraction, num_classes):
    """Each class has `fraction` of its examples in the part, up to one (rounding)."""
    class_counts = np.bincount(labels, minlength=num_classes)
    part_counts = np.bincount(part_labels, minlength=num_classes)
    assert np.all(np.abs(part_counts - fraction * class_counts) <= 1.0 + 1e-9), (
        part_counts,
        fraction * class_counts,
    )


def all_labels(dataset):
    return np.concatenate([dataset.train.labels, dataset.validation.labels, dataset.test.labels])


# --------------------------------------------------------------------------- splits


def test_train_validation_test_split_sizes_stratification_and_determinism():
    labels = np.arange(8677) % 101  # Caltech-101's size, without its clutter class
    train, validation, test = splits.train_validation_test_split(labels, seed=0)
    assert (len(train), len(validation), len(test)) == (6073, 1302, 1302)
    assert_partition([train, validation, test], len(labels))
    for part, fraction in ((train, 0.7), (validation, 0.15), (test, 0.15)):
        assert_stratified(labels, labels[part], fraction, 101)

    again = splits.train_validation_test_split(labels, seed=0)
    other_seed = splits.train_validation_test_split(labels, seed=1)
    for first, second in zip((train, validation, test), again, strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(test, other_seed[2])


def test_stratified_split_holds_out_the_fraction_of_every_class():
    rng = np.random.default_rng(0)
    labels = rng.choice(10, size=5000, p=np.linspace(1, 3, 10) / np.linspace(1, 3, 10).sum())
    kept, held_out = splits.stratified_split(labels, splits.VALIDATION_FRACTION, seed=0)
    assert (len(kept), len(held_out)) == (4500, 500)  # STL-10's train -> 4500 / 500
    assert_partition([kept, held_out], len(labels))
    assert_stratified(labels, labels[held_out], 0.1, 10)


def test_fractions_must_add_up_to_one():
    with pytest.raises(ValueError, match="add up to 1"):
        splits.train_validation_test_split(np.arange(100) % 2, (0.7, 0.2, 0.2), seed=0)


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_dataset():
    return wd.load("digits")


def test_digits_end_to_end(digits_dataset):
    from sklearn.datasets import load_digits

    dataset = digits_dataset
    assert dataset.name == "digits"
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (1257, 270, 270)
    assert dataset.image_shape == (32, 32, 3)
    assert dataset.num_classes == 10 and dataset.class_names == tuple("0123456789")
    assert dataset.pixel_range == (0.0, 1.0)
    for split in (dataset.train, dataset.validation, dataset.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
        assert split.labels.dtype == np.int32
        # Grey: the three channels are one image repeated.
        np.testing.assert_array_equal(split.images[..., 0], split.images[..., 2])

    # The three splits hold every digit exactly once: match them to the source.
    source = load_digits()
    source_images = digits.upsample(source.images)
    source_keys = {image.tobytes(): label for image, label in zip(source_images, source.target, strict=True)}
    assert len(source_keys) == len(source.target)  # no two digits are the same image
    images = np.concatenate([dataset.train.images, dataset.validation.images, dataset.test.images])
    labels = all_labels(dataset)
    assert len(images) == len(source.target)
    assert all(source_keys[image.tobytes()] == label for image, label in zip(images, labels, strict=True))
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(source.target))

    for split, fraction in ((dataset.train, 0.7), (dataset.validation, 0.15), (dataset.test, 0.15)):
        assert_stratified(labels, split.labels, fraction, 10)


def test_digits_split_is_fixed_across_calls_and_drawn_by_seed(digits_dataset):
    again = wd.load("digits")
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(digits_dataset, name).images, getattr(again, name).images)
        np.testing.assert_array_equal(getattr(digits_dataset, name).labels, getattr(again, name).labels)
    other = wd.load("digits", seed=1)
    assert len(other.test) == len(digits_dataset.test)
    assert not np.array_equal(other.test.images, digits_dataset.test.images)


def test_digits_upsampling_maps_0_16_to_0_255_bilinearly():
    ink = np.zeros((1, 8, 8))
    ink[0, :, 4:] = 16  # right half full ink
    image = digits.upsample(ink)[0, ..., 0]
    assert image.shape == (32, 32)
    assert image[:, :14].max() == 0 and image[:, 18:].min() == 255
    # Bilinear: the edge between the halves is a ramp, not a step.
    ramp = image[0, 14:18]
    assert np.all(np.diff(ramp.astype(int)) > 0) and 0 < ramp[0] < ramp[-1] < 255


def test_normalize_is_jittable_and_gives_each_datasets_range(digits_dataset):
    pixels = np.array([[[[0, 255, 51]]]], np.uint8)
    scaled = jax.jit(digits_dataset.normalize)(pixels)
    assert scaled.dtype == jnp.float32
    np.testing.assert_allclose(scaled.ravel(), [0.0, 1.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(wd.scale_pixels(pixels, wd.SYMMETRIC_RANGE).ravel(), [-1.0, 1.0, -0.6], atol=1e-6)


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*tiny_imagenet"):
        wd.load("mnist")


def test_split_checks_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        wd.Split(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="int32"):
        wd.Split(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int64))


def test_importing_and_loading_digits_never_imports_tensorflow():
    code = (
        "import sys, winact_jax.data as wd\n"
        "wd.load('digits')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_datasets'))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


# --------------------------------------------------------------------------- Tiny ImageNet

TINY_WNIDS = ("n02000002", "n01000001", "n03000003")  # wnids.txt's order, not sorted
TINY_WORDS = {
    "n01000001": "goldfish, Carassius auratus",
    "n02000002": "European fire salamander, Salamandra salamandra",
    # n03000003 is missing from words.txt: its name stays its wnid.
}
TINY_COLORS = {"n02000002": (220, 30, 30), "n01000001": (30, 220, 30), "n03000003": (30, 30, 220)}
TINY_TRAIN_PER_CLASS = 10
TINY_VAL_PER_CLASS = 2


def _jpeg(color, rng) -> bytes:
    """A 64x64 JPEG of one colour plus a little noise: its class can be read back."""
    pixels = np.asarray(color)[None, None, :] + rng.integers(-8, 9, (64, 64, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_fake_tiny_imagenet(path):
    """tiny-imagenet-200.zip in the real layout: 3 classes, 10 train and 2 val each."""
    rng = np.random.default_rng(0)
    root = "tiny-imagenet-200/"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(root + "wnids.txt", "\n".join(TINY_WNIDS) + "\n")
        words = {"n00001740": "entity", **TINY_WORDS}  # words.txt lists other synsets too
        archive.writestr(root + "words.txt", "".join(f"{w}\t{t}\n" for w, t in words.items()))
        for wnid in TINY_WNIDS:
            archive.writestr(f"{root}train/{wnid}/{wnid}_boxes.txt", f"{wnid}_0.JPEG\t0\t0\t9\t9\n")
            for i in range(TINY_TRAIN_PER_CLASS):
                archive.writestr(f"{root}train/{wnid}/images/{wnid}_{i}.JPEG", _jpeg(TINY_COLORS[wnid], rng))
        # val/images is flat: only the annotations say which class an image is.
        annotations = []
        for k in range(TINY_VAL_PER_CLASS * len(TINY_WNIDS)):
            wnid = TINY_WNIDS[k % len(TINY_WNIDS)]
            archive.writestr(f"{root}val/images/val_{k}.JPEG", _jpeg(TINY_COLORS[wnid], rng))
            annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t4\t60\t62\n")
        archive.writestr(root + "val/val_annotations.txt", "".join(annotations))
        # The unlabelled test images must not be read.
        archive.writestr(root + "test/images/test_0.JPEG", _jpeg((0, 0, 0), rng))


def colour_classes(images):
    """Each image's class, read from its dominant colour channel."""
    dominant = images.reshape(len(images), -1, 3).mean(axis=1).argmax(axis=1)
    by_channel = {int(np.argmax(color)): i for i, color in enumerate(TINY_COLORS.values())}
    wnid_of_channel = {c: list(TINY_COLORS)[i] for c, i in by_channel.items()}
    return np.array([TINY_WNIDS.index(wnid_of_channel[c]) for c in dominant])


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    archive = data_dir / "downloads" / "manual" / "tiny-imagenet-200.zip"
    write_fake_tiny_imagenet(archive)
    dataset = wd.load("tiny_imagenet", data_dir=str(data_dir))
    return dataset, data_dir, archive


def test_tiny_imagenet_builder_end_to_end(tiny_imagenet):
    dataset, data_dir, _ = tiny_imagenet
    assert (data_dir / "tiny_imagenet" / "1.0.0" / "dataset_info.json").exists()
    # train 30 -> train 27 / validation 3 (10%, one per class); the 6 val images are test.
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (27, 3, 6)
    assert dataset.num_classes == 3
    assert dataset.class_names == (
        TINY_WORDS["n02000002"],
        TINY_WORDS["n01000001"],
        "n03000003",
    )
    assert dataset.image_shape == (64, 64, 3) and dataset.pixel_range == (0.0, 1.0)
    for split, per_class in (
        (dataset.train, TINY_TRAIN_PER_CLASS - 1),
        (dataset.validation, 1),
        (dataset.test, TINY_VAL_PER_CLASS),
    ):
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int32
        np.testing.assert_array_equal(np.bincount(split.labels, minlength=3), [per_class] * 3)
        # Every label (test: from val_annotations.txt) is the class its image shows.
        np.testing.assert_array_equal(split.labels, colour_classes(split.images))


def test_tiny_imagenet_reuses_prepared_data_with_the_same_split(tiny_imagenet):
    dataset, data_dir, archive = tiny_imagenet
    archive_bytes = archive.read_bytes()
    archive.unlink()  # the prepared records alone must be enough now
    try:
        again = wd.load("tiny_imagenet", data_dir=str(data_dir))
    finally:
        archive.write_bytes(archive_bytes)
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(dataset, name).images, getattr(again, name).images)
        np.testing.assert_array_equal(getattr(dataset, name).labels, getattr(again, name).labels)
    assert again.class_names == dataset.class_names  # restored from metadata.json


def test_missing_tiny_imagenet_says_what_to_place_where_and_leaves_nothing(tmp_path, monkeypatch):
    from tensorflow_datasets.core.download import downloader

    from winact_jax.data.tiny_imagenet import TinyImagenet

    # A download that fails at once, whatever the network: a port that refuses, no retries.
    monkeypatch.setattr(TinyImagenet, "DOWNLOAD_URL", "http://127.0.0.1:1/tiny-imagenet-200.zip")
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)
    data_dir = tmp_path / "tfds"
    (data_dir / "cifar10").mkdir(parents=True)
    (data_dir / "cifar10" / "keep.txt").write_text("another dataset's file")
    before = sorted(data_dir.rglob("*"))

    with pytest.raises(wd.DataUnavailableError) as raised:
        wd.load("tiny_imagenet", data_dir=str(data_dir))

    message = str(raised.value)
    assert "tiny-imagenet-200.zip" in message
    assert str(data_dir / "downloads" / "manual") in message
    assert f"python -m winact_jax.data prepare tiny_imagenet --data-dir {data_dir}" in message
    assert "ConnectionError" in message  # why it could not be downloaded
    # Nothing half-written: no dataset version, no temporary folders, no new empty ones.
    assert not (data_dir / "tiny_imagenet").exists()
    assert sorted(data_dir.rglob("*")) == before


def test_source_files_are_the_names_tfds_looks_for_in_the_manual_directory():
    import tensorflow_datasets as tfds

    from winact_jax.data.tfds_datasets import SOURCE_FILES

    for name in ("cifar10", "cifar100", "stl10", "caltech101"):
        file_name, url = SOURCE_FILES[name]
        registered = tfds.builder_cls(name).url_infos
        assert registered[url].filename == file_name, name


def test_cli_prints_the_instructions_and_fails(tmp_path, monkeypatch, capsys):
    from winact_jax.data import __main__ as cli

    def unavailable(name, *, data_dir, seed):
        raise wd.DataUnavailableError(f"place the file for {name} in {data_dir}")

    monkeypatch.setattr(cli, "load", unavailable)
    assert cli.main(["prepare", "stl10", "--data-dir", str(tmp_path)]) == 1
    assert f"place the file for stl10 in {tmp_path}" in capsys.readouterr().err


# --------------------------------------------------------------------------- mock_data


CALTECH_PER_CLASS = 7  # 102 classes x 7: enough for every class in each of 70/15/15


def _fake_caltech101(self, split, **kwargs):
    """TFDS caltech101 examples: 7 per class, images of many sizes.

    Two carry a pattern whose crop is known: image A (300x400) is white exactly on
    its central 256x256 square and black around it; image B (128x128) is white.
    """
    import tensorflow as tf

    del split, kwargs
    rng = np.random.default_rng(0)

    def examples():
        for label in range(102):
            for i in range(CALTECH_PER_CLASS):
                if (label, i) == (0, 0):
                    image = np.zeros((300, 400, 3), np.uint8)
                    image[22:278, 72:328] = 255
                elif (label, i) == (1, 0):
                    image = np.full((128, 128, 3), 255, np.uint8)
                else:
                    height, width = rng.integers(5, 60, size=2)
                    image = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
                yield {"image": image, "label": label, "image/file_name": f"{label}_{i}.jpg"}

    return tf.data.Dataset.from_generator(
        examples,
        output_signature={
            "image": tf.TensorSpec((None, None, 3), tf.uint8),
            "label": tf.TensorSpec((), tf.int64),
            "image/file_name": tf.TensorSpec((), tf.string),
        },
    ).apply(tf.data.experimental.assert_cardinality(102 * CALTECH_PER_CLASS))


def test_caltech101_crop_resize_clutter_and_split_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(as_dataset_fn=_fake_caltech101):
        dataset = wd.load("caltech101", data_dir="/nonexistent/tfds")

    # The clutter class is gone: 101 classes, labels 0..100, its 7 images dropped.
    assert dataset.num_classes == 101 and len(dataset.class_names) == 101
    assert "background_google" not in dataset.class_names
    assert dataset.class_names[:4] == ("accordion", "airplanes", "anchor", "ant")
    assert dataset.class_names[4] == "barrel"  # came after background_google
    labels = all_labels(dataset)
    assert len(labels) == 101 * CALTECH_PER_CLASS
    np.testing.assert_array_equal(np.bincount(labels), [CALTECH_PER_CLASS] * 101)

    # 707 -> 494 / 106 / 107, stratified: every class in every split.
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (494, 106, 107)
    for split, fraction in ((dataset.train, 0.7), (dataset.validation, 0.15), (dataset.test, 0.15)):
        assert_stratified(labels, split.labels, fraction, 101)
        assert set(split.labels) == set(range(101))

    assert dataset.image_shape == (64, 64, 3) and dataset.pixel_range == (-1.0, 1.0)
    images = np.concatenate([dataset.train.images, dataset.validation.images, dataset.test.images])
    assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
    # A: cropping keeps exactly the central 256x256 square, all white.
    all_white = np.flatnonzero(images.min(axis=(1, 2, 3)) >= 250)
    assert len(all_white) == 1 and labels[all_white[0]] == 0
    # B: 128 < 256, so it is zero-padded to 256 around the centre: white centre
    # quarter (32x32 of 64x64), black border.
    padded = [
        image
        for image in images
        if image[24:40, 24:40].min() >= 250 and image[:12].max() <= 5 and image[:, -12:].max() <= 5
    ]
    assert len(padded) == 1
    np.testing.assert_allclose(padded[0].mean(), 255 * 0.25, atol=255 * 0.02)


def test_cifar100_split_and_classes_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=1000):
        dataset = wd.load("cifar100", data_dir="/nonexistent/tfds")
    # mock_data gives 1000 examples per split: train 1000 -> 900 / 100; test 1000.
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (900, 100, 1000)
    assert dataset.num_classes == 100 and len(dataset.class_names) == 100
    assert dataset.image_shape == (32, 32, 3) and dataset.pixel_range == (0.0, 1.0)
    train_labels = np.concatenate([dataset.train.labels, dataset.validation.labels])
    assert_stratified(train_labels, dataset.validation.labels, 0.1, 100)
    assert dataset.train.labels.dtype == np.int32 and dataset.train.images.dtype == np.uint8
    assert train_labels.max() < 100


@pytest.mark.parametrize(("name", "shape"), [("cifar10", (32, 32, 3)), ("stl10", (96, 96, 3))])
def test_ten_class_datasets_through_mock_data(name, shape):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=200):
        dataset = wd.load(name, data_dir="/nonexistent/tfds")
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (180, 20, 200)
    assert dataset.num_classes == 10 and dataset.image_shape == shape
    assert dataset.pixel_range == (0.0, 1.0)
    assert dataset.train.images.shape[1:] == shape
