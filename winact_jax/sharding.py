"""Where arrays live: the device mesh, its data axis, and every replicate/shard choice.

Training here is data parallel over a one-axis mesh, as in big_vision's
`sharding.py`: one program runs on every device of `make_mesh()`, the train state
and the datasets are *replicated* (each device holds all of it), and each batch
is *sharded* along `DATA_AXIS` (each device holds `batch_size / mesh.size`
examples). Every module that places or reads an array asks this one:

    mesh = make_mesh()                          # every device of every process
    state = replicate(state, mesh)              # host tree -> replicated arrays
    ... jax.jit(step, out_shardings=replicated(mesh)) ...
    images = jax.lax.with_sharding_constraint(images, batch_sharding(mesh))
    loss = to_host(metrics.loss)                # replicated array -> NumPy

Arrays are built with `jax.make_array_from_callback`, which asks each process only
for the shards of its own devices, so the same calls work when the mesh spans
several processes, provided every process holds the same host array (the same
seed, the same dataset).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"  # the mesh axis a batch is split along


def make_mesh(devices=None) -> Mesh:
    """A one-axis mesh named `DATA_AXIS` over `devices` (default: every device of
    every process, `jax.devices()`)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device of `mesh` holds the whole array."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The leading axis (the batch) is split evenly over the mesh's `DATA_AXIS`."""
    return NamedSharding(mesh, P(DATA_AXIS))


def data_axis_size(mesh: Mesh) -> int:
    """How many devices a batch is split over.

    Raises:
      ValueError: `mesh` has no `DATA_AXIS`.
    """
    if DATA_AXIS not in mesh.shape:
        raise ValueError(f"the mesh has no {DATA_AXIS!r} axis (axes: {tuple(mesh.shape)})")
    return mesh.shape[DATA_AXIS]


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
    """Raises `ValueError` unless a global batch of `batch_size` splits evenly
    over the mesh's `DATA_AXIS`."""
    devices = data_axis_size(mesh)
    if batch_size % devices:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {devices} devices of the "
            f"mesh's {DATA_AXIS!r} axis: the global batch is split evenly over them; "
            f"use a multiple of {devices}"
        )


def put(tree, sharding: NamedSharding):
    """`tree`'s leaves (host arrays, the same on every process) as global
    `jax.Array`s laid out by `sharding`. Each process supplies only its own
    devices' shards."""

    def put_leaf(leaf):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put_leaf, tree)


def replicate(tree, mesh: Mesh):
    """`tree`'s leaves copied to every device of `mesh` (`put(tree, replicated(mesh))`)."""
    return put(tree, replicated(mesh))


def to_host(tree):
    """NumPy copies of a tree of replicated arrays, read from this process's first
    device (so it works for arrays that span several processes)."""
    return jax.tree.map(lambda leaf: np.asarray(leaf.addressable_data(0)), tree)
