"""Flax NNX models with the activation as a constructor argument.

    from flax import nnx
    import winact_jax.models as models

    model = models.create("resnet38", 10, "excitator", act_params={"window": 4},
                          rngs=nnx.Rngs(0))
    logits = model(images)              # NHWC float -> float32 (batch, 10)
    model.eval()                        # batch norm on running statistics

Models, one per module:

* `ResNet` (`resnet.py`): He et al.'s CIFAR ResNet, 6n+2 layers;
  `resnet20`, `resnet38` and `resnet56` by name.
* `SeedBackbone` (`seed_backbone.py`): the window-activation paper's model.
* `LeNet` (`lenet.py`): the activation-comparison seed's CIFAR-10 LeNet.

Each takes `act` (a callable, or a name resolved by `winact_jax.get` with
`act_params`; `"prelu"` and `"frelu"` are layers with learned parameters),
`placement` (`"all"`, or `"stem"`: `act` at the first nonlinearity only, ReLU
elsewhere) and `learn_influence` (a learned per-channel influence); every
nonlinearity is its own layer (see `activation.py`), and `activation_statistics`
measures them on a batch (see `statistics.py`). `python -m winact_jax.models` prints every
model's size. Importing this package never imports TensorFlow.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from flax import nnx

from winact_jax.models.activation import (
    PLACEMENTS,
    ActivationLayer,
    ActivationLike,
    FReLU,
    LearnableInfluence,
    PReLU,
    Stateless,
    activations,
    layer_factory,
    resolve,
)
from winact_jax.models.layers import NORMALIZATIONS
from winact_jax.models.lenet import LeNet
from winact_jax.models.resnet import ResNet
from winact_jax.models.seed_backbone import SeedBackbone
from winact_jax.models.statistics import (
    activation_statistics,
    flatten_statistics,
    learned_influences,
    make_statistics_step,
    statistics_from_state,
)
from winact_jax.models.stl_net import StlNet

_MODELS: dict[str, Callable[..., nnx.Module]] = {
    "resnet20": functools.partial(ResNet, depth=20),
    "resnet38": functools.partial(ResNet, depth=38),
    "resnet56": functools.partial(ResNet, depth=56),
    "seed_backbone": SeedBackbone,
    "lenet": LeNet,
    "stl_net": StlNet,
}


def names() -> tuple[str, ...]:
    """Every model name `create` accepts."""
    return tuple(_MODELS)


def _options(constructor) -> tuple[str, ...]:
    """The keyword options `create` may forward to `constructor`."""
    fixed = constructor.keywords if isinstance(constructor, functools.partial) else {}
    cls = constructor.func if isinstance(constructor, functools.partial) else constructor
    params = list(inspect.signature(cls.__init__).parameters)
    return tuple(p for p in params if p not in ("self", "num_classes", "act", "rngs", *fixed))


def create(
    name: str,
    num_classes: int,
    act: ActivationLike = "relu",
    *,
    rngs: nnx.Rngs,
    image_size: int | tuple[int, int] | None = None,
    **kw,
) -> nnx.Module:
    """The model `name` with `num_classes` outputs and activation `act`.

    Args:
      name: one of `names()`: `resnet20`, `resnet38`, `resnet56`, `seed_backbone`,
        `lenet`.
      num_classes: outputs of the model.
      act: a callable, or an activation name registered in `winact_jax`.
      rngs: initialisation randomness, e.g. `nnx.Rngs(0)`.
      image_size: the inputs' height and width, for models built for one size
        (`lenet`); models that take any size ignore it.
      **kw: the model's options, e.g. `act_params`, `placement`, `normalization`,
        `width`, `in_channels`, `dtype`.

    Returns:
      An `nnx.Module` called as `model(x)` on NHWC float input, returning float32
      logits; in training mode (`model.train()`) until `model.eval()`.

    Raises:
      ValueError: `name` is unknown (the message lists the known names).
      TypeError: an option the model does not take.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")
    constructor = _MODELS[name]
    options = _options(constructor)
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise TypeError(
            f"model {name!r} got unexpected option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(o for o in options if o != 'image_size')}"
        )
    if image_size is not None and "image_size" in options:
        kw["image_size"] = image_size
    return constructor(num_classes, act, rngs=rngs, **kw)


__all__ = [
    "NORMALIZATIONS",
    "PLACEMENTS",
    "ActivationLayer",
    "FReLU",
    "LeNet",
    "LearnableInfluence",
    "PReLU",
    "ResNet",
    "SeedBackbone",
    "Stateless",
    "activation_statistics",
    "activations",
    "create",
    "flatten_statistics",
    "layer_factory",
    "learned_influences",
    "make_statistics_step",
    "names",
    "resolve",
    "statistics_from_state",
]
