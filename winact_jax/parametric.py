"""Parametric comparators: activations with learned per-channel parameters.

Pure functions, like the rest of the package; the parameters are arguments. Models
hold them in NNX layers (`winact_jax.models`), and `winact_jax.get("prelu", ...)`
binds a fixed slope. FReLU's kernel, scale and bias are learned arrays that `get`
does not bind (see `winact_jax.registry`).

* `prelu(x, slope)`: `x` if `x > 0`, else `slope * x` (He et al., 2015);
* `frelu(x, kernel, scale, bias)`: `max(x, T(x))`, `T` a depthwise `k x k`
  convolution with `SAME` zero padding and a per-channel affine (Ma et al., 2020).

Specification: docs/spec.md, "Parametric comparators".
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_SLOPE = 0.25  # PyTorch's nn.PReLU initial slope


def _check_floating(x, name: str, min_rank: int, layout: str) -> jax.Array:
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array (bfloat16, float16, float32 or float64); got dtype {x.dtype}"
        )
    if x.ndim < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank}: {layout}; got shape {tuple(x.shape)} (rank {x.ndim})")
    return jnp.asarray(x)


def _check_per_channel(value, name: str, channels: int, allow_scalar: bool, accepted: str) -> jax.Array:
    """`value` as an array of shape `()` (if allowed) or `(channels,)`; a concrete
    value must be finite."""
    if isinstance(value, (bool, str)) or value is None:
        raise TypeError(f"{name} must be {accepted}; got {value!r} ({type(value).__name__})")
    if isinstance(value, numbers.Real):
        value = float(value)
    array = value if isinstance(value, jax.Array) else np.asarray(value)
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise TypeError(f"{name} must be {accepted}; got an array of dtype {array.dtype}")
    shape = tuple(array.shape)
    if shape != (channels,) and not (allow_scalar and shape == ()):
        raise ValueError(f"{name} must be {accepted}; got shape {shape} for an input with {channels} channels")
    if not isinstance(array, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(array, np.float64))):
        raise ValueError(f"{name} must be {accepted}; got non-finite values: {value!r}")
    return jnp.asarray(array)


def prelu(x, slope=DEFAULT_SLOPE) -> jax.Array:
    r"""Parametric ReLU: a learned slope for the negative part.

    .. math::  y = \begin{cases} x & x > 0 \\ s \cdot x & \text{otherwise} \end{cases}

    Differentiable with respect to `x` and `slope` (`dy/ds = min(x, 0)`).

    Args:
      x: floating array, channels last (any rank >= 1).
      slope: `s`, a finite scalar or an array of shape `(C,)`, one per channel (C
        the last axis of `x`).

    Returns:
      An array of `x`'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.prelu(jnp.array([[-2.0, 3.0], [-1.0, -4.0]]), slope=jnp.array([0.5, 0.25]))
      Array([[-1. ,  3. ],
             [-0.5, -1. ]], dtype=float32)
    """
    x = _check_floating(x, "x", 1, "(..., channels)")
    slope = _check_per_channel(
        slope, "slope", x.shape[-1], True, f"a finite float or an array of shape ({x.shape[-1]},) (one per channel)"
    )
    return jnp.where(x > 0, x, slope.astype(x.dtype) * x)


def frelu(x, kernel, scale, bias) -> jax.Array:
    r"""Funnel ReLU (FReLU, Ma et al. 2020): `max(x, T(x))`, a spatial condition per element.

    .. math::  T(x)_{h,w,c} = \mathrm{scale}_c \sum_{u,v} x_{h+u-(k-1)/\!/2,\, w+v-(k-1)/\!/2,\, c}
               \, \mathrm{kernel}_{u,v,c} + \mathrm{bias}_c, \qquad y = \max(x, T(x))

    `T` is a depthwise (per-channel) cross-correlation with `SAME` zero padding (the
    offsets of a centered window), then a per-channel affine: the paper's
    BatchNorm, folded (in models, a real BatchNorm). The convolution is computed in
    at least float32.

    Args:
      x: floating array, NHWC `(batch, height, width, channels)`.
      kernel: `(k_h, k_w, C)` (the paper's `k x k`, usually 3 x 3).
      scale: `(C,)`.
      bias: `(C,)`.

    Returns:
      An array of `x`'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> x = jnp.array([-1.0, 2.0]).reshape(1, 1, 2, 1)   # one row of two pixels
      >>> wa.frelu(x, jnp.ones((3, 3, 1)), jnp.ones(1), jnp.zeros(1)).reshape(-1)
      Array([1., 2.], dtype=float32)
    """
    x = _check_floating(x, "x", 4, "NHWC (batch, height, width, channels)")
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC (batch, height, width, channels); got shape {tuple(x.shape)} (rank {x.ndim})")
    channels = x.shape[-1]
    kernel = kernel if isinstance(kernel, jax.Array) else jnp.asarray(kernel)
    if kernel.ndim != 3 or kernel.shape[-1] != channels or 0 in kernel.shape:
        raise ValueError(
            f"kernel must have shape (k, k, {channels}) (a depthwise kernel, channels last); got shape "
            f"{tuple(kernel.shape)}"
        )
    accepted = f"an array of shape ({channels},) (one per channel)"
    scale = _check_per_channel(scale, "scale", channels, False, accepted)
    bias = _check_per_channel(bias, "bias", channels, False, accepted)
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    funnel = depthwise_conv(x.astype(dtype), kernel.astype(dtype))
    funnel = funnel * scale.astype(dtype) + bias.astype(dtype)
    return jnp.maximum(x.astype(dtype), funnel).astype(x.dtype)


# Kernels with at most this many taps are applied as a weighted sum of shifted
# slices of one padded copy of x, which XLA fuses into one loop; on XLA:CPU that
# measured about 20x faster, forward and backward, than the grouped convolution
# (`feature_group_count=C`) that larger kernels use.
MAX_TAPS = 25


def depthwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """FReLU's funnel before its affine: a per-channel `SAME` cross-correlation.

    `T[b, h, w, c] = sum_{u,v} x[b, h+u-(k_h-1)//2, w+v-(k_w-1)//2, c] * kernel[u, v, c]`,
    zero outside the map; `x` NHWC, `kernel` `(k_h, k_w, C)`, shapes unchecked (see
    `frelu`). The one implementation of the funnel: `frelu` and the `FReLU` model
    layer both call it.
    """
    k_h, k_w, channels = kernel.shape
    padding = [((k_h - 1) // 2, k_h // 2), ((k_w - 1) // 2, k_w // 2)]
    if k_h * k_w > MAX_TAPS:
        return jax.lax.conv_general_dilated(
            x,
            kernel.reshape(k_h, k_w, 1, channels),
            window_strides=(1, 1),
            padding=padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=channels,
        )
    height, width = x.shape[1:3]
    padded = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    taps = [padded[:, u : u + height, v : v + width, :] * kernel[u, v] for u in range(k_h) for v in range(k_w)]
    return functools.reduce(jnp.add, taps)


__all__ = ["DEFAULT_SLOPE", "depthwise_conv", "frelu", "prelu"]
