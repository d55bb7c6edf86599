"""winact_jax.models: shapes, every window activation through ResNet-38, placement,
precision, options and errors.

Models run eagerly here: each is called a few times at most, and compiling a deep
network under `jit` costs more than running its ops one by one.
"""

import math
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import winact_jax as wa
from winact_jax import models

NUM_CLASSES = 10


@pytest.fixture(autouse=True, scope="module")
def fast_compilation():
    # Eager ops compile once per shape, and here compiling costs far more than
    # running (a model is called a few times at most): XLA's optimisation passes
    # would double this file's run time for nothing.
    previous = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


def images(batch, size, seed=0):
    # NumPy, not jax.random: every new shape of a jax.random draw is a compilation.
    return jnp.asarray(np.random.default_rng(seed).normal(size=(batch, size, size, 3)), jnp.float32)


def abstract_forward(model, shape):
    """`model` called on a `shape` float32 input, traced only: the output's shape and dtype."""
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), state, x)


def cross_entropy(model, x, labels):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


class Recorder:
    """An activation that records the shape and dtype of every input, then applies ReLU."""

    def __init__(self):
        self.inputs = []

    def __call__(self, x):
        self.inputs.append((x.shape, x.dtype))
        return jax.nn.relu(x)


class FirstCallThenReLU:
    """`act` at its first call, ReLU at every later one: a model built with it and
    called once applies `act` at its first site only."""

    def __init__(self, act):
        self.act = act
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return self.act(x) if self.calls == 1 else jax.nn.relu(x)


# Activation sites: ResNet-38 has a stem and 18 blocks of two; the seed's backbone a
# stem and five modules; LeNet two convolutions and two hidden linear layers.
SITES = {"resnet38": 1 + 2 * 18, "seed_backbone": 1 + 5, "lenet": 4}
# The activation layer of each model's first site.
FIRST_SITE = {"resnet38": ("stem_act",), "seed_backbone": ("stem_act",), "lenet": ("conv1_act",)}


def activation_layers(model):
    """`{path: layer}` of every activation layer of `model`, one per nonlinearity."""
    return {path: m for path, m in nnx.iter_modules(model) if isinstance(m, models.ActivationLayer)}


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", ["resnet38", "seed_backbone", "lenet"])
def test_output_shape(name, size, batch):
    # The models as `create` makes them, traced abstractly: no initialisation and no
    # compilation, so every size and batch is cheap. Batch 1 matters: the seed's code
    # squeezed its logits and broke there.
    model = nnx.eval_shape(lambda: models.create(name, NUM_CLASSES, "relu", image_size=size, rngs=nnx.Rngs(0)))
    for mode in (model.train, model.eval):
        mode()
        logits = abstract_forward(model, (batch, size, size, 3))
        chex.assert_shape(logits, (batch, NUM_CLASSES))
        assert logits.dtype == jnp.float32


@pytest.mark.parametrize("name", ["resnet38", "seed_backbone", "lenet"])
def test_forward_at_batch_1(name):
    # Real values at batch 1, in both modes (batch norm's batch statistics included).
    kw = {} if name == "lenet" else {"width": 0.25}
    model = models.create(name, NUM_CLASSES, "relu", rngs=nnx.Rngs(0), **kw)
    for mode in (model.train, model.eval):
        mode()
        logits = model(images(1, 32))
        chex.assert_shape(logits, (1, NUM_CLASSES))
        chex.assert_tree_all_finite(logits)


def test_resnet_depths_match_he_et_al():
    # He et al., table 6: ResNet-20 has 0.27M parameters, ResNet-56 0.85M.
    for name, blocks, params in [("resnet20", 9, 0.27e6), ("resnet38", 18, 0.56e6), ("resnet56", 27, 0.85e6)]:
        model = nnx.eval_shape(lambda name=name: models.create(name, NUM_CLASSES, rngs=nnx.Rngs(0)))
        assert len(model.blocks) == blocks
        count = sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
        assert abs(count - params) < 0.01e6, (name, count)
    # Stride-2 transitions at the first block of stages 2 and 3, widths 16/32/64.
    model = nnx.eval_shape(lambda: models.ResNet(NUM_CLASSES, depth=20, rngs=nnx.Rngs(0)))
    assert [b.stride for b in model.blocks] == [1] * 3 + [2, 1, 1] * 2
    assert [b.out_features for b in model.blocks] == [16] * 3 + [32] * 3 + [64] * 3


