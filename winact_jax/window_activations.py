"""The window activations: every value modulated by the statistics of its window.

Each public function is pure: `f(x, window=4, ...) -> y` with `y.shape == x.shape`
and `y.dtype == x.dtype`. `x` is channels-last: `(batch, features)` for dense
layers, `(batch, *spatial, channels)` for 1-D, 2-D and 3-D feature maps. Windows
tile the spatial axes without overlap, per batch element and per channel; a partial
window at the far edge is reduced over its real elements only (see `windows.py`).

Statistics of one window `W` (the notation of the specification):

    neg  = sum of min(w, 0)        pos  = sum of max(w, 0)
    n_np = number of w <= 0        n_nn = number of w >= 0
    m    = max of W

Gradients are those of the formulas, with comparisons, counts and the choice of the
maximum carrying none. They are written out as custom VJPs because autodiff of the
formulas makes several more passes over memory than needed: each backward pass here
is one window reduction plus one element-wise pass, and keeps only `x` and the
per-window statistics (a fraction of `x`'s size) as residuals.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp

from winact_jax import windows
from winact_jax.windows import Tiling, WindowSize

DEFAULT_WINDOW = 4
DEFAULT_INFLUENCE = 0.1
DEFAULT_THRESHOLD = 0.25


# --------------------------------------------------------------------------- checks


def _real_number(name: str, value, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {accepted}; got {value!r} ({type(value).__name__})")
    return float(value)


def check_influence(influence) -> float:
    """Returns `influence` as a float, or raises unless it is finite and in [0, 1]."""
    accepted = "a finite float in [0, 1]"
    a = _real_number("influence", influence, accepted)
    if not (math.isfinite(a) and 0.0 <= a <= 1.0):
        raise ValueError(f"influence must be {accepted}; got {influence!r}")
    return a


def check_threshold(threshold) -> float:
    """Returns `threshold` as a float, or raises unless it is in (0, 1]."""
    accepted = "a float in (0, 1]"
    t = _real_number("threshold", threshold, accepted)
    if not (0.0 < t <= 1.0):
        raise ValueError(f"threshold must be {accepted}; got {threshold!r}")
    return t


def _prepare(x, window: WindowSize) -> tuple[jax.Array, Tiling]:
    x = windows.check_input(x)
    return x, windows.tile(x.shape, window)


def _compute_dtype(dtype) -> jnp.dtype:
    # bf16/fp16 windows are summed and combined in float32; float64 stays float64.
    return jnp.promote_types(dtype, jnp.float32)


def _blocked(tiling: Tiling, x: jax.Array) -> jax.Array:
    return tiling.blocks(x).astype(_compute_dtype(x.dtype))


def _output(tiling: Tiling, y: jax.Array, dtype) -> jax.Array:
    return tiling.unblock(y.astype(dtype))


def _with_vjp(forward, backward):
    """`f(x, tiling, a)` computed by `forward(x, tiling, a) -> (y, residuals)`, with
    `backward(tiling, a, residuals, g) -> (dx,)` as its VJP; `tiling` and the
    parameter `a` are static."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
    def activation(x, tiling: Tiling, a):
        return forward(x, tiling, a)[0]

    activation.defvjp(forward, backward)
    return activation


def _sum_where(tiling: Tiling, values: jax.Array, present: jax.Array) -> jax.Array:
    """Window sums of `values`, which must be zero wherever `present` is False.

    The sum is reduced together with the count of `present` elements and kept only
    where that count is positive, which changes nothing (a window with no present
    element sums zeros) but makes the reduction a two-output one. XLA:CPU emits
    those in its own fused loops, one pass over memory, whereas it hands one-output
    sums to YNNPACK, whose fusions here materialise full-size broadcasts: NeLU's
    forward+backward measured 1.99x ReLU's with a plain sum and 1.43x with this, in
    one process (docs/benchmarks.md). On GPU the count is free: the pass is
    memory-bound.
    """
    total, count = tiling.reduce((windows.SUM, values), (windows.SUM, present))
    return jnp.where(count > 0, total, 0)


