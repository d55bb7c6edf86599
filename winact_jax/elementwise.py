"""Element-wise baselines, under the names and defaults the seed's tables use.

These are `jax.nn`'s functions; the wrappers only pin the seed's defaults (the exact
erf form of GELU, as PyTorch's `nn.GELU`) and give every baseline the same
`f(x, **params)` form as the window activations, so the registry treats both alike.
The examples use `x = jnp.array([-1.0, 0.0, 2.0])`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def relu(x) -> jax.Array:
    """`max(x, 0)`.

    >>> relu(jnp.array([-1.0, 0.0, 2.0]))
    Array([0., 0., 2.], dtype=float32)
    """
    return jax.nn.relu(x)


def leaky_relu(x, negative_slope: float = 0.01) -> jax.Array:
    """`x` if `x >= 0`, else `negative_slope * x` (PyTorch's default slope, 0.01).

    >>> leaky_relu(jnp.array([-1.0, 0.0, 2.0]))
    Array([-0.01,  0.  ,  2.  ], dtype=float32)
    """
    return jax.nn.leaky_relu(x, negative_slope)


def gelu(x, approximate: bool = False) -> jax.Array:
    """`x * Phi(x)`, `Phi` the standard normal CDF.

    The exact erf form by default, as the seed's PyTorch baseline; `approximate=True`
    gives the tanh form.

    >>> [round(v, 4) for v in gelu(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-0.1587, 0.0, 1.9545]
    """
    return jax.nn.gelu(x, approximate=approximate)


def elu(x, alpha: float = 1.0) -> jax.Array:
    """`x` if `x > 0`, else `alpha * (exp(x) - 1)`.

    >>> [round(v, 4) for v in elu(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-0.6321, 0.0, 2.0]
    """
    return jax.nn.elu(x, alpha)


def selu(x) -> jax.Array:
    """`scale * elu(x, alpha)` with the self-normalizing constants (1.0507, 1.6733).

    >>> [round(v, 4) for v in selu(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-1.1113, 0.0, 2.1014]
    """
    return jax.nn.selu(x)


def celu(x, alpha: float = 1.0) -> jax.Array:
    """`max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))`.

    >>> [round(v, 4) for v in celu(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-0.6321, 0.0, 2.0]
    """
    return jax.nn.celu(x, alpha)


def silu(x) -> jax.Array:
    """`x * sigmoid(x)`, also called swish.

    >>> [round(v, 4) for v in silu(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-0.2689, 0.0, 1.7616]
    """
    return jax.nn.silu(x)


def mish(x) -> jax.Array:
    """`x * tanh(softplus(x))`.

    >>> [round(v, 4) for v in mish(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-0.3034, 0.0, 1.944]
    """
    return jax.nn.mish(x)


def softplus(x) -> jax.Array:
    """`log(1 + exp(x))`.

    >>> [round(v, 4) for v in softplus(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [0.3133, 0.6931, 2.1269]
    """
    return jax.nn.softplus(x)


def tanh(x) -> jax.Array:
    """The hyperbolic tangent.

    >>> [round(v, 4) for v in tanh(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-0.7616, 0.0, 0.964]
    """
    return jnp.tanh(x)


def sigmoid(x) -> jax.Array:
    """`1 / (1 + exp(-x))`.

    >>> [round(v, 4) for v in sigmoid(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [0.2689, 0.5, 0.8808]
    """
    return jax.nn.sigmoid(x)