def test_resnet_width_multiplier_scales_stages():
    model = nnx.eval_shape(lambda: models.ResNet(NUM_CLASSES, width=0.5, rngs=nnx.Rngs(0)))
    assert model.stem.out_features == 8
    assert {b.out_features for b in model.blocks} == {8, 16, 32}
    model = nnx.eval_shape(lambda: models.ResNet(NUM_CLASSES, widths=(32, 64, 128), rngs=nnx.Rngs(0)))
    assert model.head.in_features == 128


def test_seed_backbone_is_the_papers_model():
    rec = Recorder()
    model = nnx.eval_shape(lambda: models.SeedBackbone(NUM_CLASSES, rec, rngs=nnx.Rngs(0)))
    assert model.stem.in_features == 3 and model.stem.out_features == 128
    assert len(model.residuals) == 5
    for module in model.residuals:
        assert (module.reduce.in_features, module.reduce.out_features) == (128, 64)
        assert (module.expand.in_features, module.expand.out_features) == (64, 128)
        assert module.reduce.kernel_size == (3, 3) and module.norm is models.layers.identity
    assert (model.head.in_features, model.head.out_features) == (128, NUM_CLASSES)
    assert not any(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_modules(model))
    abstract_forward(model, (2, 32, 32, 3))
    # Stem and modules 1-2 at 32x32, pool, modules 3-4 at 16x16, pool, module 5 at 8x8.
    assert [shape[1] for shape, _ in rec.inputs] == [32, 32, 32, 16, 16, 8]


