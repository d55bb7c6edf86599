"""Serving a dataset from device memory, for the data-parallel training loop.

Every dataset here fits in accelerator memory as uint8 (Tiny ImageNet's train
split, the largest, is 1.1 GiB), so a split is put on the device(s) once,
replicated over the mesh, and an epoch never touches the host:

    mesh = winact_jax.sharding.make_mesh()
    train = put_on_device(dataset.train, mesh)              # once
    for epoch in range(epochs):
        batches = epoch_batches(seed, epoch, len(dataset.train), 64, mesh=mesh)
        for step in range(batches.shape[0]):
            state = train_step(state, train, batches[step], ...)

    @jax.jit
    def train_step(state, train, indices, ...):
        images, labels = gather_batch(train, indices, mesh)   # sharded on "data"
        images = dataset.normalize(images)
        images = augment(key, images)                          # only with the flag
        ...

Training drops the last partial batch of each epoch: `num_examples % batch_size`
examples (at most batch_size - 1), different ones every epoch since each epoch
is a fresh permutation. Evaluation (`eval_batches`) pads the last batch instead
and masks the padding, so every example counts exactly once.

The global batch is split over the mesh's "data" axis, so it must be a multiple
of that axis's device count; every function taking a mesh checks this. Where each
array lives (replicated, or sharded along "data") is `winact_jax.sharding`'s choice.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from winact_jax.data.dataset import Split
from winact_jax.sharding import batch_sharding, check_batch_divisible, replicate, replicated

AUGMENT_PADDING = 4  # pixels of zero padding around the image before the random crop


class DeviceSplit(NamedTuple):
    """A split in device memory, replicated over the mesh. A pytree: jit arguments.

    images: uint8 (N, H, W, 3); labels: int32 (N,).
    """

    images: jax.Array
    labels: jax.Array

    @property
    def num_examples(self) -> int:
        return self.labels.shape[0]


def put_on_device(split: Split, mesh: Mesh) -> DeviceSplit:
    """Copies `split` to every device of `mesh` (`winact_jax.sharding.replicate`).

    Each process supplies only its own devices' data: it works with several
    processes as long as each loaded the same split (what `load` gives on every
    host).
    """
    return DeviceSplit(*replicate((split.images, split.labels), mesh))


def epoch_batches(
    key_seed: int,
    epoch: int,
    num_examples: int,
    batch_size: int,
    *,
    mesh: Mesh | None = None,
) -> jax.Array:
    """The example indices of one training epoch: int32 (steps, batch_size).

    A permutation of 0..num_examples-1 drawn on device with the key
    `fold_in(key(key_seed), epoch)`, so each epoch differs and any epoch can be
    redrawn (e.g. after a restart) from the seed alone. `steps = num_examples //
    batch_size`; the `num_examples % batch_size` examples at the permutation's end
    are dropped this epoch. With `mesh`, the result is replicated over it (needed
    when several processes share the mesh) and `batch_size` is checked against
    its "data" axis.
    """
    _check_batch_size(batch_size)
    if num_examples < batch_size:
        raise ValueError(
            f"batch_size={batch_size} is larger than the split ({num_examples} examples): "
            "an epoch would have no full batch"
        )
    sharding = None
    if mesh is not None:
        check_batch_divisible(batch_size, mesh)
        sharding = replicated(mesh)
    return _epoch_batches_fn(sharding)(key_seed, epoch, num_examples, batch_size)


@functools.cache
def _epoch_batches_fn(sharding: NamedSharding | None):
    def draw(key_seed, epoch, num_examples, batch_size):
        key = jax.random.fold_in(jax.random.key(key_seed), epoch)
        order = jax.random.permutation(key, num_examples)
        steps = num_examples // batch_size
        return order[: steps * batch_size].reshape(steps, batch_size).astype(jnp.int32)

    return jax.jit(draw, static_argnums=(2, 3), out_shardings=sharding)


def gather_batch(device_split: DeviceSplit, indices: jax.Array, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
    """The examples at `indices` (batch,): uint8 images and int32 labels.

    Jittable; call it inside the jitted step. The result is constrained to be
    sharded along the mesh's "data" axis, so each device gathers and keeps only
    its share of the batch.
    """
    check_batch_divisible(indices.shape[0], mesh)
    sharding = batch_sharding(mesh)
    images = jax.lax.with_sharding_constraint(device_split.images[indices], sharding)
    labels = jax.lax.with_sharding_constraint(device_split.labels[indices], sharding)
    return images, labels


def augment(
    key: jax.Array,
    images: jax.Array,
    *,
    padding: int = AUGMENT_PADDING,
    fill_value: float = 0.0,
) -> jax.Array:
    """Random crop after `padding` pixels of padding, and random horizontal flip.

    The standard CIFAR augmentation, per example: each image (B, H, W, C) is
    padded with `fill_value` on all four sides, an HxW window is cut at a uniform
    offset in 0..2*padding on each axis, and it is mirrored left-right with
    probability 1/2. Jittable and pure; each example draws from its own key split
    off `key`. torchvision pads pixels with black before scaling: to match it pass
    `fill_value=dataset.pixel_range[0]` (0.0 already is black for [0, 1] data).
    """
    keys = jax.random.split(key, images.shape[0])
    augment_one = functools.partial(_augment_one, padding=padding, fill_value=fill_value)
    return jax.vmap(augment_one)(keys, images)


def _augment_one(key: jax.Array, image: jax.Array, *, padding: int, fill_value: float):
    crop_key, flip_key = jax.random.split(key)
    height, width, channels = image.shape
    padded = jnp.pad(
        image,
        ((padding, padding), (padding, padding), (0, 0)),
        constant_values=jnp.asarray(fill_value, image.dtype),
    )
    top, left = jax.random.randint(crop_key, (2,), 0, 2 * padding + 1)
    cropped = jax.lax.dynamic_slice(padded, (top, left, 0), (height, width, channels))
    return jnp.where(jax.random.bernoulli(flip_key), cropped[:, ::-1], cropped)


def eval_batches(num_examples: int, batch_size: int, *, mesh: Mesh | None = None) -> tuple[jax.Array, jax.Array]:
    """Indices int32 (steps, batch_size) and mask bool (steps, batch_size) of one
    evaluation pass over 0..num_examples-1, in order.

    `steps = ceil(num_examples / batch_size)`: the last batch is padded with index
    0 and mask False, so every batch has the same shape (one compilation) and
    every example is counted exactly once when the step weights its per-example
    results by the mask. With `mesh`, both are replicated over it and
    `batch_size` is checked against its "data" axis.
    """
    _check_batch_size(batch_size)
    steps = -(-num_examples // batch_size)
    positions = np.arange(steps * batch_size).reshape(steps, batch_size)
    mask = positions < num_examples
    indices = np.where(mask, positions, 0).astype(np.int32)
    if mesh is None:
        return jnp.asarray(indices), jnp.asarray(mask)
    check_batch_divisible(batch_size, mesh)
    return replicate((indices, mask), mesh)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be positive")
