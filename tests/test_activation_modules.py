"""The activation layers of winact_jax.models: PReLU, FReLU, LearnableInfluence,
Stateless, and the factory that builds them from `act`.

Values are checked against the pure functions (`winact_jax.prelu`, `frelu`, the
window activations) and against the formulas of docs/spec.md ("Parametric
comparators", "`influence` per channel") written out in NumPy here.
"""

import doctest

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import winact_jax as wa
from winact_jax import models
from winact_jax.models import activation
from winact_jax.models.activation import (
    INFLUENCE_MARGIN,
    FReLU,
    LearnableInfluence,
    PReLU,
    Stateless,
    activations,
    layer_factory,
)


def normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def funnel_reference(x, kernel):
    """`T(x)[n, h, w, c] = sum_{u,v} x[n, h+u-(k-1)//2, w+v-(k-1)//2, c] * kernel[u, v, c]`,
    zero outside the map (docs/spec.md), in float64."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    n, height, width, channels = x.shape
    k = kernel.shape[0]
    out = np.zeros_like(x)
    for u in range(k):
        for v in range(k):
            for h in range(height):
                for w in range(width):
                    hh, ww = h + u - (k - 1) // 2, w + v - (k - 1) // 2
                    if 0 <= hh < height and 0 <= ww < width:
                        out[:, h, w, :] += x[:, hh, ww, :] * kernel[u, v, :]
    return out


def test_doctests_pass():
    failed, attempted = doctest.testmod(activation, verbose=False)
    assert attempted >= 4 and failed == 0, (failed, attempted)


# ---------------------------------------------------------------- PReLU


def test_prelu_hand_worked_and_equal_to_the_pure_function():
    layer = PReLU(2)
    chex.assert_trees_all_equal(layer.slope[...], jnp.full((2,), 0.25))  # He et al.'s init
    layer.slope[...] = jnp.array([0.5, -2.0])
    x = jnp.array([[-2.0, 3.0], [4.0, -1.5], [0.0, 0.0]])
    expected = jnp.array([[-1.0, 3.0], [4.0, 3.0], [0.0, 0.0]])
    chex.assert_trees_all_equal(layer(x), expected)
    chex.assert_trees_all_equal(layer(x), wa.prelu(x, jnp.array([0.5, -2.0])))
    maps = normal((2, 3, 3, 2))
    chex.assert_trees_all_equal(layer(maps), wa.prelu(maps, jnp.array([0.5, -2.0])))


def test_prelu_slope_gradient_and_dtype():
    layer = PReLU(3, init=0.1)
    x = normal((4, 5, 5, 3))
    grads = nnx.grad(lambda layer: jnp.sum(layer(x)))(layer)
    # d/d slope_c of sum(prelu) = sum of the channel's non-positive inputs.
    expected = jnp.sum(jnp.minimum(x, 0.0), axis=(0, 1, 2))
    chex.assert_trees_all_close(grads["slope"][...], expected, rtol=1e-6)
    y = layer(x.astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16 and layer.slope[...].dtype == jnp.float32


# ---------------------------------------------------------------- FReLU


def set_batch_norm(layer: FReLU, seed=1):
    rng = np.random.default_rng(seed)
    c = layer.channels
    layer.norm.scale[...] = jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32)
    layer.norm.bias[...] = jnp.asarray(rng.normal(size=c), jnp.float32)
    layer.norm.mean[...] = jnp.asarray(rng.normal(size=c), jnp.float32)
    layer.norm.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32)


@pytest.mark.parametrize("kernel_size", [3, 2, 1])
def test_frelu_eval_equals_the_pure_function_with_folded_batch_norm(kernel_size):
    layer = FReLU(3, kernel_size, rngs=nnx.Rngs(0))
    assert layer.kernel[...].shape == (kernel_size, kernel_size, 3)
    assert float(jnp.max(jnp.abs(layer.kernel[...]))) <= 1.0 / kernel_size  # U(-1/k, 1/k)
    set_batch_norm(layer)
    layer.eval()
    x = normal((2, 5, 4, 3))
    scale, bias = layer.folded_affine()
    chex.assert_trees_all_close(layer(x), wa.frelu(x, layer.kernel[...], scale, bias), rtol=1e-5, atol=1e-5)
    # And the formula: max(x, scale * T(x) + bias) with T from the spec.
    funnel = funnel_reference(x, layer.kernel[...]) * np.asarray(scale) + np.asarray(bias)
    chex.assert_trees_all_close(
        layer(x), np.maximum(np.asarray(x, np.float64), funnel).astype(np.float32), rtol=1e-5, atol=1e-5
    )
    # Running statistics: one example's output does not depend on the rest of the batch.
    chex.assert_trees_all_close(layer(x[:1]), layer(x)[:1], rtol=1e-6, atol=1e-6)


def test_frelu_training_mode_uses_batch_statistics_and_updates_running_ones():
    layer = FReLU(2, rngs=nnx.Rngs(0))
    x = normal((3, 4, 4, 2)) + 1.0
    funnel = funnel_reference(x, layer.kernel[...])
    mean, var = funnel.mean(axis=(0, 1, 2)), funnel.var(axis=(0, 1, 2))
    expected = np.maximum(np.asarray(x, np.float64), (funnel - mean) / np.sqrt(var + 1e-5))  # scale 1, bias 0
    layer.train()
    chex.assert_trees_all_close(layer(x), expected.astype(np.float32), rtol=1e-4, atol=1e-5)
    # PyTorch's momentum: running = 0.9 * running + 0.1 * batch.
    assert layer.norm.momentum == models.layers.BATCH_NORM_MOMENTUM == 0.9
    chex.assert_trees_all_close(layer.norm.mean[...], 0.1 * mean.astype(np.float32), rtol=1e-4, atol=1e-6)
    # Evaluation leaves them alone.
    layer.eval()
    before = nnx.state(layer, nnx.BatchStat)
    layer(x)
    chex.assert_trees_all_equal(before, nnx.state(layer, nnx.BatchStat))


def test_frelu_dense_features_are_a_one_pixel_map():
    layer = FReLU(4, rngs=nnx.Rngs(0))
    set_batch_norm(layer)
    layer.eval()
    x = normal((3, 4))
    scale, bias = layer.folded_affine()
    centre = layer.kernel[...][1, 1]  # the only tap inside a 1x1 map
    chex.assert_trees_all_close(layer(x), jnp.maximum(x, scale * centre * x + bias), rtol=1e-5, atol=1e-6)


def test_frelu_gradients_reach_kernel_and_batch_norm():
    layer = FReLU(2, rngs=nnx.Rngs(0))
    x = normal((2, 4, 4, 2))
    grads = nnx.grad(lambda layer: jnp.sum(layer(x) ** 2))(layer)
    for leaf in (grads["kernel"], grads["norm"]["scale"], grads["norm"]["bias"]):
        assert jnp.all(jnp.isfinite(leaf[...])) and jnp.any(leaf[...] != 0)


def test_frelu_bfloat16():
    layer = FReLU(2, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = layer(normal((2, 4, 4, 2)).astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16 and layer.kernel[...].dtype == jnp.float32


# ---------------------------------------------------------------- learnable influence


@pytest.mark.parametrize("influence", [0.1, 0.5, 0.9, 0.25])
def test_learned_influence_starts_at_the_configured_one(influence):
    layer = LearnableInfluence("nelu", 3, influence)
    assert layer.influence.shape == (3,)
    chex.assert_trees_all_close(layer.influence, jnp.full((3,), influence), rtol=1e-6, atol=0)


def test_learned_influence_ends_start_just_inside():
    low = LearnableInfluence("nelu", 2, 0.0).influence
    high = LearnableInfluence("nelu", 2, 1.0).influence
    assert jnp.all((low > 0) & (low <= 1.01 * INFLUENCE_MARGIN))
    assert jnp.all((high < 1) & (high >= 1 - 1.01 * INFLUENCE_MARGIN))
    default = LearnableInfluence("pnelu", 2).influence
    chex.assert_trees_all_close(default, jnp.full((2,), wa.parameters("pnelu")["influence"]), rtol=1e-6)
    per_channel = LearnableInfluence("nelu", 3, np.array([0.0, 0.5, 0.75])).influence
    chex.assert_trees_all_close(per_channel[1:], jnp.array([0.5, 0.75]), rtol=1e-6)


@pytest.mark.parametrize(
    "name, params",
    [
        ("nelu", {"window": 2}),
        ("excitator", {"window": 2, "mode": "centered"}),
        ("inhibitor_v2", {"window": 3, "over": "channels"}),
        ("pnelu", {"window": 2, "mode": "centered", "over": "channels"}),
    ],
)
def test_learned_influence_applies_the_window_activation(name, params):
    layer = LearnableInfluence(name, 4, 0.3, **params)
    x = normal((2, 5, 5, 4))
    # Equal to the pure function with the same influence, scalar or per channel.
    chex.assert_trees_all_close(layer(x), wa.get(name, influence=0.3, **params)(x), rtol=1e-6, atol=1e-6)
    layer.influence_logit[...] = jnp.array([-3.0, -1.0, 0.0, 2.0])
    expected = wa.registry.function(name)(x, influence=jax.nn.sigmoid(jnp.array([-3.0, -1.0, 0.0, 2.0])), **params)
    chex.assert_trees_all_close(layer(x), expected, rtol=1e-6, atol=1e-6)


def test_learned_influence_gradient_is_the_chain_rule_and_stays_in_range():
    layer = LearnableInfluence("nelu", 3, 0.2, window=2)
    x = normal((2, 4, 4, 3))
    target = normal((2, 4, 4, 3), seed=1)

    def loss(layer):
        return jnp.mean((layer(x) - target) ** 2)

    grads = nnx.grad(loss)(layer)
    influence = layer.influence
    by_influence = jax.grad(lambda a: jnp.mean((wa.nelu(x, window=2, influence=a) - target) ** 2))(influence)
    # d loss / d logit = d loss / d influence * sigmoid'(logit).
    expected = by_influence * influence * (1 - influence)
    chex.assert_trees_all_close(grads["influence_logit"][...], expected, rtol=1e-5, atol=1e-9)
    assert jnp.all(expected != 0)

    # Large steps push the logits far out: the influence stays in [0, 1].
    optimizer = nnx.Optimizer(layer, optax.sgd(1e4), wrt=nnx.Param)
    for _ in range(5):
        optimizer.update(layer, nnx.grad(loss)(layer))
    assert float(jnp.max(jnp.abs(layer.influence_logit[...]))) > 10
    assert jnp.all((layer.influence >= 0) & (layer.influence <= 1))
    chex.assert_tree_all_finite(layer(x))


def test_learned_influence_under_jit_and_bfloat16():
    layer = LearnableInfluence("excitator_v2", 2, 0.4, window=2)
    x = normal((2, 4, 4, 2))
    chex.assert_trees_all_close(nnx.jit(lambda layer, x: layer(x))(layer, x), layer(x), rtol=1e-6, atol=1e-6)
    y = layer(x.astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16


# ---------------------------------------------------------------- stateless layers


def test_stateless_layer_has_no_state_and_records_nothing():
    layer = Stateless(wa.get("nelu", window=2))
    x = normal((2, 4, 4, 3))
    chex.assert_trees_all_equal(layer(x), wa.nelu(x, window=2))
    assert not jax.tree.leaves(nnx.state(layer))
    # Statistics are off by default: a forward pass sows nothing.
    assert layer.record_statistics is False
    assert not jax.tree.leaves(nnx.state(layer, nnx.Intermediate))


# ---------------------------------------------------------------- factory and bad input


def test_factory_builds_one_fresh_layer_per_call():
    build = layer_factory("prelu", {"slope": 0.1, "window": 4, "influence": 0.3})  # shared flags ignored
    first, second = build(3), build(5)
    assert first is not second and first.slope[...].shape == (3,) and second.slope[...].shape == (5,)
    chex.assert_trees_all_equal(first.slope[...], jnp.full((3,), 0.1))
    frelu = layer_factory("frelu", {"kernel_size": 5}, rngs=nnx.Rngs(0))(4)
    assert isinstance(frelu, FReLU) and frelu.kernel[...].shape == (5, 5, 4)
    learned = layer_factory("nelu", {"window": 2, "influence": 0.4, "mode": "centered"}, learn_influence=True)(6)
    assert isinstance(learned, LearnableInfluence)
    assert learned.activation == wa.get("nelu", window=2, mode="centered")
    chex.assert_trees_all_close(learned.influence, jnp.full((6,), 0.4), rtol=1e-6)
    # A bound activation object learns from its own influence.
    bound = layer_factory(wa.get("pnelu", influence=0.7), learn_influence=True)(2)
    chex.assert_trees_all_close(bound.influence, jnp.full((2,), 0.7), rtol=1e-6)
    stem, body = activations("frelu", "stem", rngs=nnx.Rngs(0))
    assert isinstance(stem(2), FReLU) and body(2).function is wa.relu


def test_bad_channels():
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match=f"channels must be a positive int; got {bad!r}"):
            PReLU(bad)
        with pytest.raises(ValueError, match="channels must be a positive int"):
            LearnableInfluence("nelu", bad)
        with pytest.raises(ValueError, match="channels must be a positive int"):
            FReLU(bad, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"PReLU was built for 3 channels.*\(2, 4\)"):
        PReLU(3)(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"FReLU was built for 3 channels.*\(1, 4, 4, 2\)"):
        FReLU(3, rngs=nnx.Rngs(0))(jnp.ones((1, 4, 4, 2)))
    with pytest.raises(ValueError, match=r"LearnableInfluence was built for 3 channels.*\(1, 4, 4, 2\)"):
        LearnableInfluence("nelu", 3)(jnp.ones((1, 4, 4, 2)))
    with pytest.raises(ValueError, match=r"FReLU takes NHWC.*\(1, 4, 2\)"):
        FReLU(2, rngs=nnx.Rngs(0))(jnp.ones((1, 4, 2)))


def test_bad_learn_influence():
    for act in ("relu", "max", "prelu", "frelu", "softmax_threshold"):
        with pytest.raises(ValueError, match=f"learn_influence applies to .*nelu.*; {act!r}"):
            layer_factory(act, learn_influence=True)
    with pytest.raises(ValueError, match="learn_influence.*'gelu' takes none"):
        LearnableInfluence("gelu", 3)
    with pytest.raises(TypeError, match="learn_influence needs an activation given by name"):
        layer_factory(jax.nn.relu, learn_influence=True)
    with pytest.raises(TypeError, match="learn_influence must be a bool; got 'yes'"):
        layer_factory("nelu", learn_influence="yes")
    with pytest.raises(ValueError, match="influence"):
        layer_factory("nelu", {"influence": 1.5}, learn_influence=True)
    with pytest.raises(ValueError, match="influence"):
        LearnableInfluence("nelu", 2, np.array([0.1, 0.2, 0.3]))  # three values for two channels


def test_bad_parametric_options():
    with pytest.raises(ValueError, match="slope.*finite real number; got 'steep'"):
        layer_factory("prelu", {"slope": "steep"})
    with pytest.raises(ValueError, match="slope.*got nan"):
        PReLU(2, init=float("nan"))
    with pytest.raises(ValueError, match="kernel_size must be a positive int; got 0"):
        layer_factory("frelu", {"kernel_size": 0}, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="'frelu' got unexpected parameter.*kernel=3.*accepts: kernel_size"):
        layer_factory("frelu", {"kernel": 3}, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="'prelu' got unexpected parameter.*alpha"):
        layer_factory("prelu", {"alpha": 0.1})
    with pytest.raises(ValueError, match="FReLU draws its kernel.*rngs"):
        layer_factory("frelu")(4)
    # `resolve` checks a parametric activation's options and names its layer.
    assert models.resolve("prelu", {"slope": 0.1, "window": 4}) is PReLU
    assert models.resolve("frelu", {"kernel_size": 5}) is FReLU
    with pytest.raises(TypeError, match="'frelu' got unexpected parameter.*kernel=3"):
        models.resolve("frelu", {"kernel": 3})
