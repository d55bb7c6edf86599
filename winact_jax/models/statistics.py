"""What the activations of a model do on a batch: zero outputs, dead channels, values.

Dead units are the seed's argument for NeLU (docs/spec.md, "Activation
statistics"), so every model of this package can measure them, per activation layer
(an `ActivationLayer`, named by its path in the model, e.g. `"blocks.3.act2"`):

* `zero_fraction`: the fraction of outputs exactly zero;
* `dead_fraction`: the fraction of channels (the last axis) that are zero for
  every example and position of the batch;
* `mean` and `max` of the outputs.

The layers sow a small summary of their output (`nnx.Intermediate`) only in a view
of the model made with `nnx.view(model, record_statistics=True)`, collected by
`nnx.capture`: one forward pass of the same model, and nothing recorded (nor
computed) while it trains.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from winact_jax import models
    >>> model = models.create("lenet", 10, "relu", rngs=nnx.Rngs(0))
    >>> model.eval()
    >>> statistics = activation_statistics(model, jnp.zeros((2, 32, 32, 3)))
    >>> sorted(statistics)
    ['conv1_act', 'conv2_act', 'fc1_act', 'fc2_act']
    >>> sorted(statistics["fc2_act"])
    ['dead_fraction', 'max', 'mean', 'zero_fraction']

In a training loop that holds the model as a graph definition and its state,
`statistics_from_state` is the same computation as a pure function (`jax.jit` it
with the graph definition static, or build the jitted step with
`make_statistics_step`), and `flatten_statistics` turns its result into the flat
float-valued keys of a metrics record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from winact_jax import sharding
from winact_jax.models.activation import OUTPUT_SUMMARY, LearnableInfluence, OutputSummary

STATISTICS = ("zero_fraction", "dead_fraction", "mean", "max")

# Prefixes of `flatten_statistics`' keys.
ACTIVATION_PREFIX = "act"
INFLUENCE_PREFIX = "influence"

Statistics = dict[str, dict[str, jax.Array]]


def layer_name(path: tuple) -> str:
    """A module path as one dotted name: `("blocks", 3, "act2")` -> `"blocks.3.act2"`."""
    return ".".join(str(part) for part in path)


def _combine(summaries: tuple[OutputSummary, ...]) -> dict[str, jax.Array]:
    """The statistics of a layer's outputs over every call recorded (one per forward pass
    for the models here)."""
    size = sum(s.size for s in summaries)
    zeros = sum(s.zeros for s in summaries)
    total = sum(s.total for s in summaries)
    maximum = jnp.max(jnp.stack([s.maximum for s in summaries]))
    live = summaries[0].live
    for s in summaries[1:]:
        live = live | s.live
    return {
        "zero_fraction": zeros.astype(jnp.float32) / size.astype(jnp.float32),
        "dead_fraction": jnp.sum(~live, dtype=jnp.float32) / live.size,
        "mean": total / size.astype(jnp.float32),
        "max": maximum,
    }


def _recorded_statistics(model: nnx.Module, x: jax.Array) -> Statistics:
    """Runs `model` on `x` in a recording view; `model`'s own Variables may change
    (batch norm in training mode), so callers pass a copy."""
    recording = nnx.view(model, record_statistics=True, raise_if_not_found=False)
    _, intermediates = nnx.capture(recording, nnx.Intermediate)(x)
    statistics = {}
    for path, variable in nnx.to_flat_state(intermediates):
        if path[-1] == OUTPUT_SUMMARY:
            statistics[layer_name(path[:-1])] = _combine(tuple(variable.get_value()))
    return statistics


def statistics_from_state(graphdef: nnx.GraphDef, state: Any, x: jax.Array) -> tuple[Statistics, dict[str, jax.Array]]:
    """`(activation_statistics, learned_influences)` of the model `graphdef` with
    `state`, on the batch `x`: a pure function, to `jax.jit` with `graphdef` static.

    Args:
      graphdef: the model's `nnx.GraphDef`, in the mode to measure (evaluation
        mode, for batch norm on running statistics).
      state: its state: one `nnx.State`, or a tuple of them as `nnx.split` with
        filters returns (e.g. `(params, model_state)`).
      x: the batch, as the model takes it (normalized images).

    Example (a training loop's state; `jax.jit(..., static_argnums=0)` works too):

      >>> from winact_jax import models
      >>> model = models.create("lenet", 10, "nelu", learn_influence=True, rngs=nnx.Rngs(0))
      >>> model.eval()
      >>> graphdef, params, rest = nnx.split(model, nnx.Param, ...)
      >>> measure = jax.jit(statistics_from_state, static_argnums=0)
      >>> statistics, influences = measure(graphdef, (params, rest), jnp.zeros((2, 32, 32, 3)))
      >>> influences["fc1_act"].shape
      (120,)
    """
    states = state if isinstance(state, (tuple, list)) else (state,)
    model = nnx.merge(graphdef, *states, copy=True)
    return _recorded_statistics(model, x), learned_influences(model)


def make_statistics_step(
    graphdef: nnx.GraphDef,
    prepare: Callable[..., jax.Array] | None = None,
    *,
    out_shardings=None,
) -> Callable[..., tuple[Statistics, dict[str, jax.Array]]]:
    """`statistics_from_state` for one model, jitted: `step(state, *inputs)`.

    Args:
      graphdef: the model's `nnx.GraphDef` (evaluation mode, usually).
      prepare: `prepare(*inputs) -> x`, traced into the same program: e.g. gather
        a fixed batch from device-resident data and normalize it. Default: the
        one input is `x`.
      out_shardings: for `jax.jit`, e.g. `NamedSharding(mesh, P())` so every
        process can read the result.

    Returns:
      `step(state, *inputs) -> (statistics, influences)`; pass both to
      `flatten_statistics` for a metrics record. One compilation per input shape.
    """

    def step(state, *inputs):
        x = prepare(*inputs) if prepare is not None else inputs[0]
        return statistics_from_state(graphdef, state, x)

    return jax.jit(step, out_shardings=out_shardings)


def activation_statistics(model: nnx.Module, x: jax.Array) -> Statistics:
    """The statistics of every activation layer of `model` on the batch `x`.

    Runs `model` once, in its current mode (call `model.eval()` first for batch
    norm on running statistics); `model` itself is left unchanged (a training-mode
    batch norm does not update its running statistics here).

    Args:
      model: an `nnx.Module` whose nonlinearities are `ActivationLayer`s (every
        model of `winact_jax.models`).
      x: a batch, as the model takes it.

    Returns:
      `{layer name: {"zero_fraction", "dead_fraction", "mean", "max"}}`, float32
      scalar arrays, one entry per activation layer the forward pass called.
    """
    graphdef, state = nnx.split(model)
    return statistics_from_state(graphdef, state, x)[0]


def learned_influences(model: nnx.Module) -> dict[str, jax.Array]:
    """`{layer name: (channels,) influence}` of every `LearnableInfluence` layer of `model`."""
    return {
        layer_name(path): module.influence
        for path, module in nnx.iter_modules(model)
        if isinstance(module, LearnableInfluence)
    }


def _host_float(value) -> float:
    # A replicated array of a multi-process run is not fully addressable; every
    # device holds the same value.
    if isinstance(value, jax.Array):
        value = sharding.to_host(value)
    return float(np.asarray(value))


def flatten_statistics(
    statistics: Mapping[str, Mapping[str, Any]],
    influences: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Flat `{key: float}` for a metrics record, from `activation_statistics` (and
    `learned_influences`).

    Keys: `act/<layer>/<statistic>` for every layer and statistic,
    `act/mean_zero_fraction` and `act/mean_dead_fraction` (unweighted means over
    the layers), and `influence/<layer>/mean` for every learned influence.

    >>> flatten_statistics({"act": {"zero_fraction": 0.5, "dead_fraction": 0.0,
    ...                              "mean": 1.0, "max": 2.0}})["act/mean_zero_fraction"]
    0.5
    """
    flat: dict[str, float] = {}
    for layer, values in statistics.items():
        for name in STATISTICS:
            flat[f"{ACTIVATION_PREFIX}/{layer}/{name}"] = _host_float(values[name])
    if statistics:
        for name in ("zero_fraction", "dead_fraction"):
            per_layer = [flat[f"{ACTIVATION_PREFIX}/{layer}/{name}"] for layer in statistics]
            flat[f"{ACTIVATION_PREFIX}/mean_{name}"] = float(np.mean(per_layer))
    for layer, influence in (influences or {}).items():
        if isinstance(influence, jax.Array) and not influence.is_fully_addressable:
            influence = influence.addressable_data(0)
        flat[f"{INFLUENCE_PREFIX}/{layer}/mean"] = float(np.mean(np.asarray(influence, np.float64)))
    return flat
