"""The explicit train state: everything a step changes, as one pytree.

As in Flax's ImageNet example, the training loop passes a `TrainState` through
jitted steps instead of mutating a module: `jax.jit` can then donate it, shard it,
and Orbax can save and restore it as is. The model's structure (`nnx.GraphDef`),
which never changes, stays outside the state in a `ModelDef`, one per mode: batch
norm normalises with batch statistics in training and with running ones in
evaluation, and that switch is static structure, not state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

import winact_jax.models
from winact_jax.train.config import TrainConfig

PRECISION_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(struct.PyTreeNode):
    """A model's arrays and its optimizer state after `step` training steps.

    Attributes:
      step: training steps done (int32 scalar), the Orbax checkpoint's number.
      params: the model's `nnx.Param`s, as a pure `nnx.State` (arrays, no
        `Variable` wrappers), what the optimizer updates.
      model_state: everything else the model holds (batch norm's running
        statistics), updated by the forward pass in training mode.
      opt_state: the optax optimizer's state for `params`.
    """

    step: jax.Array
    params: nnx.State
    model_state: nnx.State
    opt_state: optax.OptState


class ModelDef(NamedTuple):
    """The model's static structure in training mode and in evaluation mode."""

    train: nnx.GraphDef
    eval: nnx.GraphDef


def create_model(config: TrainConfig, num_classes: int, image_size: tuple[int, int]) -> nnx.Module:
    """The model of `config`, initialised from `nnx.Rngs(config.seed)`.

    Raises `ValueError`/`TypeError` for an unknown model, activation or option.
    """
    options = {"act_params": config.act_params, "placement": config.placement}
    if config.precision != "float32":
        options["dtype"] = PRECISION_DTYPES[config.precision]
    if config.width is not None:
        options["width"] = config.width
    if config.normalization is not None:
        options["normalization"] = config.normalization
    if config.learn_influence:  # a model option; models without it refuse it by name
        options["learn_influence"] = True
    return winact_jax.models.create(
        config.model,
        num_classes,
        config.act,
        rngs=nnx.Rngs(config.seed),
        image_size=image_size,
        **options,
    )


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation) -> tuple[ModelDef, TrainState]:
    """Splits `model` into its structure and a fresh `TrainState` (step 0)."""
    model.eval()
    eval_def = nnx.graphdef(model)
    model.train()
    train_def, params, model_state = nnx.split(model, nnx.Param, ...)
    params, model_state = nnx.as_pure(params), nnx.as_pure(model_state)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
    )
    return ModelDef(train=train_def, eval=eval_def), state
