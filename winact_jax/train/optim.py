"""The optimizer and its learning-rate schedule, from optax's building blocks.

    tx = make_optimizer(config, total_steps)      # an optax.GradientTransformation

Adam at 1e-4 with a constant rate is the paper's; SGD (with momentum, optional
Nesterov) and AdamW are there for the other seed studies. Weight decay follows
PyTorch's conventions, under which the seeds ran: for Adam and SGD an L2 penalty
added to the gradient (`optax.add_decayed_weights` before the update rule), for
AdamW the decoupled decay of Loshchilov and Hutter (`optax.adamw`).
"""

from __future__ import annotations

import optax

from winact_jax.train.config import TrainConfig


def make_schedule(config: TrainConfig, total_steps: int) -> optax.Schedule:
    """The learning rate at each step: constant, cosine decay to 0, or one-cycle.

    `total_steps` is the run's planned number of steps; raising `epochs` when
    resuming a finished run stretches the cosine and one-cycle schedules to the
    new total (a constant schedule is unaffected).
    """
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(config.learning_rate, decay_steps=total_steps)
    if config.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(transition_steps=total_steps, peak_value=config.learning_rate)
    raise ValueError(f"unknown schedule {config.schedule!r}")


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """`config.optimizer` over `make_schedule(config, total_steps)`."""
    learning_rate = make_schedule(config, total_steps)
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
