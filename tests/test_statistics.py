"""winact_jax.models.statistics: zero and dead fractions, mean and max per activation
layer, hand-checked on constructed inputs; every layer of every model; under jit;
learned influences; flat metric keys."""

import doctest

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import winact_jax as wa
from winact_jax import models
from winact_jax.models import statistics
from winact_jax.models.activation import ActivationLayer, Stateless
from winact_jax.models.statistics import (
    activation_statistics,
    flatten_statistics,
    learned_influences,
    statistics_from_state,
)


@pytest.fixture(autouse=True, scope="module")
def fast_compilation():
    # As in test_models.py: eager models compile each op once, and XLA's
    # optimisation passes would cost more than they save here.
    previous = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


class TwoReLUs(nnx.Module):
    """`relu(x)` then `relu(x - 1)` on the same input, the second in a list (path
    `"blocks.0.act"`), and a batch norm to show the model is left unchanged."""

    def __init__(self, rngs):
        self.first = Stateless(wa.relu)
        self.blocks = nnx.List([nnx.Dict(act=Stateless(wa.relu))])
        self.norm = nnx.BatchNorm(3, rngs=rngs)

    def __call__(self, x):
        x = self.norm(x)
        return self.first(x) + self.blocks[0]["act"](x - 1.0)


def constructed_input():
    """(2, 2, 2, 3): channel 0 all negative (dead under ReLU), channel 1 negative in
    one example only, channel 2 all positive, as values 1..8."""
    x = np.zeros((2, 2, 2, 3), np.float32)
    x[..., 0] = -np.arange(1, 9).reshape(2, 2, 2)
    x[0, ..., 1] = -1.0
    x[1, ..., 1] = [[1.0, 2.0], [3.0, 4.0]]
    x[..., 2] = np.arange(1, 9).reshape(2, 2, 2)
    return jnp.asarray(x)


def test_hand_checked_relu_statistics():
    model = TwoReLUs(nnx.Rngs(0))
    model.eval()  # running statistics 0 and 1: the batch norm is the identity (up to eps)
    model.norm.epsilon = 0.0
    x = constructed_input()
    result = activation_statistics(model, x)
    assert set(result) == {"first", "blocks.0.act"}
    # Fractions and means are float32 quotients of exact counts and sums: the
    # correctly rounded fraction.

    first = result["first"]
    # 24 outputs: 8 (channel 0) + 4 (channel 1, example 0) zeros.
    assert first["zero_fraction"] == np.float32(12 / 24)
    assert first["dead_fraction"] == np.float32(1 / 3)
    assert first["mean"] == np.float32((1 + 2 + 3 + 4 + 36) / 24)
    assert first["max"] == np.float32(8.0)

    second = result["blocks.0.act"]  # relu(x - 1): the 1s become zeros too
    assert second["zero_fraction"] == np.float32((8 + 4 + 1 + 1) / 24)
    assert second["dead_fraction"] == np.float32(1 / 3)
    assert second["mean"] == np.float32((0 + 1 + 2 + 3 + 28) / 24)
    assert second["max"] == np.float32(7.0)


def test_under_nnx_jit():
    model = TwoReLUs(nnx.Rngs(0))
    model.eval()
    model.norm.epsilon = 0.0
    x = constructed_input()
    jitted = nnx.jit(activation_statistics)(model, x)
    chex.assert_trees_all_close(jitted, activation_statistics(model, x), rtol=1e-6, atol=0)
    # The hand-checked values (test above) hold in the compiled program too.
    assert jitted["first"]["zero_fraction"] == np.float32(12 / 24)
    assert jitted["first"]["dead_fraction"] == np.float32(1 / 3)
    assert jitted["blocks.0.act"]["max"] == np.float32(7.0)


def test_a_channel_alive_in_one_position_is_not_dead():
    layer_model = TwoReLUs(nnx.Rngs(0))
    layer_model.eval()
    x = -jnp.ones((2, 3, 3, 3))
    x = x.at[1, 2, 0, 2].set(5.0)  # channel 2 lives at one position of one example
    result = activation_statistics(layer_model, x)["first"]
    assert result["dead_fraction"] == np.float32(2 / 3)
    assert result["zero_fraction"] == np.float32(53 / 54)


