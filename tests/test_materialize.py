"""winact_jax.backends.materialize: exact values, identity gradient, and the
compiled structure it exists for (weight gradients read activations from memory)."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from flax import nnx

import winact_jax
from winact_jax import models
from winact_jax.backends import materialize
from winact_jax.models import activation as activation_module

SPECIAL = [-0.0, 0.0, 1.5, -2.25, 3.0e38, -1.0e-30, np.inf, -np.inf, np.nan]


class MaterializeTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("float32", jnp.float32), ("bfloat16", jnp.bfloat16), ("float16", jnp.float16))
    def test_values_are_exactly_the_input(self, dtype):
        x = jnp.asarray(np.array(SPECIAL + list(np.linspace(-4, 4, 23)), np.float32)).astype(dtype).reshape(2, 16)
        y = self.variant(materialize)(x)
        chex.assert_type(y, dtype)
        chex.assert_shape(y, x.shape)
        # Bit for bit: signed zeros, infinities and NaNs included.
        bits = np.uint16 if x.dtype.itemsize == 2 else np.uint32
        np.testing.assert_array_equal(np.asarray(y).view(bits), np.asarray(x).view(bits))

    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_is_the_identity(self):
        x = jnp.linspace(-3.0, 3.0, 24).reshape(2, 3, 4)
        g = jnp.arange(24.0).reshape(2, 3, 4) - 7.5
        _, vjp = jax.vjp(self.variant(materialize), x)
        (dx,) = vjp(g)
        np.testing.assert_array_equal(dx, g)
        grad = self.variant(jax.grad(lambda x: jnp.sum(jnp.sin(materialize(x)))))(x)
        np.testing.assert_array_equal(grad, jnp.cos(x))


def _compiled_resnet20_gradient(act: str, **options) -> str:
    """The optimized HLO of a ResNet-20's loss gradient with activation `act`."""
    model = models.create("resnet20", 10, act=act, rngs=nnx.Rngs(0), **options)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    images, labels = jnp.zeros((4, 16, 16, 3)), jnp.zeros((4,), jnp.int32)

    def loss(params):
        model = nnx.merge(graphdef, params, rest, copy=True)
        return optax.softmax_cross_entropy_with_integer_labels(model(images), labels).mean()

    return jax.jit(jax.grad(loss)).lower(params).compile().as_text()


def _weight_gradient_transposes(act: str) -> list[int]:
    """Operand counts of the transposes in a compiled ResNet-20 gradient.

    XLA:CPU computes a convolution's weight gradient from a transposed copy of the
    convolution's input; the operand count says how much of the network that copy
    recomputes (1: it reads the stored activation).
    """
    text = _compiled_resnet20_gradient(act)
    fusions = re.findall(r"%transpose\S* = \S+ fusion\((.*?)\), kind", text)
    assert fusions, "no transpose fusion found: XLA:CPU changed how it lowers weight gradients"
    return sorted(operands.count("%") for operands in fusions)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the recomputation is XLA:CPU's")
def test_weight_gradients_read_activations_instead_of_recomputing_them(monkeypatch):
    # With `materialize` every transpose but the stem's (which normalizes the input
    # image) copies one stored array. Without it, XLA recomputes the residual stream
    # into them, batch norms, window statistics and sums of several blocks deep:
    # the control shows that this test sees the difference.
    counts = _weight_gradient_transposes("nelu")
    assert counts[-2] == 1, counts

    monkeypatch.setattr(activation_module, "materialize", lambda y: y)
    recomputed = _weight_gradient_transposes("nelu")
    assert sum(c > 1 for c in recomputed) > 1 and recomputed[-1] > counts[-1], recomputed


def _largest_fusion_reading_a_reduced_cotangent(act_params: dict) -> int:
    """The most operands of any fusion in a compiled ResNet-20 gradient whose
    output has the shape of channel-window statistics (`(positions, C/4, 1, 1)`)."""
    text = _compiled_resnet20_gradient("nelu", act_params=act_params)
    fusions = re.findall(r"= f32\[\d+,\d+,1,1\]\S* fusion\((.*?)\), kind", text)
    assert fusions, "no channel-window statistics found"
    return max(operands.count("%") for operands in fusions)


def test_channel_window_layers_materialize_their_cotangent(monkeypatch):
    channels = {"window": 4, "over": "channels"}
    assert models.activation.Stateless(winact_jax.get("nelu", **channels)).windows_channels
    assert not models.activation.Stateless(winact_jax.get("nelu", window=4)).windows_channels
    assert not models.activation.Stateless(jax.nn.relu).windows_channels
    assert models.activation.LearnableInfluence("nelu", 8, **channels).windows_channels

    # The gradient is the same, bit for bit, with and without.
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 8))
    layer = models.activation.Stateless(winact_jax.get("nelu", **channels))
    with_it = jax.grad(lambda x: jnp.sum(jnp.sin(layer(x))))(x)
    monkeypatch.setattr(activation_module, "materialize_cotangent", lambda y: y)
    without = jax.grad(lambda x: jnp.sum(jnp.sin(layer(x))))(x)
    np.testing.assert_array_equal(with_it, without)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the recomputation is XLA:CPU's")
def test_channel_window_statistics_read_a_stored_cotangent(monkeypatch):
    # Without `materialize_cotangent` XLA:CPU fuses the backward pass's chain of
    # residual sums, batch norms and masks into the statistics' unrolled slices.
    channels = {"window": 4, "over": "channels"}
    stored = _largest_fusion_reading_a_reduced_cotangent(channels)
    monkeypatch.setattr(activation_module, "materialize_cotangent", lambda y: y)
    recomputed = _largest_fusion_reading_a_reduced_cotangent(channels)
    assert recomputed > stored + 5, (stored, recomputed)
