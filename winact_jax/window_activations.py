"""The window activations: every value modulated by the statistics of its window.

Each public function is pure: `f(x, window=4, ...) -> y` with `y.shape == x.shape`
and `y.dtype == x.dtype`. `x` is channels-last: `(batch, features)` for dense
layers, `(batch, *spatial, channels)` for 1-D, 2-D and 3-D feature maps. By
default windows tile the spatial axes without overlap, per batch element and per
channel; a partial window at the far edge is reduced over its real elements only.
Keyword-only `mode="centered"` gives every element its own neighbourhood and
`over="channels"` windows consecutive channels instead (geometry: `windows.py`);
`influence` may be a scalar or one value per channel, and is differentiable.

Statistics of one window `W` (the notation of the specification):

    neg  = sum of min(w, 0)        pos  = sum of max(w, 0)
    n_np = number of w <= 0        n_nn = number of w >= 0
    m    = max of W

Gradients are those of the formulas, with comparisons, counts and the choice of the
maximum carrying none. They are written out as custom VJPs because autodiff of the
formulas makes several more passes over memory than needed: each backward pass here
is one window reduction plus one element-wise pass (one loop for neighbourhoods,
`windows.Neighbourhood.sums_of`), and keeps only `x` and the window statistics (for
tiles a fraction of `x`'s size; for neighbourhoods the output instead, and the
v2 forms' receiver counts in bytes) as residuals.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from winact_jax import windows
from winact_jax.backends import materialize
from winact_jax.windows import Geometry, Neighbourhood, Tiling, WindowSize

DEFAULT_WINDOW = 4
DEFAULT_INFLUENCE = 0.1
DEFAULT_THRESHOLD = 0.25


# --------------------------------------------------------------------------- checks


def _real_number(name: str, value, accepted: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {accepted}; got {value!r} ({type(value).__name__})")
    return float(value)


INFLUENCE_ACCEPTED = "a finite float in [0, 1], or an array of shape (C,) of them (C = the input's last axis)"


def _is_traced(value) -> bool:
    return isinstance(value, jax.core.Tracer)


def check_influence(influence, channels: int | None = None):
    """Returns `influence` checked: a float for a scalar number, an array for an array.

    A number (Python or NumPy scalar, or a 0-d NumPy array) comes back as a Python
    float; a JAX array (of shape `()` or `(C,)`), or a NumPy array, list or tuple of
    shape `(C,)`, comes back as an array. Values must be finite and in [0, 1]; an
    array must have shape `()` or `(channels,)` (any `(C,)` when `channels` is None).
    A traced array's values are not checked (they are not known), its shape is.
    Raises `TypeError` or `ValueError` naming `influence`, the value and what is
    accepted.
    """
    accepted = INFLUENCE_ACCEPTED
    if isinstance(influence, (list, tuple)) or (isinstance(influence, np.ndarray) and influence.ndim > 0):
        if isinstance(influence, (list, tuple)) and not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in influence
        ):
            raise TypeError(f"influence must be {accepted}; got {influence!r}")
        influence = np.asarray(influence)
    elif isinstance(influence, np.ndarray):  # 0-d
        influence = influence[()]
    if not isinstance(influence, (np.ndarray, jax.Array)):
        a = _real_number("influence", influence, accepted)
        if not (math.isfinite(a) and 0.0 <= a <= 1.0):
            raise ValueError(f"influence must be {accepted}; got {influence!r}")
        return a
    dtype = influence.dtype
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"influence must be {accepted}; got an array of dtype {dtype}")
    shape = tuple(influence.shape)
    if not (shape == () or (len(shape) == 1 and (channels is None or shape[0] == channels))):
        expected = "(C,)" if channels is None else f"({channels},)"
        raise ValueError(f"influence must be {accepted}; got an array of shape {shape}, expected () or {expected}")
    if not _is_traced(influence):
        values = np.asarray(influence, np.float64)
        bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
        if bad.any():
            raise ValueError(
                f"influence must be {accepted}; got {influence!r} (out of range at index "
                f"{tuple(int(i) for i in np.argwhere(bad)[0])})"
            )
    return influence


def check_threshold(threshold) -> float:
    """Returns `threshold` as a float, or raises unless it is in (0, 1]."""
    accepted = "a float in (0, 1]"
    t = _real_number("threshold", threshold, accepted)
    if not (0.0 < t <= 1.0):
        raise ValueError(f"threshold must be {accepted}; got {threshold!r}")
    return t


def _prepare(x, window: WindowSize, mode: str, over: str) -> tuple[jax.Array, Geometry]:
    x = windows.check_input(x)
    return x, windows.geometry(x.shape, window, mode, over)


def _compute_dtype(dtype) -> jnp.dtype:
    # bf16/fp16 windows are summed and combined in float32; float64 stays float64.
    return jnp.promote_types(dtype, jnp.float32)


def _blocked(geometry: Geometry, x: jax.Array) -> jax.Array:
    return geometry.view(x).astype(_compute_dtype(x.dtype))


def _output(geometry: Geometry, y: jax.Array, dtype) -> jax.Array:
    return geometry.unview(y.astype(dtype))


class _Activation:
    """One activation's custom VJPs, from `forward(x, geometry, a) -> (y, residuals)`,
    `backward(geometry, a, residuals, g) -> (dx,)` and
    `influence_terms(geometry, a, residuals, g)`, the per-element terms of the
    influence cotangent (`g_i * dy_i/da_i`, in the view's layout).

    Two entry points share the formulas: `static` takes a Python float `a` as a
    static argument (the round-1 path: XLA sees a constant, and the default
    arguments compute exactly what they always did); `dynamic` takes `a` as an
    array of shape `()` or `(C,)`, possibly traced, and returns its cotangent too,
    so the influence can be learned.
    """

    def __init__(self, forward, backward, influence_terms):
        @functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
        def static(x, geometry: Geometry, a: float):
            return forward(x, geometry, a)[0]

        static.defvjp(forward, backward)

        @functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
        def dynamic(x, geometry: Geometry, a: jax.Array):
            return forward(x, geometry, geometry.param(a))[0]

        def dynamic_fwd(x, geometry, a):
            y, residuals = forward(x, geometry, geometry.param(a))
            return y, (residuals, a)

        def dynamic_bwd(geometry, saved, g):
            residuals, a = saved
            laid_out = geometry.param(a)
            (dx,) = backward(geometry, laid_out, residuals, g)
            terms = influence_terms(geometry, laid_out, residuals, g)
            if a.ndim > 0 and isinstance(geometry, Tiling) and geometry.windows_channels:
                # Per-element terms over blocked features: back to one channel axis.
                terms = geometry.unview(terms)
            axes = tuple(range(terms.ndim)) if a.ndim == 0 else tuple(range(terms.ndim - 1))
            return dx, jnp.sum(terms, axis=axes).astype(a.dtype)

        dynamic.defvjp(dynamic_fwd, dynamic_bwd)
        self.static, self.dynamic = static, dynamic

    def __call__(self, x: jax.Array, geometry: Geometry, influence) -> jax.Array:
        a = check_influence(influence, channels=x.shape[-1])
        working = x.reshape(geometry.shape)
        if isinstance(a, float):
            y = self.static(working, geometry, a)
        else:
            y = self.dynamic(working, geometry, jnp.asarray(a, _compute_dtype(x.dtype)))
        return y.reshape(x.shape)


def _sum_where(
    geometry: Geometry, values: jax.Array, present: jax.Array, transposed: bool = False, part=None
) -> jax.Array:
    """Window sums of `values`, or of `part(values)` (`part` element-wise), which
    must be zero wherever `present` is False (`transposed`: summed over every
    window an element belongs to).

    For tiles, the sum is reduced together with the count of `present` elements and
    kept only where that count is positive, which changes nothing (a window with no
    present element sums zeros) but makes the reduction a two-output one. XLA:CPU
    emits those in its own fused loops, one pass over memory, whereas it hands
    one-output sums to YNNPACK, whose fusions here materialise full-size broadcasts:
    NeLU's forward+backward measured 1.99x ReLU's with a plain sum and 1.43x with
    this, in one process (docs/benchmarks.md). On GPU the count is free: the pass is
    memory-bound. Sums taken as loops of shifted slices (neighbourhoods, and tiles
    along the channels) need no count: over channel windows of 4 it made NeLU's
    forward+backward 1.85x ReLU's, 1.36x without.
    """
    term = (windows.SUM, values) if part is None else (windows.SUM, values, part)
    if not isinstance(geometry, Tiling) or geometry.sums_unrolled:
        return geometry.reduce(term, transposed=transposed)[0]
    total, count = geometry.reduce(term, (windows.SUM, present))
    return jnp.where(count > 0, total, 0)


def _spread_back(geometry: Geometry, live: jax.Array, gb: jax.Array, a, receivers=None, finish=None, operands=()):
    """`finish(back, *operands)` (`finish` element-wise, default the identity), where
    `back_j = sum_{i : j in W(i)} a_i [live_i] g_i / max(1, receivers_i)` for every
    element `j` (no division without `receivers`): the backward pass of a window
    sum whose result element `i` scales by `a_i` (shared among `receivers_i`), for
    the live elements' gradient `g`.

    Over neighbourhoods the masked products are taken on slices of `live`, `gb`,
    `a` and `receivers`, and `finish` on the sums, in one loop
    (`Neighbourhood.sums_of`); the division too, so that the integer counts, not a
    float weight, are what is stored. For tiles `receivers` is constant per
    window and so is `a`, unless `a` is per channel and the window runs along the
    channels: factors constant per window are applied after the sum.
    """
    finish = finish or (lambda back: back)
    if isinstance(geometry, Neighbourhood):
        if receivers is None:
            masked = lambda live, g, a: jnp.where(live, a * g, 0)
            return geometry.sums_of((live, gb, a), masked, finish, operands, transposed=True)
        shared = lambda live, g, a, n: jnp.where(live, a * g / jnp.maximum(n, 1).astype(g.dtype), 0)
        return geometry.sums_of((live, gb, a, receivers), shared, finish, operands, transposed=True)
    weight = 1.0 if receivers is None else _per_receiver(receivers, gb.dtype)
    values = jnp.where(live, gb, 0)
    if jnp.ndim(a) > 0 and geometry.windows_channels:
        return finish(weight * _sum_where(geometry, a * values, live), *operands)
    return finish(a * weight * _sum_where(geometry, values, live), *operands)


def _output_of_sums(geometry, xb, present, part, finish, a):
    """`(y, sums)`: `sums` the window sums of `part(xb)` (zero where `present` is
    False) and `y = finish(sums, xb, a)`, `finish` element-wise. Over
    neighbourhoods `y` is computed in the loop that sums (`Neighbourhood.sums_of`)
    and `sums` is None: the output is saved instead (`_saves_output`)."""
    if isinstance(geometry, Neighbourhood):
        return geometry.sums_of((xb,), part, finish, (xb, a)), None
    sums = _sum_where(geometry, xb, present, part=part)
    return finish(sums, xb, a), sums


# --------------------------------------------------------------------------- NeLU
# y = relu(w + a*neg); dy_i/dx_j = [y_i > 0] (delta_ij + a_i [x_j < 0] [j in W(i)]).
# Residuals: x and the window sums `neg`; the backward pass recomputes the masks.


def _negative_part(v):
    return jnp.minimum(v, 0)


def _positive_part(v):
    return jnp.maximum(v, 0)


def _negative_sums(geometry, xb):
    return _sum_where(geometry, xb, xb < 0, part=_negative_part)


def _drain_backward(geometry, a, xb, gb, live, receivers=None):
    """`dx_j = [live_j] g_j + [x_j < 0] * sum_{i: j in W(i)} a_i [live_i] g_i / max(1, receivers_i)`.

    The backward pass of every activation whose negatives are drained into live
    elements (NeLU, passive NeLU, inhibitor v2): one reduction and its final step.
    """
    finish = lambda back, live, gb, xb: jnp.where(live, gb, jnp.where(xb < 0, back, 0))
    return _spread_back(geometry, live, gb, a, receivers, finish, (live, gb, xb))


def _saves_output(geometry: Geometry) -> bool:
    """True when an activation whose live elements are its positive outputs saves
    its output, not its window statistics, for the backward pass: for
    neighbourhoods, whose statistics are full-size. The output is written anyway,
    so the statistics are then read once, where they are computed; XLA:CPU would
    otherwise recompute each neighbourhood sum in every consumer."""
    return isinstance(geometry, Neighbourhood)


def _saved(geometry, y, stats):
    return y if _saves_output(geometry) else stats


def _live(geometry, saved, from_statistics):
    """The live mask of an activation whose live elements are its positive outputs:
    the saved output's `> 0` where the output was saved (`_saves_output`), else
    `from_statistics(saved)`, recomputed from the saved window statistics."""
    if _saves_output(geometry):
        return _blocked(geometry, saved) > 0
    return from_statistics(saved)


def _moved_positive(geometry, xb, saved, a):
    """`w + a * s > 0`, `s` a window statistic (NeLU's `neg`, the v2 forms' share);
    read only where it is the output's `> 0`."""
    return _live(geometry, saved, lambda s: xb + a * s > 0)


def _nelu_fwd(x, geometry, a):
    xb = _blocked(geometry, x)
    y, neg = _output_of_sums(
        geometry, xb, xb < 0, _negative_part, lambda neg, xb, a: jnp.maximum(xb + a * neg, 0).astype(x.dtype), a
    )
    y = _output(geometry, y, x.dtype)
    return y, (x, _saved(geometry, y, neg))


def _nelu_bwd(geometry, a, residuals, g):
    x, saved = residuals
    xb = _blocked(geometry, x)
    dx = _drain_backward(geometry, a, xb, _blocked(geometry, g), live=_moved_positive(geometry, xb, saved, a))
    return (_output(geometry, dx, x.dtype),)


def _drain_influence(geometry, a, xb, gb, live, drained):
    """`g_i dy_i/da = [live_i] g_i drained_i` for the drain family, `drained` the
    window's (share of its) negative mass. On tiles where `a` is constant per
    window, summed per window instead: `drained_w * sum_w [live] g`, the very sum
    the x-gradient takes (XLA computes it once), so the influence costs no pass."""
    if isinstance(geometry, Tiling) and not (jnp.ndim(a) > 0 and geometry.windows_channels):
        return drained * _sum_where(geometry, jnp.where(live, gb, 0), live)
    return jnp.where(live, gb * drained, 0)


def _nelu_influence(geometry, a, residuals, g):
    x, saved = residuals
    xb = _blocked(geometry, x)
    neg = _negative_sums(geometry, xb) if _saves_output(geometry) else saved
    return _drain_influence(geometry, a, xb, _blocked(geometry, g), _moved_positive(geometry, xb, saved, a), neg)


_nelu = _Activation(_nelu_fwd, _nelu_bwd, _nelu_influence)


def nelu(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Negative-linear-unit: each value drained by a share of its window's negatives.

    .. math::  y = \mathrm{relu}(w + a \cdot \mathrm{neg}), \quad
               \mathrm{neg} = \textstyle\sum_{v \in W} \min(v, 0)

    Negative inputs receive gradient whenever a neighbour fires:
    `dy_i/dx_j = [y_i > 0] (delta_ij + a [x_j < 0])` within a window, and
    `dy_i/da = [y_i > 0] neg`.

    Args:
      x: floating array, `(batch, features)` or `(batch, *spatial, channels)`.
      window: window size, an int for every spatial axis or a tuple with one entry
        per spatial axis (an int for `over="channels"`).
      influence: `a`, the share of the negative mass drained, in [0, 1]: a scalar
        or a `(C,)` array (one per channel, C the last axis), differentiable.
      mode: `"tiled"` (non-overlapping blocks) or `"centered"` (every element's own
        neighbourhood `N(i)`, offsets `-(k-1)//2 ... k//2`, clipped at borders).
      over: `"spatial"` (windows over the spatial axes, per channel) or
        `"channels"` (runs of `window` consecutive channels at each position).

    Returns:
      An array of `x`'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.nelu(jnp.array([[2.0, -1.0, 1.0, -3.0]]), window=4, influence=0.125)
      Array([[1.5, 0. , 0.5, 0. ]], dtype=float32)
      >>> wa.nelu(jnp.array([[2.0, -1.0, 1.0, -3.0]]), window=3, influence=0.5, mode="centered")
      Array([[1.5, 0. , 0. , 0. ]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _nelu(x, geometry, influence)


def inhibitor(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Inhibitor: negatives inhibit the positives of their window.

    .. math::  y = \mathrm{relu}(w - a \min(w, 0) + a \cdot \mathrm{neg})

    For `w > 0` the correction `-a min(w, 0)` vanishes and for `w <= 0` both forms
    are `<= 0`, so this is `nelu` exactly, in value and gradient; it is computed by
    `nelu` and kept under its own name because the seed's tables report both.

    Args:
      x, window, influence, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.inhibitor(jnp.array([[2.0, -1.0, 1.0, -3.0]]), window=4, influence=0.125)
      Array([[1.5, 0. , 0.5, 0. ]], dtype=float32)
    """
    return nelu(x, window=window, influence=influence, mode=mode, over=over)


# --------------------------------------------------------------------------- passive NeLU
# y = [w > 0] (w + a*neg): the drained value passes even when it turned negative.


def _pnelu_fwd(x, geometry, a):
    xb = _blocked(geometry, x)
    finish = lambda neg, xb, a: jnp.where(xb > 0, xb + a * neg, 0).astype(x.dtype)
    y, _ = _output_of_sums(geometry, xb, xb < 0, _negative_part, finish, a)
    return _output(geometry, y, x.dtype), (x,)


def _pnelu_bwd(geometry, a, residuals, g):
    (x,) = residuals
    xb = _blocked(geometry, x)
    dx = _drain_backward(geometry, a, xb, _blocked(geometry, g), live=xb > 0)
    return (_output(geometry, dx, x.dtype),)


def _pnelu_influence(geometry, a, residuals, g):
    # `neg` is not a residual (the x-gradient does not need it): recomputed here.
    (x,) = residuals
    xb = _blocked(geometry, x)
    return _drain_influence(geometry, a, xb, _blocked(geometry, g), xb > 0, _negative_sums(geometry, xb))


_pnelu = _Activation(_pnelu_fwd, _pnelu_bwd, _pnelu_influence)


def pnelu(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Passive NeLU: every positive input passes, drained, even if the drain made it negative.

    .. math::  y = \begin{cases} w + a \cdot \mathrm{neg} & w > 0 \\ 0 & \text{otherwise} \end{cases}

    Args:
      x, window, influence, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.pnelu(jnp.array([[2.0, -1.0, 0.25, -3.0]]), window=4, influence=0.1)
      Array([[ 1.6 ,  0.  , -0.15,  0.  ]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _pnelu(x, geometry, influence)


# --------------------------------------------------------------------------- excitator
# y = relu(w - a*relu(w) + a*pos): every element gains a share of the window's positives.


def _positive_sums(geometry, xb):
    return _sum_where(geometry, xb, xb > 0, part=_positive_part)


def _excitator_pre(xb, pos, a):
    return xb - a * jnp.maximum(xb, 0) + a * pos


def _excitator_fwd(x, geometry, a):
    xb = _blocked(geometry, x)
    finish = lambda pos, xb, a: jnp.maximum(_excitator_pre(xb, pos, a), 0).astype(x.dtype)
    y, pos = _output_of_sums(geometry, xb, xb > 0, _positive_part, finish, a)
    y = _output(geometry, y, x.dtype)
    return y, (x, _saved(geometry, y, pos))


def _excitator_bwd(geometry, a, residuals, g):
    # dz_i/dx_j = delta_ij (1 - a [x_i > 0]) + a [x_j > 0]: every live element's
    # gradient flows back to every positive (donor) element of its window.
    x, saved = residuals
    xb = _blocked(geometry, x)
    gb = _blocked(geometry, g)
    live = _live(geometry, saved, lambda pos: _excitator_pre(xb, pos, a) > 0)

    def finish(back, live, gb, xb, a):
        own = jnp.where(live, jnp.where(xb > 0, (1 - a) * gb, gb), 0)
        return jnp.where(xb > 0, own + back, own)

    dx = _spread_back(geometry, live, gb, a, finish=finish, operands=(live, gb, xb, a))
    return (_output(geometry, dx, x.dtype),)


def _excitator_influence(geometry, a, residuals, g):
    x, saved = residuals
    xb = _blocked(geometry, x)
    live = _live(geometry, saved, lambda pos: _excitator_pre(xb, pos, a) > 0)
    pos = _positive_sums(geometry, xb) if _saves_output(geometry) else saved
    return jnp.where(live, _blocked(geometry, g) * (pos - jnp.maximum(xb, 0)), 0)


_excitator = _Activation(_excitator_fwd, _excitator_bwd, _excitator_influence)


def excitator(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Excitator: a fraction of the window's positive mass is added to every element.

    .. math::  y = \mathrm{relu}(w - a\,\mathrm{relu}(w) + a \cdot \mathrm{pos}), \quad
               \mathrm{pos} = \textstyle\sum_{v \in W} \max(v, 0)

    Weak negatives next to strong positives can fire.

    Args:
      x, window, influence, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.excitator(jnp.array([[2.0, -0.1, 0.5, -3.0]]), window=4, influence=0.1)
      Array([[2.05, 0.15, 0.7 , 0.  ]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _excitator(x, geometry, influence)


# --------------------------------------------------------------------------- excitator v2
# Positives keep (1-a) of themselves; the moved mass a*pos is split equally among the
# n_np non-positive elements of the window.


def _equal_shares(geometry, xb, mass, receives):
    """Each window's `mass(xb)` split equally among the elements where
    `receives(xb)` (at least 1), and the number of receivers, from one pass
    (`mass` and `receives` element-wise).

    The share is a division, here and in `_output_of_shares`, not a multiplication
    by `1 / max(1, count)`: in the loop that sums a neighbourhood, XLA:CPU ran it
    twice as fast (centered `excitator_v2`'s forward pass: 80 ms with the
    reciprocal, 40 ms with the division, docs/benchmarks.md)."""
    total, count = geometry.reduce((windows.SUM, xb, mass), (windows.SUM, xb, receives))
    return total / jnp.maximum(count, 1), count


def _per_receiver(count, dtype):
    """`1 / max(1, count)`: each receiver's fraction of an equal share."""
    return 1 / jnp.maximum(count, 1).astype(dtype)


def _output_of_shares(geometry, xb, mass, receives, finish, a):
    """`(y, share, receivers)`: the equal shares of `_equal_shares` and
    `y = finish(share, xb, a)`, `finish` element-wise. Over neighbourhoods `y` is
    computed in the loop that sums the mass (`Neighbourhood.sums_of`), the
    receivers are counted in a small integer type (`Neighbourhood.counts`) and
    `share` is None: the output is saved instead (`_saves_output`)."""
    if isinstance(geometry, Neighbourhood):
        receivers = geometry.counts(xb, receives)
        shared = lambda total, xb, a, n: finish(total / jnp.maximum(n, 1).astype(total.dtype), xb, a)
        return geometry.sums_of((xb,), mass, shared, (xb, a, receivers)), None, receivers
    share, receivers = _equal_shares(geometry, xb, mass, receives)
    return finish(share, xb, a), share, receivers


def _excitator_v2_stats(xb, geometry):
    return _equal_shares(geometry, xb, _positive_part, lambda v: v <= 0)


def _excitator_v2_fwd(x, geometry, a):
    xb = _blocked(geometry, x)
    finish = lambda share, xb, a: jnp.where(xb > 0, (1 - a) * xb, jnp.maximum(xb + a * share, 0)).astype(x.dtype)
    y, share, receivers = _output_of_shares(geometry, xb, _positive_part, lambda v: v <= 0, finish, a)
    y = _output(geometry, y, x.dtype)
    return y, (x, _saved(geometry, y, share), receivers)


def _excitator_v2_bwd(geometry, a, residuals, g):
    # Donors (w > 0) pass (1 - a) of their gradient and receive a / n_np of every
    # live receiver's; live receivers (w <= 0 lifted above 0) pass theirs.
    x, saved, receivers = residuals
    xb = _blocked(geometry, x)
    gb = _blocked(geometry, g)
    # Only read where w <= 0, where the output is positive iff lifted.
    lifted = _moved_positive(geometry, xb, saved, a)
    finish = lambda back, xb, gb, lifted, a: jnp.where(xb > 0, (1 - a) * gb + back, jnp.where(lifted, gb, 0))
    dx = _spread_back(geometry, (xb <= 0) & lifted, gb, a, receivers, finish, (xb, gb, lifted, a))
    return (_output(geometry, dx, x.dtype),)


def _excitator_v2_influence(geometry, a, residuals, g):
    x, saved, _ = residuals
    xb = _blocked(geometry, x)
    share = _excitator_v2_stats(xb, geometry)[0] if _saves_output(geometry) else saved
    gb = _blocked(geometry, g)
    return jnp.where(xb > 0, -xb * gb, jnp.where(xb + a * share > 0, share * gb, 0))


_excitator_v2 = _Activation(_excitator_v2_fwd, _excitator_v2_bwd, _excitator_v2_influence)


def excitator_v2(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Excitator v2: positives give up a fraction `a` of themselves, split equally among the rest.

    .. math::  y = \begin{cases} (1 - a)\, w & w > 0 \\
                 \mathrm{relu}\!\left(w + a \cdot \mathrm{pos} / \max(1, n_{np})\right) & \text{otherwise}
                 \end{cases}

    where `n_np` counts the window's elements `<= 0`.

    Args:
      x, window, influence, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.excitator_v2(jnp.array([[2.0, -0.1, 2.0, -3.0]]), window=4, influence=0.5)
      Array([[1. , 0.9, 1. , 0. ]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _excitator_v2(x, geometry, influence)


# --------------------------------------------------------------------------- inhibitor v2
# Non-negatives are drained by an equal share of a*neg: a*neg / max(1, n_nn).


def _inhibitor_v2_stats(xb, geometry):
    return _equal_shares(geometry, xb, _negative_part, lambda v: v >= 0)


def _inhibitor_v2_live(xb, share, a):
    return (xb >= 0) & (xb + a * share > 0)


def _inhibitor_v2_fwd(x, geometry, a):
    xb = _blocked(geometry, x)
    finish = lambda share, xb, a: jnp.where(_inhibitor_v2_live(xb, share, a), xb + a * share, 0).astype(x.dtype)
    y, share, receivers = _output_of_shares(geometry, xb, _negative_part, lambda v: v >= 0, finish, a)
    y = _output(geometry, y, x.dtype)
    return y, (x, _saved(geometry, y, share), receivers)


def _inhibitor_v2_bwd(geometry, a, residuals, g):
    x, saved, receivers = residuals
    xb = _blocked(geometry, x)
    live = _live(geometry, saved, lambda share: _inhibitor_v2_live(xb, share, a))
    dx = _drain_backward(geometry, a, xb, _blocked(geometry, g), live=live, receivers=receivers)
    return (_output(geometry, dx, x.dtype),)


def _inhibitor_v2_influence(geometry, a, residuals, g):
    x, saved, _ = residuals
    xb = _blocked(geometry, x)
    share = _inhibitor_v2_stats(xb, geometry)[0] if _saves_output(geometry) else saved
    live = _live(geometry, saved, lambda share: _inhibitor_v2_live(xb, share, a))
    return _drain_influence(geometry, a, xb, _blocked(geometry, g), live, share)


_inhibitor_v2 = _Activation(_inhibitor_v2_fwd, _inhibitor_v2_bwd, _inhibitor_v2_influence)


def inhibitor_v2(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Inhibitor v2: the window's negative mass, split equally among its non-negative elements.

    .. math::  y = \begin{cases}
                 \mathrm{relu}\!\left(w + a \cdot \mathrm{neg} / \max(1, n_{nn})\right) & w \ge 0 \\
                 0 & \text{otherwise} \end{cases}

    where `n_nn` counts the window's elements `>= 0`. (The seed's code computed
    `n_nn` and never used it, which made it `nelu`; this is the redistribution the
    paper describes, mirroring `excitator_v2`.)

    Args:
      x, window, influence, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.inhibitor_v2(jnp.array([[2.0, -1.0, 0.5, -3.0]]), window=4, influence=0.5)
      Array([[1., 0., 0., 0.]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _inhibitor_v2(x, geometry, influence)


# --------------------------------------------------------------------------- selections
# softmax_threshold, max and max_relu keep some elements and zero the rest; the
# selection carries no gradient, so dy/dx is the kept mask. The mask is recomputed
# in the backward pass from x and the per-window statistics rather than stored.


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _select(x, geometry: Geometry, rule: str, t: float):
    return _select_fwd(x, geometry, rule, t)[0]


def _neighbourhood_softmax_stats(xb, geometry: Neighbourhood):
    """`m_i`, the max of `N(i)`, and `sum_{j in N(i)} exp(x_j - m_i)`.

    Not a box sum of one fixed array (each term depends on `i` through `m_i`), so
    it is summed term by term over the neighbourhood's offsets
    (`Neighbourhood.sums_around`): exact (every term is at
    most 1, the sum between 1 and `|N(i)|`, so |x| up to float32's range neither
    overflows nor loses the kept elements) at `prod(k)` exponentials per element,
    which is cheap for the small windows centered activations use (9 for 3x3) and
    grows with the window's volume.
    """
    # Materialized: each of the `prod(k)` terms reads `m`, and XLA:CPU would
    # otherwise recompute the neighbourhood max in each.
    m = materialize(geometry.reduce((windows.MAX, xb))[0])
    return m, geometry.sums_around(xb, m, lambda v, centre: jnp.exp(v - centre))


def _window_stats(xb, geometry, rule, t):
    """The window max `m` and, for the softmax, the log budget `log(t * sum exp(w - m))`:
    `softmax(W)_w >= t` iff `w - m >= log budget`, one subtraction and comparison
    per element instead of an exponential and a division in every pass that needs
    the kept mask (the forward pass and the backward pass)."""
    if rule != "softmax":
        return geometry.reduce((windows.MAX, xb))
    if isinstance(geometry, Neighbourhood):
        m, total = _neighbourhood_softmax_stats(xb, geometry)
    else:
        (m,) = geometry.reduce((windows.MAX, xb))
        # Unrolled, so the exponentials are taken inside the loop over the tile's
        # slices: ResNet-38's training step measured 1.08x ReLU's this way, 1.11x
        # as a reduction (docs/benchmarks.md).
        (total,) = geometry.reduce((windows.SUM, jnp.exp(xb - m)), unroll=True)
    # Materialized: XLA:CPU would otherwise take the logarithm once per element.
    return m, materialize(jnp.log(t * total))


def _kept(xb, stats, rule):
    if rule == "softmax":
        m, log_budget = stats
        return xb - m >= log_budget
    (m,) = stats
    keep = xb == m
    return keep & (xb > 0) if rule == "max_relu" else keep


def _select_fwd(x, geometry, rule, t):
    # Comparisons against the window max are exact in x's own dtype; the softmax is
    # taken in float32 (or float64).
    xb = geometry.view(x)
    stats = _window_stats(xb.astype(_compute_dtype(x.dtype)) if rule == "softmax" else xb, geometry, rule, t)
    y = jnp.where(_kept(xb.astype(stats[0].dtype), stats, rule), xb, 0)
    return geometry.unview(y), (x, stats)


def _select_bwd(geometry, rule, t, residuals, g):
    x, stats = residuals
    xb = geometry.view(x).astype(stats[0].dtype)
    dx = jnp.where(_kept(xb, stats, rule), geometry.view(g), 0)
    return (geometry.unview(dx),)


_select.defvjp(_select_fwd, _select_bwd)


def _selection(x, geometry, rule, t):
    return _select(x.reshape(geometry.shape), geometry, rule, t).reshape(x.shape)


def softmax_threshold(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Softmax threshold: keeps the elements that carry at least `t` of their window's softmax.

    .. math::  y = \begin{cases} w & \mathrm{softmax}(W)_w \ge t \\ 0 & \text{otherwise} \end{cases}

    The softmax is over the whole window (the seed took it along rows only). With
    `mode="centered"`, `x_i` is kept iff `exp(x_i) / sum_{j in N(i)} exp(x_j) >= t`,
    computed against the neighbourhood's max (exact and finite for any finite
    float32 input, at `prod(window)` exponentials per element). Either way the
    test is taken in log space, `w - m >= log(t * sum exp(v - m))` with `m` the
    window's max, so the passes that apply the mask take no exponential.

    Args:
      x, window, mode, over: as for `nelu`.
      threshold: `t`, in (0, 1].

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.softmax_threshold(jnp.array([[2.0, -1.0, 1.5, -3.0]]), window=4, threshold=0.25)
      Array([[2. , 0. , 1.5, 0. ]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _selection(x, geometry, "softmax", check_threshold(threshold))


def max(  # noqa: A001 - the spec's name
    x,
    window: WindowSize = DEFAULT_WINDOW,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Window max: keeps each window's maximum (every one of them on ties), zeroes the rest.

    .. math::  y = \begin{cases} w & w = \max W \\ 0 & \text{otherwise} \end{cases}

    With `mode="centered"` it keeps the local maxima (non-maximum suppression); with
    `over="channels"` it is local winner-take-all (LWTA) among groups of channels.

    Args:
      x, window, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.max(jnp.array([[-2.0, -1.0, -1.5, -3.0]]), window=4)
      Array([[ 0., -1.,  0.,  0.]], dtype=float32)
      >>> wa.max(jnp.array([[[1.0, 3.0, 2.0, 0.5]]]), window=2, over="channels")
      Array([[[0., 3., 2., 0.]]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _selection(x, geometry, "max", 0.0)


def max_relu(
    x,
    window: WindowSize = DEFAULT_WINDOW,
    *,
    mode: str = windows.DEFAULT_MODE,
    over: str = windows.DEFAULT_OVER,
) -> jax.Array:
    r"""Window max-ReLU: keeps each window's maximum where it is positive.

    .. math::  y = \begin{cases} w & w = \max W \text{ and } w > 0 \\ 0 & \text{otherwise} \end{cases}

    Args:
      x, window, mode, over: as for `nelu`.

    Example:
      >>> import jax.numpy as jnp, winact_jax as wa
      >>> wa.max_relu(jnp.array([[-2.0, -1.0, -1.5, -3.0], [0.5, 2.0, 2.0, 1.0]]), window=4)
      Array([[0., 0., 0., 0.],
             [0., 2., 2., 0.]], dtype=float32)
    """
    x, geometry = _prepare(x, window, mode, over)
    return _selection(x, geometry, "max_relu", 0.0)
