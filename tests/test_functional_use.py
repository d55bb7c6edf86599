"""winact_jax activations dropped into models written the way users write them.

A user's model takes its activation as a function; any winact_jax activation, with
its parameters bound by `functools.partial` or `winact_jax.get`, must train there:
in a `flax.linen` module and in an NNX module, on feature maps (rank 4) and on
dense features (rank 2). The layers with learned parameters (`PReLU`, `FReLU`,
`LearnableInfluence` of `winact_jax.models`) drop into a user's NNX model too.
"""

import functools
from collections.abc import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import winact_jax as wa
from winact_jax.models import FReLU, LearnableInfluence, PReLU

ACTIVATIONS = {
    "partial(nelu, window=2)": functools.partial(wa.nelu, window=2),
    "get('excitator')": wa.get("excitator"),
    "get('softmax_threshold', threshold=0.2)": wa.get("softmax_threshold", threshold=0.2),
    "inhibitor_v2": wa.inhibitor_v2,
}

NUM_CLASSES = 5


def batch():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 12, 12, 3)), jnp.float32)
    return x, jnp.array([0, 1, 2, 3])


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


class LinenNet(nn.Module):
    """A user's linen model: conv -> act -> pool -> dense -> act -> dense."""

    act: Callable = nn.relu

    @nn.compact
    def __call__(self, x):
        x = self.act(nn.Conv(8, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = self.act(nn.Dense(16)(x))
        return nn.Dense(NUM_CLASSES)(x)


class NNXNet(nnx.Module):
    """The same model as a user writes it in NNX."""

    def __init__(self, act: Callable = nnx.relu, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.hidden = nnx.Linear(6 * 6 * 8, 16, rngs=rngs)
        self.out = nnx.Linear(16, NUM_CLASSES, rngs=rngs)
        self.act = act

    def __call__(self, x):
        x = self.act(self.conv(x))
        x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = self.act(self.hidden(x))
        return self.out(x)


@pytest.mark.parametrize("act", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_linen_module_trains_with_window_activation(act):
    x, labels = batch()
    model = LinenNet(act=act)
    params = model.init(jax.random.key(0), x)
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    def loss_fn(params):
        return cross_entropy(model.apply(params, x), labels)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, grads

    new_params, _, loss, grads = step(params, opt_state)
    chex.assert_tree_all_finite(grads)
    assert any(jnp.any(g != 0) for g in jax.tree.leaves(grads))
    assert float(jax.jit(loss_fn)(new_params)) < float(loss)


@pytest.mark.parametrize("act", ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_nnx_module_trains_with_window_activation(act):
    x, labels = batch()
    model = NNXNet(act, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    def loss_fn(model):
        return cross_entropy(model(x), labels)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss, grads

    loss, grads = step(model, optimizer)
    chex.assert_tree_all_finite(grads)
    assert any(jnp.any(g != 0) for g in jax.tree.leaves(grads))
    assert float(nnx.jit(loss_fn)(model)) < float(loss)


class NNXNetWithLayers(nnx.Module):
    """A user's NNX model built from winact_jax's activation layers (learned parameters)."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.conv_act = FReLU(8, rngs=rngs)
        self.conv2 = nnx.Conv(8, 8, (3, 3), rngs=rngs)
        self.conv2_act = LearnableInfluence("nelu", 8, influence=0.2, window=2, mode="centered")
        self.hidden = nnx.Linear(6 * 6 * 8, 16, rngs=rngs)
        self.hidden_act = PReLU(16)
        self.out = nnx.Linear(16, NUM_CLASSES, rngs=rngs)

    def __call__(self, x):
        x = self.conv2_act(self.conv2(self.conv_act(self.conv(x))))
        x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return self.out(self.hidden_act(self.hidden(x)))


def test_nnx_module_trains_with_activation_layers():
    x, labels = batch()
    model = NNXNetWithLayers(rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    before = nnx.clone(nnx.state(model, nnx.Param))

    def loss_fn(model):
        return cross_entropy(model(x), labels)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    first = float(step(model, optimizer))
    for _ in range(3):
        step(model, optimizer)
    assert float(nnx.jit(loss_fn)(model)) < first
    # Every activation layer's own parameters moved.
    after = nnx.state(model, nnx.Param)
    for layer, name in [("conv_act", "kernel"), ("conv2_act", "influence_logit"), ("hidden_act", "slope")]:
        assert not np.allclose(before[layer][name][...], after[layer][name][...]), layer
    assert jnp.all((model.conv2_act.influence >= 0) & (model.conv2_act.influence <= 1))