# --------------------------------------------------------------------------- NeLU
# y = relu(w + a*neg); dy_i/dx_j = [y_i > 0] (delta_ij + a [x_j < 0]).
# Residuals: x and the window sums `neg`; the backward pass recomputes the masks.


def _negative_sums(tiling, xb):
    return _sum_where(tiling, jnp.minimum(xb, 0), xb < 0)


def _drain_backward(tiling, a, xb, gb, live, share=1.0):
    """`dx_j = [live_j] g_j + a * share * [x_j < 0] * sum_i([live_i] g_i)`.

    The backward pass of every activation whose negatives are drained into live
    elements (NeLU, passive NeLU, inhibitor v2): one reduction, one element-wise pass.
    """
    back = _sum_where(tiling, jnp.where(live, gb, 0), live)
    return jnp.where(live, gb, jnp.where(xb < 0, a * share * back, 0))


def _nelu_fwd(x, tiling, a):
    xb = _blocked(tiling, x)
    neg = _negative_sums(tiling, xb)
    y = jnp.maximum(xb + a * neg, 0)
    return _output(tiling, y, x.dtype), (x, neg)


def _nelu_bwd(tiling, a, residuals, g):
    x, neg = residuals
    xb = _blocked(tiling, x)
    dx = _drain_backward(tiling, a, xb, _blocked(tiling, g), live=xb + a * neg > 0)
    return (_output(tiling, dx, x.dtype),)


_nelu = _with_vjp(_nelu_fwd, _nelu_bwd)


