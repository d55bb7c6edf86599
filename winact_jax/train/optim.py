"""The optimizer and its learning-rate schedule, from optax's building blocks.

    schedule = make_schedule(config, total_steps, steps_per_epoch)
    tx = make_optimizer(config, schedule)        # an optax.GradientTransformation

Adam at 1e-4 with a constant rate is the paper's; SGD (with momentum, optional
Nesterov) and AdamW are there for the other seed studies. Weight decay follows
PyTorch's conventions, under which the seeds ran: for Adam and SGD an L2 penalty
added to the gradient (`optax.add_decayed_weights` before the update rule), for
AdamW the decoupled decay of Loshchilov and Hutter (`optax.adamw`).
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from winact_jax.train.config import TrainConfig

# The triangular schedule's low point, as a fraction of its peak (Smith, "Cyclical
# Learning Rates for Training Neural Networks", 2017, bounds a cycle within about
# an order of magnitude).
TRIANGULAR_LOW_FRACTION = 0.1


def triangular_schedule(peak_value: float, cycle_steps: int, low_value: float | None = None) -> optax.Schedule:
    """A cyclical learning rate: linearly from `low_value` up to `peak_value` in the
    first half of each cycle of `cycle_steps` steps, and back down in the second.

    `low_value` defaults to `peak_value * TRIANGULAR_LOW_FRACTION`.

    >>> schedule = triangular_schedule(1.0, cycle_steps=4, low_value=0.0)
    >>> [float(schedule(step)) for step in range(6)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.5]
    """
    if cycle_steps < 2:
        raise ValueError(f"cycle_steps must be at least 2; got {cycle_steps}")
    low = peak_value * TRIANGULAR_LOW_FRACTION if low_value is None else low_value
    half = cycle_steps / 2

    def schedule(count):
        position = jnp.mod(count, cycle_steps) / half  # 0 -> 2 over a cycle
        return low + (peak_value - low) * (1.0 - jnp.abs(position - 1.0))

    return schedule


def make_schedule(config: TrainConfig, total_steps: int, steps_per_epoch: int = 1) -> optax.Schedule:
    """The learning rate at each step: constant, cosine decay to 0, one-cycle or
    triangular (period `config.cycle_epochs * steps_per_epoch` steps).

    `total_steps` is the run's planned number of steps; raising `epochs` when
    resuming a finished run stretches the cosine and one-cycle schedules to the
    new total (constant and triangular ones are unaffected).
    """
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(config.learning_rate, decay_steps=total_steps)
    if config.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(transition_steps=total_steps, peak_value=config.learning_rate)
    if config.schedule == "triangular":
        return triangular_schedule(config.learning_rate, max(2, config.cycle_epochs * steps_per_epoch))
    raise ValueError(f"unknown schedule {config.schedule!r}")


def make_optimizer(config: TrainConfig, learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """`config.optimizer` at `learning_rate` (a `make_schedule` or a number)."""
    if config.optimizer == "adamw":
        return optax.adamw(learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        rule = optax.adam(learning_rate)
    elif config.optimizer == "sgd":
        rule = optax.sgd(learning_rate, momentum=config.momentum or None, nesterov=config.nesterov)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    if config.weight_decay:
        return optax.chain(optax.add_decayed_weights(config.weight_decay), rule)
    return rule
