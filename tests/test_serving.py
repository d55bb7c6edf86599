"""Device-resident serving: replication, epoch permutations, sharded batches,
augmentation, and evaluation passes that count every example once.

Runs on the 4 host CPU devices that conftest.py sets up, on a 1-D mesh ("data",).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import winact_jax.data as wd


@pytest.fixture(scope="module")
def mesh():
    return Mesh(np.array(jax.devices()), ("data",))


@pytest.fixture(scope="module")
def small_split():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    return wd.Split(images, np.arange(50, dtype=np.int32) % 7)


def test_the_session_has_several_devices(mesh):
    assert mesh.size == 4  # conftest.py: --xla_force_host_platform_device_count=4


def test_put_on_device_replicates_over_the_mesh(mesh, small_split):
    device_split = wd.put_on_device(small_split, mesh)
    assert device_split.num_examples == 50
    for array, source in (
        (device_split.images, small_split.images),
        (device_split.labels, small_split.labels),
    ):
        assert array.sharding.is_equivalent_to(NamedSharding(mesh, P()), array.ndim)
        assert array.sharding.is_fully_replicated
        assert {shard.device for shard in array.addressable_shards} == set(mesh.devices.flat)
        assert array.dtype == source.dtype
        for shard in array.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), source)


def test_epoch_batches_are_a_seeded_permutation_without_the_tail(mesh):
    batches = wd.epoch_batches(3, 0, 50, 8, mesh=mesh)
    assert batches.shape == (6, 8) and batches.dtype == jnp.int32  # 50 // 8 = 6 steps
    assert batches.sharding.is_fully_replicated
    drawn = np.asarray(batches).ravel()
    assert len(set(drawn)) == 48 and drawn.min() >= 0 and drawn.max() < 50  # 2 dropped

    np.testing.assert_array_equal(batches, wd.epoch_batches(3, 0, 50, 8))  # redrawable
    next_epoch = np.asarray(wd.epoch_batches(3, 1, 50, 8)).ravel()
    other_seed = np.asarray(wd.epoch_batches(4, 0, 50, 8)).ravel()
    assert not np.array_equal(drawn, next_epoch) and not np.array_equal(drawn, other_seed)
    # The dropped examples change from epoch to epoch, so none is left out for good.
    dropped = [frozenset(range(50)) - set(np.asarray(wd.epoch_batches(3, epoch, 50, 8)).ravel()) for epoch in range(20)]
    assert len(set(dropped)) > 1 and frozenset().union(*dropped) != frozenset()


def test_epoch_batches_follow_the_key_the_docs_name():
    key = jax.random.fold_in(jax.random.key(5), 2)
    expected = np.asarray(jax.random.permutation(key, 30))[:24].reshape(3, 8)
    np.testing.assert_array_equal(wd.epoch_batches(5, 2, 30, 8), expected)


def test_batch_sizes_that_the_mesh_cannot_split_are_refused(mesh, small_split):
    devices = mesh.shape["data"]
    bad = devices + 2
    for call in (
        lambda: wd.epoch_batches(0, 0, 50, bad, mesh=mesh),
        lambda: wd.eval_batches(50, bad, mesh=mesh),
        lambda: wd.gather_batch(wd.put_on_device(small_split, mesh), jnp.arange(bad), mesh),
    ):
        with pytest.raises(ValueError, match=rf"batch_size={bad} .*{devices} devices"):
            call()
    with pytest.raises(ValueError, match="larger than the split"):
        wd.epoch_batches(0, 0, 5, 8)


def test_gather_batch_in_jit_is_sharded_along_data(mesh, small_split):
    device_split = wd.put_on_device(small_split, mesh)
    batches = wd.epoch_batches(0, 0, 50, 8, mesh=mesh)

    @jax.jit
    def step(device_split, batches, step_index):
        return wd.gather_batch(device_split, batches[step_index], mesh)

    images, labels = step(device_split, batches, 2)
    indices = np.asarray(batches[2])
    np.testing.assert_array_equal(images, small_split.images[indices])
    np.testing.assert_array_equal(labels, small_split.labels[indices])
    for array in (images, labels):
        assert array.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), array.ndim)
        assert not array.sharding.is_fully_replicated
        # Each device holds its own quarter of the batch.
        assert {shard.data.shape[0] for shard in array.addressable_shards} == {8 // mesh.size}


def _crops_and_flips(image, padding, fill_value):
    """Every output `augment` may give for `image`."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)), constant_values=fill_value)
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[top : top + height, left : left + width]
            yield (top, left, False), crop
            yield (top, left, True), crop[:, ::-1]