def test_a_layer_called_twice_pools_its_calls():
    class Twice(nnx.Module):
        def __init__(self):
            self.act = Stateless(wa.relu)

        def __call__(self, x):
            return self.act(x) + self.act(-x)

    x = jnp.array([[1.0, -2.0], [3.0, -4.0]])  # relu(x): 2 zeros, channel 1 dead; relu(-x): channel 0 dead
    result = activation_statistics(Twice(), x)["act"]
    assert result["zero_fraction"] == np.float32(4 / 8)
    assert result["dead_fraction"] == 0.0  # each channel lives in one of the calls
    assert result["mean"] == np.float32(10 / 8) and result["max"] == 4.0


def test_model_is_unchanged_and_ordinary_calls_record_nothing():
    model = TwoReLUs(nnx.Rngs(0))
    model.train()  # batch norm on batch statistics would update the running ones
    before = nnx.state(model)
    graphdef = nnx.graphdef(model)
    x = constructed_input()
    activation_statistics(model, x)
    chex.assert_trees_all_equal(before, nnx.state(model))
    assert nnx.graphdef(model) == graphdef
    model(x)
    assert not jax.tree.leaves(nnx.state(model, nnx.Intermediate))
    assert not any(m.record_statistics for _, m in nnx.iter_modules(model) if isinstance(m, ActivationLayer))


MODELS = {
    "resnet20": dict(width=0.25),
    "seed_backbone": dict(width=0.0625),
    "lenet": dict(image_size=16),
    "stl_net": dict(width=0.125),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_activation_layer_of_every_model_has_statistics(name):
    model = models.create(name, 10, "nelu", act_params={"window": 2}, rngs=nnx.Rngs(0), **MODELS[name])
    model.eval()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), jnp.float32)
    result = activation_statistics(model, x)
    layers = {statistics.layer_name(path) for path, m in nnx.iter_modules(model) if isinstance(m, ActivationLayer)}
    assert set(result) == layers and len(layers) >= 4
    for layer, values in result.items():
        assert set(values) == set(statistics.STATISTICS), layer
        assert 0 <= float(values["zero_fraction"]) <= 1 and 0 <= float(values["dead_fraction"]) <= 1
        assert np.isfinite(float(values["mean"])) and float(values["max"]) >= 0  # nelu is non-negative


def test_resnet_layer_names_and_jit():
    model = models.create(
        "resnet20", 10, "nelu", act_params={"window": 2}, learn_influence=True, width=0.25, rngs=nnx.Rngs(0)
    )
    model.eval()
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 3)), jnp.float32)
    eager = activation_statistics(model, x)
    expected = ["stem_act"] + [f"blocks.{b}.act{i}" for b in range(9) for i in (1, 2)]
    assert sorted(eager) == sorted(expected)

    # The training loop's form: graph definition static, state as (params, rest).
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    jitted, influences = jax.jit(statistics_from_state, static_argnums=0)(graphdef, (params, rest), x)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-5, atol=1e-6)
    assert sorted(influences) == sorted(expected)
    chex.assert_trees_all_close(influences, learned_influences(model))


def test_learned_influences():
    model = models.create(
        "lenet", 10, "pnelu", act_params={"influence": 0.3}, learn_influence=True, image_size=16, rngs=nnx.Rngs(0)
    )
    influences = learned_influences(model)
    assert {k: v.shape for k, v in influences.items()} == {
        "conv1_act": (6,),
        "conv2_act": (16,),
        "fc1_act": (120,),
        "fc2_act": (84,),
    }
    for value in influences.values():
        chex.assert_trees_all_close(value, jnp.full(value.shape, 0.3), rtol=1e-6)
    assert learned_influences(models.create("lenet", 10, "pnelu", image_size=16, rngs=nnx.Rngs(0))) == {}


