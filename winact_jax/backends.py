"""Backend choices: how XLA runs this project's programs, decided before JAX starts.

One home for every choice of kernels or XLA flags per backend, apart from where
arrays live (`winact_jax.sharding`): such a choice is not about training, and the
training, sweep and benchmark commands and the test session all make it the same
way. Two are made here.

CPU convolutions on XLA's Eigen kernels, not YNNPACK. jaxlib 0.10's XLA:CPU hands
convolutions to YNNPACK. For the weight gradients of 3x3 convolutions (which XLA
computes as convolutions over the batch) YNNPACK is far slower than XLA's own Eigen
convolutions, and one thread idles while the other finishes them: SeedBackbone's
training step is 1.65x to 1.9x faster with Eigen (measured, re-measurable, in
docs/benchmarks.md, "Why the convolution library decides it"). The training, sweep
and benchmark commands therefore start with YNNPACK's convolutions switched off.

The switch is an XLA flag, read once, when JAX first uses a device: call
`prefer_eigen_convolutions` before that. It changes only the CPU backend, so it
is harmless on a GPU machine. It is set only for the jaxlib versions it was
measured on (XLA aborts on a flag it does not know), and never over a choice the
user made in `XLA_FLAGS`.

Values computed once on XLA:CPU: `materialize` keeps XLA:CPU from recomputing an
activation's output (or a window statistic) inside every consumer, and
`materialize_cotangent` does the same for a cotangent in the backward pass; they
are part of the program, not flags, and no-ops on other platforms.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import MutableMapping

import jax
import jax.numpy as jnp

YNN_FUSION_TYPE_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
EIGEN_CONVOLUTIONS_FLAG = f"{YNN_FUSION_TYPE_FLAG}=-individual_convolution"
# (major, minor) of the jaxlib releases whose XLA knows the flag and was measured.
MEASURED_JAXLIB = ((0, 10),)


def jaxlib_release() -> tuple[int, int] | None:
    """(major, minor) of the installed jaxlib, or None if it cannot be read."""
    try:
        major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def prefer_eigen_convolutions(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Adds the flag that gives CPU convolutions to Eigen to `XLA_FLAGS`.

    Does nothing when `XLA_FLAGS` already sets YNNPACK fusion types, or when the
    installed jaxlib is not one the flag was measured on. Returns whether the flag
    was added. Only takes effect if JAX has not used a device yet in this process.

    Example:
      >>> env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
      >>> prefer_eigen_convolutions(env) == (jaxlib_release() in MEASURED_JAXLIB)
      True
    """
    flags = environ.get("XLA_FLAGS", "")
    if YNN_FUSION_TYPE_FLAG in flags or jaxlib_release() not in MEASURED_JAXLIB:
        return False
    environ["XLA_FLAGS"] = f"{flags} {EIGEN_CONVOLUTIONS_FLAG}".strip()
    return True


@jax.custom_vjp
def _divide_by_opaque_one(y: jax.Array) -> jax.Array:
    # A full-shape 1: a scalar one is turned into a multiplication by its
    # reciprocal, which XLA duplicates again.
    return y / jax.lax.optimization_barrier(jnp.ones(y.shape, y.dtype))


_divide_by_opaque_one.defvjp(lambda y: (_divide_by_opaque_one(y), None), lambda _, g: (g,))


def materialize(y: jax.Array) -> jax.Array:
    """`y`, computed once: its consumers read it from memory instead of recomputing it.

    XLA:CPU fuses a recomputation of cheap element-wise producers into each consumer
    that can take them. A convolution's weight gradient transposes its input, so in
    a ResNet each of those transposes recomputed the residual stream back through
    up to seven blocks (batch norms, activations, sums), and a window activation's
    recomputation broadcasts window statistics in the transposed layout, which is
    slow. Every model's activation layer therefore materializes its output
    (`winact_jax.models.activation`), and a window statistic built from slices
    (channel windows' maxima) is materialized where it is computed (`windows.py`).
    XLA never duplicates an expensive instruction, so on a CPU `y` is divided by a
    1 that XLA cannot see is 1 (an `optimization_barrier`): `y` exactly
    (signed zeros, infinities and NaNs included; subnormals flush to zero, as in
    every arithmetic op of XLA:CPU), at one division per element inside the fusion
    that computes `y` anyway, and an identity gradient. A barrier on `y` itself
    does nothing: XLA lowers barriers away before it fuses. Other platforms get `y`
    untouched (`jax.lax.platform_dependent`). ResNet-38's training step on a CPU:
    docs/benchmarks.md.

    Example:
      >>> import jax.numpy as jnp
      >>> materialize(jnp.array([-0.0, 1.5, jnp.inf]))
      Array([-0. ,  1.5,  inf], dtype=float32)
    """
    return jax.lax.platform_dependent(y, cpu=_divide_by_opaque_one, default=lambda y: y)


@jax.custom_vjp
def _cotangent_materialized(y: jax.Array) -> jax.Array:
    return y


_cotangent_materialized.defvjp(lambda y: (y, None), lambda _, g: (materialize(g),))


def materialize_cotangent(y: jax.Array) -> jax.Array:
    """`y` itself, whose cotangent is materialized (`materialize`) in the backward
    pass: the backward pass's consumers of that cotangent read it from memory
    instead of recomputing it.

    The chain that computes a cotangent in a ResNet's backward pass (residual sums,
    batch norms' and activations' backward passes, through a whole stage) is cheap
    element-wise work, which XLA:CPU fuses into every consumer that reuses elements.
    Window statistics taken as unrolled slices along the channels are such
    consumers: with channel windows of 4 their fusions in ResNet-38's training step
    read up to 65 arrays, and NeLU's step took 1.38x ReLU's, 1.11x with this
    (docs/benchmarks.md). A model's activation layer applies it to channel-window
    activations (`winact_jax.models.activation`); ReLU's step is slower with it,
    and tiled or centered windows gain nothing. The forward pass is untouched.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> jax.grad(lambda y: jnp.sum(3.0 * materialize_cotangent(y)))(jnp.ones(2))
      Array([3., 3.], dtype=float32)
    """
    return _cotangent_materialized(y)