def test_augment_crops_the_padded_image_and_flips_it(mesh):
    rng = np.random.default_rng(0)
    images = rng.uniform(0.1, 1.0, (64, 10, 12, 3)).astype(np.float32)  # no pixel is 0
    key = jax.random.key(7)
    augmented = np.asarray(jax.jit(wd.augment)(key, images))
    assert augmented.shape == images.shape and augmented.dtype == np.float32
    np.testing.assert_array_equal(augmented, jax.jit(wd.augment)(key, images))

    transforms = []
    for image, output in zip(images, augmented, strict=True):
        matches = [t for t, candidate in _crops_and_flips(image, 4, 0.0) if np.array_equal(candidate, output)]
        assert matches, "output is not a 4-pixel-padded crop of its input, flipped or not"
        transforms.append(matches[0])
    # Per-example randomness: offsets spread over the range, both flips occur.
    tops = {t[0] for t in transforms}
    assert len(set(transforms)) > 40 and min(tops) < 3 and max(tops) > 5
    assert {t[2] for t in transforms} == {True, False}
    assert not np.array_equal(augmented, np.asarray(wd.augment(jax.random.key(8), images)))


def test_augment_fills_with_the_given_value_and_keeps_the_batch_sharding(mesh):
    images = jnp.ones((8, 6, 6, 3))
    batch_sharding = NamedSharding(mesh, P("data"))
    images = jax.device_put(images, batch_sharding)
    augment = jax.jit(functools.partial(wd.augment, fill_value=-1.0))
    augmented = augment(jax.random.key(0), images)
    assert set(np.unique(np.asarray(augmented))) <= {-1.0, 1.0}
    assert augmented.sharding.is_equivalent_to(batch_sharding, 4)


def test_eval_batches_cover_every_example_exactly_once(mesh):
    indices, mask = wd.eval_batches(50, 8, mesh=mesh)
    assert indices.shape == mask.shape == (7, 8)  # ceil(50 / 8)
    assert indices.dtype == jnp.int32 and mask.dtype == jnp.bool_
    assert indices.sharding.is_fully_replicated and mask.sharding.is_fully_replicated
    indices, mask = np.asarray(indices), np.asarray(mask)
    np.testing.assert_array_equal(np.sort(indices[mask]), np.arange(50))
    assert mask.sum() == 50 and not mask[-1, 2:].any() and (indices[~mask] == 0).all()

    exact_indices, exact_mask = wd.eval_batches(48, 8)
    assert exact_indices.shape == (6, 8) and bool(exact_mask.all())


def test_an_evaluation_pass_counts_every_test_example_once(mesh):
    """digits' 270 test images in batches of 64: 5 steps, the last with 14 real."""
    dataset = wd.load("digits")
    test = wd.put_on_device(dataset.test, mesh)
    num_examples = len(dataset.test)

    @jax.jit
    def eval_step(test, indices, mask):
        images, labels = wd.gather_batch(test, indices, mesh)
        images = dataset.normalize(images)
        weight = mask.astype(jnp.float32)
        seen = jnp.zeros(num_examples).at[indices].add(weight)
        per_class = jnp.zeros(dataset.num_classes).at[labels].add(weight)
        pixel_sum = jnp.sum(images.mean(axis=(1, 2, 3)) * weight)
        return seen, per_class, pixel_sum

    all_indices, all_mask = wd.eval_batches(num_examples, 64, mesh=mesh)
    assert all_indices.shape == (5, 64)
    seen = np.zeros(num_examples)
    per_class = np.zeros(dataset.num_classes)
    pixel_sum = 0.0
    for step in range(all_indices.shape[0]):
        step_seen, step_classes, step_pixels = eval_step(test, all_indices[step], all_mask[step])
        seen += np.asarray(step_seen)
        per_class += np.asarray(step_classes)
        pixel_sum += float(step_pixels)

    np.testing.assert_array_equal(seen, np.ones(num_examples))
    np.testing.assert_array_equal(per_class, np.bincount(dataset.test.labels, minlength=10))
    expected_mean = (dataset.test.images.astype(np.float64) / 255).mean()
    np.testing.assert_allclose(pixel_sum / num_examples, expected_mean, rtol=1e-5)
