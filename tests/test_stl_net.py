"""The STL-10 6-conv net: layout, parameter counts by hand, batch norm or none, any
activation, placement, sizes it takes and refuses, and a jitted gradient."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import winact_jax
import winact_jax.models as models
from winact_jax.models.stl_net import BLOCK_CHANNELS, StlNet


def count_params(model) -> int:
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def expected_count(normalization: str, channels=BLOCK_CHANNELS, in_channels=3, classes=10) -> int:
    """By hand: six 3x3 convolutions (bias only without batch norm), batch norm's scale
    and shift, the linear head."""
    total, features = 0, in_channels
    for c in channels:
        for _ in range(2):
            total += 9 * features * c + (c if normalization == "none" else 2 * c)
            features = c
    return total + features * classes + classes


def test_registered_and_built_by_create():
    assert "stl_net" in models.names()
    model = nnx.eval_shape(lambda: models.create("stl_net", 10, "relu", rngs=nnx.Rngs(0)))
    assert isinstance(model, StlNet)


@pytest.mark.parametrize(("normalization", "count"), [("batch", 288_746), ("none", 288_298)])
def test_parameter_counts_are_stable_and_match_the_layout(normalization, count):
    model = nnx.eval_shape(lambda: StlNet(10, "relu", normalization=normalization, rngs=nnx.Rngs(0)))
    assert count_params(model) == count == expected_count(normalization)
    convs = [layer.conv for layer in model.layers]
    assert len(convs) == 6
    assert [c.kernel.shape for c in convs] == [
        (3, 3, 3, 32),
        (3, 3, 32, 32),
        (3, 3, 32, 64),
        (3, 3, 64, 64),
        (3, 3, 64, 128),
        (3, 3, 128, 128),
    ]
    assert all((c.bias is None) == (normalization == "batch") for c in convs)
    assert all(c.strides in (1, (1, 1)) and c.padding == "SAME" for c in convs)
    assert model.head.kernel.shape == (128, 10)


def test_width_scales_every_block():
    model = nnx.eval_shape(lambda: StlNet(7, "relu", width=0.25, rngs=nnx.Rngs(0)))
    assert [layer.conv.kernel.shape[-1] for layer in model.layers] == [8, 8, 16, 16, 32, 32]
    assert count_params(model) == expected_count("batch", channels=(8, 16, 32), classes=7)


@pytest.mark.parametrize(("size", "batch"), [(32, 2), (96, 1), (33, 3), (8, 2)])
def test_any_size_from_8_gives_float32_logits(size, batch):
    model = StlNet(10, "relu", width=0.25, rngs=nnx.Rngs(0))
    logits = model(jnp.ones((batch, size, size, 3)))
    assert logits.shape == (batch, 10) and logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))


def test_input_smaller_than_three_pools_is_refused():
    model = StlNet(10, "relu", width=0.25, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"at least 8x8 .* got shape \(1, 7, 16, 3\)"):
        model(jnp.ones((1, 7, 16, 3)))


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval():
    model = StlNet(10, "relu", width=0.25, normalization="batch", rngs=nnx.Rngs(0))
    norms = [layer.norm for layer in model.layers]
    assert all(isinstance(n, nnx.BatchNorm) for n in norms)
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3)) * 3 + 1
    train_logits = model(x)
    # a training call moved the running mean of the first norm off zero
    assert float(jnp.abs(norms[0].mean[...]).max()) > 0
    model.eval()
    assert not np.allclose(model(x), train_logits)


def test_no_normalization_has_no_batch_norm_and_no_mode():
    model = StlNet(10, "relu", width=0.25, normalization="none", rngs=nnx.Rngs(0))
    assert not any(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_graph(model))
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
    before = model(x)
    model.eval()
    np.testing.assert_array_equal(model(x), before)


def test_bad_normalization_names_the_value():
    with pytest.raises(ValueError, match="normalization must be one of 'batch', 'none'; got 'layer'"):
        StlNet(10, "relu", normalization="layer", rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    ("act", "normalization"),
    [
        ("relu", "none"),
        ("gelu", "none"),
        ("mish", "batch"),
        ("nelu", "none"),
        ("excitator", "batch"),
        ("softmax_threshold", "none"),
    ],
)
def test_any_activation_trains_under_jit(act, normalization):
    model = StlNet(10, act, width=0.125, normalization=normalization, act_params={"window": 2}, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 3))
    labels = jnp.array([0, 1, 2, 3])

    @nnx.jit
    def loss_and_grads(model, x):
        def loss(model):
            logits = model(x)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

        return nnx.value_and_grad(loss)(model)

    loss, grads = loss_and_grads(model, x)
    assert bool(jnp.isfinite(loss))
    leaves = jax.tree.leaves(grads)
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    # every convolution gets a gradient: nothing is cut off
    kernels = [
        g
        for path, g in jax.tree_util.tree_leaves_with_path(grads)
        if "conv" in jax.tree_util.keystr(path) and "kernel" in jax.tree_util.keystr(path)
    ]
    assert len(kernels) == 6 and all(float(jnp.abs(g).sum()) > 0 for g in kernels)


def test_placement_all_and_stem():
    everywhere = StlNet(10, "nelu", placement="all", rngs=nnx.Rngs(0))
    assert all(layer.act.function.name == "nelu" for layer in everywhere.layers)
    stem_only = StlNet(10, "nelu", placement="stem", rngs=nnx.Rngs(0))
    assert stem_only.layers[0].act.function.name == "nelu"
    assert all(layer.act.function is winact_jax.relu for layer in stem_only.layers[1:])


def test_same_seed_same_model_other_seed_other_model():
    x = jnp.ones((1, 16, 16, 3))
    a = StlNet(10, "relu", width=0.25, rngs=nnx.Rngs(0))(x)
    b = StlNet(10, "relu", width=0.25, rngs=nnx.Rngs(0))(x)
    c = StlNet(10, "relu", width=0.25, rngs=nnx.Rngs(1))(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
    model = StlNet(10, "gelu", width=0.25, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert model(jnp.ones((2, 16, 16, 3))).dtype == jnp.float32


@pytest.mark.parametrize(("act", "extra_per_channel"), [("relu", 0), ("prelu", 1), ("frelu", 9 + 2)])
def test_six_activation_layers_with_their_own_parameters(act, extra_per_channel):
    """One activation layer per convolution; PReLU adds a slope per channel, FReLU a
    3x3 depthwise kernel, a scale and a bias per channel (32+32+64+64+128+128 = 448)."""
    model = nnx.eval_shape(lambda: StlNet(10, act, rngs=nnx.Rngs(0)))
    layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, models.ActivationLayer)]
    assert len(layers) == 6
    assert count_params(model) == 288_746 + 448 * extra_per_channel
