"""winact_jax.sharding: the mesh, its data axis, and where each array lives.

Runs on the 4 host CPU devices that conftest.py sets up.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from winact_jax import sharding


def test_make_mesh_spans_every_device_on_one_data_axis():
    mesh = sharding.make_mesh()
    assert sharding.DATA_AXIS == "data"
    assert mesh.axis_names == ("data",)
    assert mesh.shape == {"data": 4}  # conftest.py: 4 host devices
    assert list(mesh.devices.flat) == jax.devices()


def test_make_mesh_over_chosen_devices_keeps_their_order():
    devices = jax.devices()[2:0:-1]
    mesh = sharding.make_mesh(devices)
    assert list(mesh.devices.flat) == devices and sharding.data_axis_size(mesh) == 2


def test_replicated_and_batch_shardings_are_the_named_ones():
    mesh = sharding.make_mesh()
    assert sharding.replicated(mesh) == NamedSharding(mesh, P())
    assert sharding.batch_sharding(mesh) == NamedSharding(mesh, P("data"))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, jnp.bfloat16, np.bool_])
def test_replicate_puts_the_whole_array_on_every_device(dtype):
    mesh = sharding.make_mesh()
    host = (np.arange(24).reshape(6, 4) % 2).astype(dtype)
    tree = {"a": host, "scalar": np.asarray(7, np.int32), "nested": (host[:1],)}
    placed = sharding.replicate(tree, mesh)
    assert jax.tree.structure(placed) == jax.tree.structure(tree)
    array = placed["a"]
    assert array.dtype == host.dtype and array.shape == (6, 4)
    assert array.sharding.is_fully_replicated
    assert {shard.device for shard in array.addressable_shards} == set(mesh.devices.flat)
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), host)
    assert placed["scalar"].shape == () and int(placed["scalar"]) == 7
    back = sharding.to_host(placed)
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(back))
    np.testing.assert_array_equal(back["a"], host)
    np.testing.assert_array_equal(back["nested"][0], host[:1])


def test_put_with_batch_sharding_gives_each_device_its_rows():
    mesh = sharding.make_mesh()
    host = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    array = sharding.put(host, sharding.batch_sharding(mesh))
    assert not array.sharding.is_fully_replicated
    rows = sorted((shard.index[0].start, np.asarray(shard.data)) for shard in array.addressable_shards)
    assert [start for start, _ in rows] == [0, 2, 4, 6]
    for start, data in rows:
        np.testing.assert_array_equal(data, host[start : start + 2])
    np.testing.assert_array_equal(np.asarray(array), host)


def test_check_batch_divisible_accepts_multiples_and_names_the_fix():
    mesh = sharding.make_mesh()
    for batch_size in (4, 8, 64):
        sharding.check_batch_divisible(batch_size, mesh)  # no error
    with pytest.raises(ValueError, match=r"batch_size=6 is not divisible by the 4 devices.*multiple of 4"):
        sharding.check_batch_divisible(6, mesh)


def test_a_mesh_without_the_data_axis_is_refused_by_name():
    mesh = Mesh(np.array(jax.devices()), ("model",))
    with pytest.raises(ValueError, match=r"the mesh has no 'data' axis \(axes: \('model',\)\)"):
        sharding.check_batch_divisible(4, mesh)
