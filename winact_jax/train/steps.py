"""The jitted training and evaluation steps, data parallel over a mesh.

One program runs on every device of a mesh (`winact_jax.sharding.make_mesh`, one
"data" axis): the train state is replicated, and each batch is gathered from the
device-resident split already sharded along "data" (`winact_jax.data.gather_batch`).
Because the global batch is one array inside one jitted program, `jnp.mean` over
it (the loss, batch norm's batch statistics) is over the *global* batch, and the
gradient of the mean loss is the average of the per-device gradients: XLA inserts
the all-reduces that `pmap` code writes by hand. The same step gives the same
result on 1 device or 8, up to the order of floating-point reductions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from winact_jax.data import Dataset, DeviceSplit, augment, gather_batch
from winact_jax.sharding import batch_sharding, data_axis_size, put, replicated
from winact_jax.train.state import ModelDef, TrainState

# Augmentation draws from its own stream of the run's seed, apart from the epoch
# permutation (`epoch_batches` folds the epoch into `key(seed)` directly).
AUGMENT_STREAM = 1


class StepMetrics(NamedTuple):
    """What one training step reports, as replicated scalars.

    `stop` is True when any process asked to stop before this step (an interrupt
    signal): reading it from the step's output is how every process agrees on the
    same step to stop at.
    """

    loss: jax.Array
    accuracy: jax.Array
    stop: jax.Array


class EvalSums(NamedTuple):
    """Summed cross-entropy and correct predictions over `count` examples."""

    loss: jax.Array
    correct: jax.Array
    count: jax.Array


def augment_key(seed: int, epoch, step_in_epoch) -> jax.Array:
    """The augmentation key of one step: a function of (seed, epoch, step) only,
    so a run resumed mid-epoch draws exactly what the uninterrupted run drew."""
    key = jax.random.fold_in(jax.random.key(seed), AUGMENT_STREAM)
    return jax.random.fold_in(jax.random.fold_in(key, epoch), step_in_epoch)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy (float32)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def make_train_step(
    model_def: ModelDef,
    tx: optax.GradientTransformation,
    dataset: Dataset,
    mesh: Mesh,
    *,
    seed: int,
    augment_images: bool,
) -> Callable[..., tuple[TrainState, StepMetrics]]:
    """The jitted step `(state, split, batches, epoch, step_in_epoch, stop_flags)
    -> (state, StepMetrics)`.

    `batches` is the epoch's index table from `epoch_batches` (replicated) and
    `step_in_epoch` selects its row inside the program, so a step is one dispatch.
    `stop_flags` is a bool (num_devices,) array sharded along "data" that each
    process fills with its own wish to stop (`stop_flags_for`). The state is
    donated: the caller must use the returned one.
    """
    fill_value = dataset.pixel_range[0]  # black, as torchvision pads before scaling

    def train_step(state: TrainState, split: DeviceSplit, batches, epoch, step_in_epoch, stop_flags):
        images, labels = gather_batch(split, batches[step_in_epoch], mesh)
        images = dataset.normalize(images)
        if augment_images:
            images = augment(augment_key(seed, epoch, step_in_epoch), images, fill_value=fill_value)

        def loss_fn(params, model_state):
            # copy=True: fresh Variables at this trace level, which batch norm may update.
            model = nnx.merge(model_def.train, params, model_state, copy=True)
            logits = model(images)
            _, _, new_model_state = nnx.split(model, nnx.Param, ...)
            return cross_entropy(logits, labels).mean(), (logits, nnx.as_pure(new_model_state))

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (logits, model_state)), grads = grad_fn(state.params, state.model_state)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            model_state=model_state,
            opt_state=opt_state,
        )
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return new_state, StepMetrics(loss, accuracy, jnp.any(stop_flags))

    return jax.jit(train_step, donate_argnums=0, out_shardings=replicated(mesh))


def make_evaluate(model_def: ModelDef, dataset: Dataset, mesh: Mesh) -> Callable[..., EvalSums]:
    """The jitted pass `(state, split, indices, mask) -> EvalSums` over a whole
    split (the tables of `eval_batches`), in evaluation mode (running batch-norm
    statistics). One `lax.scan` over the batches: one dispatch per evaluation."""

    def evaluate(state: TrainState, split: DeviceSplit, indices, mask) -> EvalSums:
        model = nnx.merge(model_def.eval, state.params, state.model_state)

        def batch_sums(sums: EvalSums, batch):
            batch_indices, batch_mask = batch
            images, labels = gather_batch(split, batch_indices, mesh)
            logits = model(dataset.normalize(images))
            weights = batch_mask.astype(jnp.float32)
            return EvalSums(
                loss=sums.loss + jnp.sum(cross_entropy(logits, labels) * weights),
                correct=sums.correct + jnp.sum((jnp.argmax(logits, -1) == labels) * weights),
                count=sums.count + jnp.sum(weights),
            ), None

        zero = jnp.zeros((), jnp.float32)
        sums, _ = jax.lax.scan(batch_sums, EvalSums(zero, zero, zero), (indices, mask))
        return sums

    return jax.jit(evaluate, out_shardings=replicated(mesh))


def stop_flags_for(mesh: Mesh, stop: bool) -> jax.Array:
    """A bool (num_devices,) array sharded along "data", `stop` on this process's
    devices: the input through which a process tells the others it must stop."""
    return put(np.full((data_axis_size(mesh),), stop), batch_sharding(mesh))