def test_lenet_adapts_its_first_linear_layer():
    assert models.LeNet(NUM_CLASSES, rngs=nnx.Rngs(0)).fc1.in_features == 400
    assert models.LeNet(NUM_CLASSES, image_size=64, rngs=nnx.Rngs(0)).fc1.in_features == 16 * 13 * 13
    model = models.create("lenet", NUM_CLASSES, image_size=(36, 40), rngs=nnx.Rngs(0))
    assert model.fc1.in_features == 16 * 6 * 7
    chex.assert_shape(model(jnp.zeros((2, 36, 40, 3))), (2, NUM_CLASSES))
    with pytest.raises(ValueError, match="32x32"):
        models.LeNet(NUM_CLASSES, rngs=nnx.Rngs(0))(jnp.zeros((1, 64, 64, 3)))
    with pytest.raises(ValueError, match="image_size"):
        models.LeNet(NUM_CLASSES, image_size=12, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- window activations


@pytest.mark.parametrize("name", wa.names("window"))
def test_window_activation_through_resnet38(name):
    # Depth 38 as the issue asks; a quarter of the width keeps the run short.
    model = models.create("resnet38", NUM_CLASSES, name, width=0.25, rngs=nnx.Rngs(0))
    x, labels = images(2, 16), jnp.array([1, 7])
    loss, grads = nnx.value_and_grad(cross_entropy)(model, x, labels)
    chex.assert_tree_all_finite((loss, grads))
    chex.assert_trees_all_equal_shapes(grads, nnx.state(model, nnx.Param))
    # The gradient reaches the stem through all 18 blocks.
    assert jnp.any(grads["stem"]["kernel"][...] != 0)


@pytest.mark.parametrize(
    "name, size, last_map, act",
    [
        ("resnet38", 32, 8, "nelu"),  # 8x8 last stage, window 4 divides it
        ("resnet38", 36, 9, "softmax_threshold"),  # 18x18 and 9x9: partial windows
        ("resnet38", 8, 2, "excitator"),  # 4x4 and 2x2: the window covers the map
        ("seed_backbone", 32, 8, "excitator_v2"),
        ("seed_backbone", 36, 9, "max_relu"),
    ],
)
def test_window_activation_on_small_and_indivisible_maps(name, size, last_map, act):
    window_act, sizes = wa.get(act), []

    def recorded(x):
        sizes.append(x.shape[1:3])
        return window_act(x)

    model = models.create(name, NUM_CLASSES, recorded, width=0.25, rngs=nnx.Rngs(0))
    logits = model(images(2, size))
    chex.assert_shape(logits, (2, NUM_CLASSES))
    chex.assert_tree_all_finite(logits)
    assert sizes[-1] == (last_map, last_map)


def test_window_larger_than_every_map():
    model = models.create("resnet20", NUM_CLASSES, "max", act_params={"window": 32}, width=0.25, rngs=nnx.Rngs(0))
    chex.assert_tree_all_finite(model(images(2, 32)))


# ---------------------------------------------------------------- placement


@pytest.mark.parametrize("name", list(SITES))
def test_placement_all_uses_act_at_every_site(name):
    rec = Recorder()
    kw = {} if name == "lenet" else {"width": 0.25}
    models.create(name, NUM_CLASSES, rec, rngs=nnx.Rngs(0), **kw)(images(2, 32))
    assert len(rec.inputs) == SITES[name]


@pytest.mark.parametrize("name", list(SITES))
def test_placement_stem_leaves_every_other_site_relu(name):
    kw = {} if name == "lenet" else {"width": 0.25}
    x = images(2, 32)

    # The given activation runs once, at the first site.
    rec = Recorder()
    models.create(name, NUM_CLASSES, rec, placement="stem", rngs=nnx.Rngs(0), **kw)(x)
    assert len(rec.inputs) == 1
    stem_channels = {"resnet38": 4, "seed_backbone": 32, "lenet": 6}[name]
    assert rec.inputs[0][0][-1] == stem_channels

    # Every other site computes ReLU: the model equals one with the same parameters
    # that applies the excitator at its first site and ReLU at every later one.
    stem_only = models.create(name, NUM_CLASSES, "excitator", placement="stem", rngs=nnx.Rngs(0), **kw)
    reference = models.create(name, NUM_CLASSES, FirstCallThenReLU(wa.get("excitator")), rngs=nnx.Rngs(0), **kw)
    everywhere = models.create(name, NUM_CLASSES, "excitator", rngs=nnx.Rngs(0), **kw)
    chex.assert_trees_all_close(stem_only(x), reference(x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(stem_only(x), everywhere(x), rtol=1e-3, atol=1e-3)

    # And the layers say so: one per site, each its own instance.
    layers = activation_layers(stem_only)
    assert len(layers) == SITES[name]
    assert len({id(layer) for layer in layers.values()}) == SITES[name]
    for path, layer in layers.items():
        expected = wa.get("excitator") if path == FIRST_SITE[name] else wa.relu
        assert isinstance(layer, models.Stateless) and layer.function == expected, path


def test_bad_placement():
    with pytest.raises(ValueError, match=r"placement.*'all', 'stem'.*'head'"):
        models.create("lenet", NUM_CLASSES, "relu", placement="head", rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- activation resolution


def test_act_by_name_with_params():
    model = nnx.eval_shape(
        lambda: models.create(
            "resnet38", NUM_CLASSES, "nelu", act_params={"window": 2, "influence": 0.5}, rngs=nnx.Rngs(0)
        )
    )
    assert model.stem_act.function == wa.get("nelu", window=2, influence=0.5)
    assert model.blocks[-1].act1.function == wa.get("nelu", window=2, influence=0.5)
    assert model.blocks[-1].act2.function == wa.get("nelu", window=2, influence=0.5)


def test_shared_act_params_are_filtered_per_activation():
    flags = {"window": 4, "influence": 0.1, "threshold": 0.3}
    model = nnx.eval_shape(lambda: models.create("resnet38", NUM_CLASSES, "relu", act_params=flags, rngs=nnx.Rngs(0)))
    assert model.stem_act.function == wa.get("relu")
    assert models.resolve("softmax_relu", flags) == wa.get("softmax_threshold", window=4, threshold=0.3)
    assert models.resolve("max", flags) == wa.get("max", window=4)
    # A parameter no activation shares still reaches `get`, which rejects it.
    with pytest.raises(TypeError, match="windw"):
        models.resolve("nelu", {"windw": 4})
    with pytest.raises(ValueError, match="influence"):
        models.resolve("nelu", {"influence": 2.0})


def test_act_callable_used_as_is():
    act = lambda x: jax.nn.relu(x)  # noqa: E731
    model = nnx.eval_shape(lambda: models.create("seed_backbone", NUM_CLASSES, act, rngs=nnx.Rngs(0)))
    assert model.stem_act.function is act and model.residuals[0].act.function is act
    with pytest.raises(TypeError, match="act_params"):
        models.create("seed_backbone", NUM_CLASSES, act, act_params={"window": 2}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown activation 'relu6'.*nelu"):
        models.create("seed_backbone", NUM_CLASSES, "relu6", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="act must be"):
        models.create("seed_backbone", NUM_CLASSES, 3, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- create


def test_names():
    assert models.names() == ("resnet20", "resnet38", "resnet56", "seed_backbone", "lenet", "stl_net")


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="unknown model 'resnet18'.*resnet38.*seed_backbone.*lenet"):
        models.create("resnet18", NUM_CLASSES, "relu", rngs=nnx.Rngs(0))


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="'lenet'.*normalization.*accepts"):
        models.create("lenet", NUM_CLASSES, "relu", normalization="batch", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="depth"):
        models.create("resnet38", NUM_CLASSES, "relu", depth=20, rngs=nnx.Rngs(0))


def test_bad_model_options():
    with pytest.raises(ValueError, match="normalization.*'batch', 'none'.*'layer'"):
        models.ResNet(NUM_CLASSES, normalization="layer", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        models.ResNet(NUM_CLASSES, depth=18, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="non-decreasing"):
        models.ResNet(NUM_CLASSES, widths=(64, 32, 16), rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- activation layers

# `act` configurations of round 2 (docs/spec.md, "Round 2: beyond the seed").
ACT_CONFIGS = {
    "relu": dict(act="relu"),
    "nelu": dict(act="nelu", act_params={"window": 2}),
    "prelu": dict(act="prelu"),
    "frelu": dict(act="frelu"),
    "nelu-learned": dict(act="nelu", act_params={"window": 2}, learn_influence=True),
    "nelu-centered": dict(act="nelu", act_params={"window": 3, "mode": "centered"}),
    "nelu-channels": dict(act="nelu", act_params={"window": 2, "over": "channels"}),
}
# Small versions of every model, on 16x16 images.
SMALL = {
    "resnet": (models.ResNet, dict(depth=8, width=0.25)),
    "seed_backbone": (models.SeedBackbone, dict(width=0.0625)),
    "lenet": (models.LeNet, dict(image_size=16)),
    "stl_net": (models.StlNet, dict(width=0.125)),
}
LEARNED = {"prelu": "slope", "frelu": "kernel", "nelu-learned": "influence_logit"}


@pytest.mark.parametrize(
    "model_name, config",
    # Every configuration through the ResNet; the layers with parameters through
    # the others (dense features in LeNet); relu and nelu are tested above.
    [("resnet", c) for c in ACT_CONFIGS if c not in ("relu", "nelu")]
    + [("lenet", c) for c in ("prelu", "frelu", "nelu-learned")]
    + [("seed_backbone", "frelu"), ("seed_backbone", "nelu-learned"), ("stl_net", "prelu")],
)
def test_every_model_trains_with_every_activation_layer(model_name, config):
    constructor, size_options = SMALL[model_name]
    options = dict(ACT_CONFIGS[config])
    model = constructor(NUM_CLASSES, options.pop("act"), rngs=nnx.Rngs(0), **size_options, **options)
    x, labels = images(2, 16), jnp.array([1, 7])
    loss, grads = nnx.value_and_grad(cross_entropy)(model, x, labels)
    chex.assert_tree_all_finite((loss, grads))
    layers = activation_layers(model)
    assert len({id(layer) for layer in layers.values()}) == len(layers)  # one layer per site
    if config in LEARNED:
        # Every layer holds its own parameter, and the gradient reaches each one.
        for path, layer in layers.items():
            gradient = grads
            for key in (*path, LEARNED[config]):
                gradient = gradient[key]
            gradient = gradient[...]
            assert gradient.shape[-1] == layer.channels and jnp.any(gradient != 0), path
    else:
        assert not jax.tree.leaves(nnx.state(layers, nnx.Param))
    model.eval()
    chex.assert_tree_all_finite(model(x))


def parameter_count(model):
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_parametric_layers_add_their_parameters_per_channel_per_site():
    def count(act, **kw):
        return parameter_count(
            nnx.eval_shape(lambda: models.create("resnet20", NUM_CLASSES, act, rngs=nnx.Rngs(0), **kw))
        )

    relu = count("relu")
    assert relu == 269_722  # He et al.'s ResNet-20 (0.27M), as in round 1
    # Channels at the 19 sites: the stem (16) and two per block, 3 blocks per stage of 16, 32, 64.
    channels = 16 + 2 * 3 * (16 + 32 + 64)
    assert count("prelu") - relu == channels
    assert count("nelu", learn_influence=True) - relu == channels
    assert count("frelu") - relu == channels * (9 + 2)  # a 3x3 depthwise kernel, batch norm's scale and bias
    assert count("frelu", act_params={"kernel_size": 5}) - relu == channels * (25 + 2)
    assert count("prelu", placement="stem") - relu == 16
    for act in ("relu", "nelu", "max", "gelu"):
        assert count(act) == relu
    lenet = nnx.eval_shape(lambda: models.create("lenet", NUM_CLASSES, "prelu", rngs=nnx.Rngs(0)))
    assert parameter_count(lenet) == 62_006 + 6 + 16 + 120 + 84


def test_prelu_and_learned_influence_start_where_configured():
    model = models.create("lenet", NUM_CLASSES, "prelu", act_params={"slope": 0.1, "window": 4}, rngs=nnx.Rngs(0))
    for layer in activation_layers(model).values():
        chex.assert_trees_all_equal(layer.slope[...], jnp.full((layer.channels,), 0.1, jnp.float32))
    model = models.create(
        "lenet",
        NUM_CLASSES,
        "excitator",
        act_params={"influence": 0.4, "mode": "centered"},
        learn_influence=True,
        rngs=nnx.Rngs(0),
    )
    for layer in activation_layers(model).values():
        assert layer.activation == wa.get("excitator", mode="centered")
        chex.assert_trees_all_close(layer.influence, jnp.full((layer.channels,), 0.4), rtol=1e-6)


def test_model_activation_errors():
    with pytest.raises(ValueError, match="learn_influence applies to .*nelu.*'relu' takes none"):
        models.create("lenet", NUM_CLASSES, "relu", learn_influence=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="learn_influence applies .*'prelu'"):
        models.create("resnet20", NUM_CLASSES, "prelu", learn_influence=True, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="learn_influence needs an activation given by name"):
        models.create("seed_backbone", NUM_CLASSES, jax.nn.relu, learn_influence=True, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="'frelu' got unexpected parameter.*windw"):
        models.create("lenet", NUM_CLASSES, "frelu", act_params={"windw": 3}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mode"):
        models.create("lenet", NUM_CLASSES, "nelu", act_params={"mode": "sliding"}, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- normalization and modes


def test_batch_norm_momentum_and_train_eval():
    model = models.create("resnet20", NUM_CLASSES, "relu", width=0.25, rngs=nnx.Rngs(0))
    norms = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    assert len(norms) == 1 + 2 * 9 and all(n.momentum == 0.9 for n in norms)

    x = images(2, 16) + 3.0
    model.train()
    model(x)
    # PyTorch's convention: running = 0.9 * running + 0.1 * batch statistics.
    batch_mean = jnp.mean(model.stem(x), axis=(0, 1, 2))
    chex.assert_trees_all_close(model.stem_norm.mean[...], 0.1 * batch_mean, rtol=1e-4, atol=1e-6)

    model.eval()
    before = nnx.state(model, nnx.BatchStat)
    first, second = model(x), model(x[:1])
    chex.assert_trees_all_close(first[:1], second, rtol=1e-5, atol=1e-5)  # no batch dependence
    chex.assert_trees_all_equal(before, nnx.state(model, nnx.BatchStat))


def test_normalization_none_has_no_batch_norm():
    for model in [
        models.create("resnet20", NUM_CLASSES, normalization="none", width=0.25, rngs=nnx.Rngs(0)),
        models.create("seed_backbone", NUM_CLASSES, width=0.25, rngs=nnx.Rngs(0)),
    ]:
        assert not any(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_modules(model))
        assert not nnx.state(model, nnx.BatchStat)
        chex.assert_tree_all_finite(model(images(2, 16)))
    with_norm = models.create("seed_backbone", NUM_CLASSES, normalization="batch", width=0.25, rngs=nnx.Rngs(0))
    assert sum(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_modules(with_norm)) == 6


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize("name", list(SITES))
def test_bfloat16_compute_float32_parameters_and_logits(name):
    rec = Recorder()
    kw = {} if name == "lenet" else {"width": 0.25}
    model = models.create(name, NUM_CLASSES, rec, dtype=jnp.bfloat16, rngs=nnx.Rngs(0), **kw)
    for param in jax.tree.leaves(nnx.state(model, nnx.Param)):
        chex.assert_type(param, jnp.float32)
    logits = model(images(2, 32))
    chex.assert_type(logits, jnp.float32)
    assert {dtype for _, dtype in rec.inputs} == {jnp.dtype(jnp.bfloat16)}


def test_bfloat16_window_activation_gradients():
    model = models.create("resnet20", NUM_CLASSES, "excitator_v2", width=0.25, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    loss, grads = nnx.value_and_grad(cross_entropy)(model, images(2, 16), jnp.array([0, 1]))
    chex.assert_type(loss, jnp.float32)
    chex.assert_tree_all_finite(grads)
    for g in jax.tree.leaves(grads):
        chex.assert_type(g, jnp.float32)


# ---------------------------------------------------------------- training step under jit


def test_jitted_train_step_with_window_activation():
    model = models.create("lenet", NUM_CLASSES, "nelu", act_params={"window": 2}, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, labels):
        loss, grads = nnx.value_and_grad(cross_entropy)(model, x, labels)
        optimizer.update(model, grads)
        return loss

    x, labels = images(8, 32), jnp.arange(8) % NUM_CLASSES
    losses = [float(step(model, optimizer, x, labels)) for _ in range(5)]
    assert losses[-1] < losses[0]


# ---------------------------------------------------------------- imports and CLI


def test_models_import_no_tensorflow():
    code = (
        "import sys, winact_jax.models; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets')); "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # importing prints nothing


def test_main_prints_every_model():
    result = subprocess.run([sys.executable, "-m", "winact_jax.models"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "32x32" in lines[0] and "64x64" in lines[0]
    for name in models.names():
        (row,) = [line for line in lines if line.split()[0] == name]
        assert row.count("(1, 10)") == 2
    (lenet,) = [line for line in lines if line.startswith("lenet")]
    assert "62,006" in lenet  # the classic LeNet's parameter count at 32x32


def test_main_counts_the_parameters_of_an_activation_layer():
    result = subprocess.run(
        [sys.executable, "-m", "winact_jax.models", "--act", "frelu"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    (lenet,) = [line for line in result.stdout.splitlines() if line.startswith("lenet")]
    # Four sites of 6, 16, 120 and 84 channels, each with a 3x3 kernel, a scale and a bias.
    assert f"{62_006 + (6 + 16 + 120 + 84) * (9 + 2):,}" in lenet
    bad = subprocess.run([sys.executable, "-m", "winact_jax.models", "--act", "prelu6"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown activation 'prelu6'" in bad.stderr