def nelu(x, window: WindowSize = DEFAULT_WINDOW, influence: float = DEFAULT_INFLUENCE) -> jax.Array:
    r"""Negative-linear-unit: each value drained by a share of its window's negatives.

    .. math::  y = \mathrm{relu}(w + a \cdot \mathrm{neg}), \quad
               \mathrm{neg} = \textstyle\sum_{v \in W} \min(v, 0)

    Negative inputs receive gradient whenever a neighbour fires:
    `dy_i/dx_j = [y_i > 0] (delta_ij + a [x_j < 0])` within a window.

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size, an int for every spatial axis or a tuple with one entry
        per spatial axis.
      influence: `a`, the share of the negative mass drained, in [0, 1].

    Returns:
      An array of `x`'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.nelu(jnp.array([[2.0, -1.0, 1.0, -3.0]]), window=4, influence=0.125)
      Array([[1.5, 0. , 0.5, 0. ]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _nelu(x, tiling, check_influence(influence))


def inhibitor(x, window: WindowSize = DEFAULT_WINDOW, influence: float = DEFAULT_INFLUENCE) -> jax.Array:
    r"""Inhibitor: negatives inhibit the positives of their window.

    .. math::  y = \mathrm{relu}(w - a \min(w, 0) + a \cdot \mathrm{neg})

    For `w > 0` the correction `-a min(w, 0)` vanishes and for `w <= 0` both forms
    are `<= 0`, so this is `nelu` exactly, in value and gradient; it is computed by
    `nelu` and kept under its own name because the seed's tables report both.

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).
      influence: `a`, in [0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.inhibitor(jnp.array([[2.0, -1.0, 1.0, -3.0]]), window=4, influence=0.125)
      Array([[1.5, 0. , 0.5, 0. ]], dtype=float32)
    """
    return nelu(x, window=window, influence=influence)


# --------------------------------------------------------------------------- passive NeLU
# y = [w > 0] (w + a*neg): the drained value passes even when it turned negative.


def _pnelu_fwd(x, tiling, a):
    xb = _blocked(tiling, x)
    neg = _negative_sums(tiling, xb)
    y = jnp.where(xb > 0, xb + a * neg, 0)
    return _output(tiling, y, x.dtype), (x,)


def _pnelu_bwd(tiling, a, residuals, g):
    (x,) = residuals
    xb = _blocked(tiling, x)
    dx = _drain_backward(tiling, a, xb, _blocked(tiling, g), live=xb > 0)
    return (_output(tiling, dx, x.dtype),)


_pnelu = _with_vjp(_pnelu_fwd, _pnelu_bwd)


def pnelu(x, window: WindowSize = DEFAULT_WINDOW, influence: float = DEFAULT_INFLUENCE) -> jax.Array:
    r"""Passive NeLU: every positive input passes, drained, even if the drain made it negative.

    .. math::  y = \begin{cases} w + a \cdot \mathrm{neg} & w > 0 \\ 0 & \text{otherwise} \end{cases}

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).
      influence: `a`, in [0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.pnelu(jnp.array([[2.0, -1.0, 0.25, -3.0]]), window=4, influence=0.1)
      Array([[ 1.6 ,  0.  , -0.15,  0.  ]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _pnelu(x, tiling, check_influence(influence))


# --------------------------------------------------------------------------- excitator
# y = relu(w - a*relu(w) + a*pos): every element gains a share of the window's positives.


def _positive_sums(tiling, xb):
    return _sum_where(tiling, jnp.maximum(xb, 0), xb > 0)


def _excitator_pre(xb, pos, a):
    return xb - a * jnp.maximum(xb, 0) + a * pos


def _excitator_fwd(x, tiling, a):
    xb = _blocked(tiling, x)
    pos = _positive_sums(tiling, xb)
    y = jnp.maximum(_excitator_pre(xb, pos, a), 0)
    return _output(tiling, y, x.dtype), (x, pos)


def _excitator_bwd(tiling, a, residuals, g):
    # dz_i/dx_j = delta_ij (1 - a [x_i > 0]) + a [x_j > 0]: every live element's
    # gradient flows back to every positive (donor) element of its window.
    x, pos = residuals
    xb = _blocked(tiling, x)
    gb = _blocked(tiling, g)
    live = _excitator_pre(xb, pos, a) > 0
    back = _sum_where(tiling, jnp.where(live, gb, 0), live)
    own = jnp.where(live, jnp.where(xb > 0, (1 - a) * gb, gb), 0)
    dx = jnp.where(xb > 0, own + a * back, own)
    return (_output(tiling, dx, x.dtype),)


_excitator = _with_vjp(_excitator_fwd, _excitator_bwd)


def excitator(x, window: WindowSize = DEFAULT_WINDOW, influence: float = DEFAULT_INFLUENCE) -> jax.Array:
    r"""Excitator: a fraction of the window's positive mass is added to every element.

    .. math::  y = \mathrm{relu}(w - a\,\mathrm{relu}(w) + a \cdot \mathrm{pos}), \quad
               \mathrm{pos} = \textstyle\sum_{v \in W} \max(v, 0)

    Weak negatives next to strong positives can fire.

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).
      influence: `a`, in [0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.excitator(jnp.array([[2.0, -0.1, 0.5, -3.0]]), window=4, influence=0.1)
      Array([[2.05, 0.15, 0.7 , 0.  ]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _excitator(x, tiling, check_influence(influence))


# --------------------------------------------------------------------------- excitator v2
# Positives keep (1-a) of themselves; the moved mass a*pos is split equally among the
# n_np non-positive elements of the window.


def _equal_shares(tiling, mass, receivers):
    """Each window's `mass` split equally among its `receivers` (at least 1), and
    `1 / max(1, number of receivers)`, from one pass."""
    total, count = tiling.reduce((windows.SUM, mass), (windows.SUM, receivers))
    inv_receivers = 1 / jnp.maximum(count, 1)
    return total * inv_receivers, inv_receivers


def _excitator_v2_stats(xb, tiling):
    return _equal_shares(tiling, jnp.maximum(xb, 0), xb <= 0)


def _excitator_v2_fwd(x, tiling, a):
    xb = _blocked(tiling, x)
    share, inv_receivers = _excitator_v2_stats(xb, tiling)
    y = jnp.where(xb > 0, (1 - a) * xb, jnp.maximum(xb + a * share, 0))
    return _output(tiling, y, x.dtype), (x, share, inv_receivers)


def _excitator_v2_bwd(tiling, a, residuals, g):
    # Donors (w > 0) pass (1 - a) of their gradient and receive a / n_np of every
    # live receiver's; live receivers (w <= 0 lifted above 0) pass theirs.
    x, share, inv_receivers = residuals
    xb = _blocked(tiling, x)
    gb = _blocked(tiling, g)
    lifted = xb + a * share > 0
    live_receiver = (xb <= 0) & lifted
    back = _sum_where(tiling, jnp.where(live_receiver, gb, 0), live_receiver)
    # Written without `live_receiver` so XLA does not share (and store) the
    # masked gradient between the reduction and this pass.
    dx = jnp.where(xb > 0, (1 - a) * gb + a * inv_receivers * back, jnp.where(lifted, gb, 0))
    return (_output(tiling, dx, x.dtype),)


_excitator_v2 = _with_vjp(_excitator_v2_fwd, _excitator_v2_bwd)


def excitator_v2(x, window: WindowSize = DEFAULT_WINDOW, influence: float = DEFAULT_INFLUENCE) -> jax.Array:
    r"""Excitator v2: positives give up a fraction `a` of themselves, split equally among the rest.

    .. math::  y = \begin{cases} (1 - a)\, w & w > 0 \\
                 \mathrm{relu}\!\left(w + a \cdot \mathrm{pos} / \max(1, n_{np})\right) & \text{otherwise}
                 \end{cases}

    where `n_np` counts the window's elements `<= 0`.

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).
      influence: `a`, in [0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.excitator_v2(jnp.array([[2.0, -0.1, 2.0, -3.0]]), window=4, influence=0.5)
      Array([[1. , 0.9, 1. , 0. ]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _excitator_v2(x, tiling, check_influence(influence))


# --------------------------------------------------------------------------- inhibitor v2
# Non-negatives are drained by an equal share of a*neg: a*neg / max(1, n_nn).


def _inhibitor_v2_stats(xb, tiling):
    return _equal_shares(tiling, jnp.minimum(xb, 0), xb >= 0)


def _inhibitor_v2_live(xb, share, a):
    return (xb >= 0) & (xb + a * share > 0)


def _inhibitor_v2_fwd(x, tiling, a):
    xb = _blocked(tiling, x)
    share, inv_receivers = _inhibitor_v2_stats(xb, tiling)
    y = jnp.where(_inhibitor_v2_live(xb, share, a), xb + a * share, 0)
    return _output(tiling, y, x.dtype), (x, share, inv_receivers)


def _inhibitor_v2_bwd(tiling, a, residuals, g):
    x, share, inv_receivers = residuals
    xb = _blocked(tiling, x)
    live = _inhibitor_v2_live(xb, share, a)
    dx = _drain_backward(tiling, a, xb, _blocked(tiling, g), live=live, share=inv_receivers)
    return (_output(tiling, dx, x.dtype),)


_inhibitor_v2 = _with_vjp(_inhibitor_v2_fwd, _inhibitor_v2_bwd)


def inhibitor_v2(x, window: WindowSize = DEFAULT_WINDOW, influence: float = DEFAULT_INFLUENCE) -> jax.Array:
    r"""Inhibitor v2: the window's negative mass, split equally among its non-negative elements.

    .. math::  y = \begin{cases}
                 \mathrm{relu}\!\left(w + a \cdot \mathrm{neg} / \max(1, n_{nn})\right) & w \ge 0 \\
                 0 & \text{otherwise} \end{cases}

    where `n_nn` counts the window's elements `>= 0`. (The seed's code computed
    `n_nn` and never used it, which made it `nelu`; this is the redistribution the
    paper describes, mirroring `excitator_v2`.)

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).
      influence: `a`, in [0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.inhibitor_v2(jnp.array([[2.0, -1.0, 0.5, -3.0]]), window=4, influence=0.5)
      Array([[1., 0., 0., 0.]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _inhibitor_v2(x, tiling, check_influence(influence))


# --------------------------------------------------------------------------- selections
# softmax_threshold, max and max_relu keep some elements and zero the rest; the
# selection carries no gradient, so dy/dx is the kept mask. The mask is recomputed
# in the backward pass from x and the per-window statistics rather than stored.


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _select(x, tiling: Tiling, rule: str, t: float):
    return _select_fwd(x, tiling, rule, t)[0]


def _window_stats(xb, tiling, rule):
    if rule != "softmax":
        return tiling.reduce((windows.MAX, xb))
    (m,) = tiling.reduce((windows.MAX, xb))
    (total,) = tiling.reduce((windows.SUM, jnp.exp(xb - m)))
    return m, total


def _kept(xb, stats, rule, t):
    if rule == "softmax":
        m, total = stats
        return jnp.exp(xb - m) / total >= t
    (m,) = stats
    keep = xb == m
    return keep & (xb > 0) if rule == "max_relu" else keep


def _select_fwd(x, tiling, rule, t):
    # Comparisons against the window max are exact in x's own dtype; the softmax is
    # taken in float32 (or float64).
    xb = tiling.blocks(x)
    stats = _window_stats(xb.astype(_compute_dtype(x.dtype)) if rule == "softmax" else xb, tiling, rule)
    y = jnp.where(_kept(xb.astype(stats[0].dtype), stats, rule, t), xb, 0)
    return tiling.unblock(y), (x, stats)


def _select_bwd(tiling, rule, t, residuals, g):
    x, stats = residuals
    xb = tiling.blocks(x).astype(stats[0].dtype)
    dx = jnp.where(_kept(xb, stats, rule, t), tiling.blocks(g), 0)
    return (tiling.unblock(dx),)


_select.defvjp(_select_fwd, _select_bwd)


def softmax_threshold(
    x, window: WindowSize = DEFAULT_WINDOW, threshold: float = DEFAULT_THRESHOLD
) -> jax.Array:
    r"""Softmax threshold: keeps the elements that carry at least `t` of their window's softmax.

    .. math::  y = \begin{cases} w & \mathrm{softmax}(W)_w \ge t \\ 0 & \text{otherwise} \end{cases}

    The softmax is over the whole window (the seed took it along rows only).

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).
      threshold: `t`, in (0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.softmax_threshold(jnp.array([[2.0, -1.0, 1.5, -3.0]]), window=4, threshold=0.25)
      Array([[2. , 0. , 1.5, 0. ]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _select(x, tiling, "softmax", check_threshold(threshold))


def max(x, window: WindowSize = DEFAULT_WINDOW) -> jax.Array:  # noqa: A001 - the spec's name
    r"""Window max: keeps each window's maximum (every one of them on ties), zeroes the rest.

    .. math::  y = \begin{cases} w & w = \max W \\ 0 & \text{otherwise} \end{cases}

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.max(jnp.array([[-2.0, -1.0, -1.5, -3.0]]), window=4)
      Array([[ 0., -1.,  0.,  0.]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _select(x, tiling, "max", 0.0)


def max_relu(x, window: WindowSize = DEFAULT_WINDOW) -> jax.Array:
    r"""Window max-ReLU: keeps each window's maximum where it is positive.

    .. math::  y = \begin{cases} w & w = \max W \text{ and } w > 0 \\ 0 & \text{otherwise} \end{cases}

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size (int or per-spatial-axis tuple).

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.max_relu(jnp.array([[-2.0, -1.0, -1.5, -3.0], [0.5, 2.0, 2.0, 1.0]]), window=4)
      Array([[0., 0., 0., 0.],
             [0., 2., 2., 0.]], dtype=float32)
    """
    x, tiling = _prepare(x, window)
    return _select(x, tiling, "max_relu", 0.0)
