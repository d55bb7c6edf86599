"""Element-wise baselines, under the names and defaults the seed's tables use.

These are `jax.nn`'s functions; the wrappers only pin the seed's defaults (the exact
erf form of GELU, as PyTorch's `nn.GELU`) and give every baseline the same
`f(x, **params)` form as the window activations, so the registry treats both alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def relu(x) -> jax.Array:
    """`max(x, 0)`. Example: `relu(jnp.array([-1., 2.]))` is `[0., 2.]`."""
    return jax.nn.relu(x)


def leaky_relu(x, negative_slope: float = 0.01) -> jax.Array:
    """`x` if `x >= 0` else `negative_slope * x` (PyTorch's default slope 0.01).

    Example: `leaky_relu(jnp.array([-1., 2.]))` is `[-0.01, 2.]`.
    """
    return jax.nn.leaky_relu(x, negative_slope)


def gelu(x, approximate: bool = False) -> jax.Array:
    """`x * Phi(x)`, `Phi` the standard normal CDF.

    The exact erf form by default, as the seed's PyTorch baseline; `approximate=True`
    gives the tanh form. Example: `gelu(jnp.array([0., 1.]))` is `[0., 0.8413]`.
    """
    return jax.nn.gelu(x, approximate=approximate)


def elu(x, alpha: float = 1.0) -> jax.Array:
    """`x` if `x > 0` else `alpha * (exp(x) - 1)`. Example: `elu(jnp.array([-1.]))` is `[-0.632]`."""
    return jax.nn.elu(x, alpha)


def selu(x) -> jax.Array:
    """`scale * elu(x, alpha)` with the self-normalizing constants (1.0507, 1.6733)."""
    return jax.nn.selu(x)


def celu(x, alpha: float = 1.0) -> jax.Array:
    """`max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))`."""
    return jax.nn.celu(x, alpha)


def silu(x) -> jax.Array:
    """`x * sigmoid(x)` (also called swish). Example: `silu(jnp.array([1.]))` is `[0.7311]`."""
    return jax.nn.silu(x)


def mish(x) -> jax.Array:
    """`x * tanh(softplus(x))`. Example: `mish(jnp.array([1.]))` is `[0.8651]`."""
    return jax.nn.mish(x)


def softplus(x) -> jax.Array:
    """`log(1 + exp(x))`. Example: `softplus(jnp.array([0.]))` is `[0.6931]`."""
    return jax.nn.softplus(x)


def tanh(x) -> jax.Array:
    """The hyperbolic tangent."""
    return jnp.tanh(x)


def sigmoid(x) -> jax.Array:
    """`1 / (1 + exp(-x))`."""
    return jax.nn.sigmoid(x)