def test_flatten_statistics():
    stats = {
        "stem_act": {
            "zero_fraction": jnp.float32(0.5),
            "dead_fraction": jnp.float32(0.25),
            "mean": jnp.float32(1.5),
            "max": jnp.float32(3.0),
        },
        "blocks.0.act1": {"zero_fraction": 0.25, "dead_fraction": 0.0, "mean": 2.0, "max": 4.0},
    }
    flat = flatten_statistics(stats, {"stem_act": jnp.array([0.1, 0.3])})
    assert flat == {
        "act/stem_act/zero_fraction": 0.5,
        "act/stem_act/dead_fraction": 0.25,
        "act/stem_act/mean": 1.5,
        "act/stem_act/max": 3.0,
        "act/blocks.0.act1/zero_fraction": 0.25,
        "act/blocks.0.act1/dead_fraction": 0.0,
        "act/blocks.0.act1/mean": 2.0,
        "act/blocks.0.act1/max": 4.0,
        "act/mean_zero_fraction": 0.375,
        "act/mean_dead_fraction": 0.125,
        "influence/stem_act/mean": pytest.approx(0.2),
    }
    assert all(type(v) is float for v in flat.values())
    assert flatten_statistics({}) == {}


def test_doctests_pass():
    failed, attempted = doctest.testmod(statistics, verbose=False)
    assert attempted >= 5 and failed == 0, (failed, attempted)


def test_data_parallel_batch_gives_the_same_statistics():
    # As training holds it: the state replicated over a 4-device data mesh, the
    # batch split along "data"; the statistics are over the global batch.
    from winact_jax.sharding import batch_sharding, make_mesh, put, replicate, replicated

    mesh = make_mesh()
    assert mesh.size == 4
    model = models.create("lenet", 10, "prelu", image_size=16, rngs=nnx.Rngs(0))
    model.eval()
    x = jnp.asarray(np.random.default_rng(2).normal(size=(8, 16, 16, 3)), jnp.float32)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    measure = jax.jit(statistics_from_state, static_argnums=0, out_shardings=replicated(mesh))
    sharded, _ = measure(graphdef, replicate((params, rest), mesh), put(x, batch_sharding(mesh)))
    single, _ = jax.jit(statistics_from_state, static_argnums=0)(graphdef, (params, rest), x)
    chex.assert_trees_all_close(sharded, single, rtol=1e-5, atol=1e-6)
    flat = flatten_statistics(sharded)
    assert flat["act/conv1_act/dead_fraction"] == float(single["conv1_act"]["dead_fraction"])

    # As a training loop builds it: gather a fixed batch from device-resident data
    # and normalize it inside the same program.
    images = put(jnp.concatenate([x, -x]), replicated(mesh))
    step = models.make_statistics_step(
        graphdef, lambda images, indices: images[indices] * 2.0, out_shardings=replicated(mesh)
    )
    state = replicate((params, rest), mesh)
    gathered, _ = step(state, images, replicate(jnp.arange(8), mesh))
    expected, _ = jax.jit(statistics_from_state, static_argnums=0)(graphdef, (params, rest), 2.0 * x)
    chex.assert_trees_all_close(gathered, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_training_logs_the_statistics_every_epoch(tmp_path):
    # One fixed validation batch per epoch, through the training loop: metrics.jsonl
    # holds every layer's zero and dead fractions and the learned influences.
    import json

    from winact_jax.train import TrainConfig, train_and_evaluate

    config = TrainConfig(
        act="nelu",
        model="lenet",
        learn_influence=True,
        window_mode="centered",
        limit_train=128,
        epochs=2,
        progress=False,
        workdir=str(tmp_path / "run"),
    )
    result = train_and_evaluate(config)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    layers = ("conv1_act", "conv2_act", "fc1_act", "fc2_act")
    for record in records:
        for layer in layers:
            for name in statistics.STATISTICS:
                assert isinstance(record[f"act/{layer}/{name}"], float), (layer, name)
            assert 0.0 <= record[f"act/{layer}/dead_fraction"] <= 1.0
            assert 0.0 < record[f"influence/{layer}/mean"] < 1.0
        assert "act/mean_zero_fraction" in record and "act/mean_dead_fraction" in record
    # The last record's influences are the trained model's.
    final = learned_influences(nnx.merge(result.model_def.eval, result.state.params, result.state.model_state))
    for layer in layers:
        assert records[-1][f"influence/{layer}/mean"] == pytest.approx(float(np.mean(final[layer])), rel=1e-6)
