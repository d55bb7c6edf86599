"""The geometry of windows: tiled blocks or centered neighbourhoods, over the
spatial axes or over the channels of channels-last arrays.

A window activation needs, for every element, a statistic of the window the element
lies in. This module owns that geometry so the activations only describe arithmetic.
`geometry(shape, window, mode=..., over=...)` returns one of two objects with the
same interface (`view`, `unview`, `reduce`, `param`):

* `Tiling` (`mode="tiled"`): non-overlapping blocks, one statistic per block;
* `Neighbourhood` (`mode="centered"`): every element's own window, offsets
  `-(k-1)//2 ... k//2` per axis clipped at the borders, one statistic per element.

`over="channels"` is a reshape: the input is viewed as `(positions, channels)`, a
dense input whose windows run along the channels, and either geometry applies to
that working shape (`geometry(...).shape`).

Tiles:

* `tile(shape, window)` checks the window against an input shape and returns a
  `Tiling`;
* `Tiling.blocks(x)` views `x` as `(batch, n_1, w_1, ..., n_k, w_k, channels)`:
  `n_i` windows of `w_i` elements along spatial axis `i`. When an axis is not a
  multiple of its window the view is padded at the far edge and `Tiling.valid`
  marks the real elements, so a reduction can give padding its identity element;
* `Tiling.reduce((SUM, v), (MAX, w), ...)` reduces such views to one value per
  window, every statistic in one pass, kept as size-1 axes so they broadcast back
  against the view;
* `Tiling.unblock(y)` crops and reshapes a view back to the input's shape.

Everything is reshape, pad and reduce: no loop over windows, no gather. When every
spatial size is a multiple of its window, the view and its inverse are free
reshapes and no padding is made.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from winact_jax.backends import materialize

WindowSize = int | tuple[int, ...]

SUM = "sum"
MAX = "max"

TILED = "tiled"
CENTERED = "centered"
MODES = (TILED, CENTERED)
SPATIAL = "spatial"
CHANNELS = "channels"
OVERS = (SPATIAL, CHANNELS)
DEFAULT_MODE = TILED
DEFAULT_OVER = SPATIAL

# Windows of at most this many elements are reduced as unrolled loops over their
# slices (neighbourhoods; tiles along the channels or the features; maxima over
# spatial tiles); larger ones by XLA's reductions (`lax.reduce` one window axis at
# a time, one `reduce_window` per axis).
MAX_SHIFTS = 16


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_window(window, rank: int | None = None) -> tuple[int, ...]:
    """Returns `window` as one int per spatial axis of an input of `rank`, or raises
    naming what is wrong. With `rank=None` (no input yet) only the form is checked
    and the window is returned as given, as a tuple."""
    num_spatial = None if rank is None else (rank - 2 if rank > 2 else 1)
    accepted = "an int >= 1, or a tuple of ints >= 1 with one entry per spatial axis"
    if rank is not None:
        accepted += f" ({num_spatial} for an input of rank {rank})"
    if _is_int(window):
        sizes = (int(window),) * (num_spatial or 1)
    elif isinstance(window, tuple):
        if not all(_is_int(w) for w in window):
            raise TypeError(f"window must be {accepted}; got {window!r}")
        if not window or (num_spatial is not None and len(window) != num_spatial):
            raise ValueError(f"window must be {accepted}; got {tuple(window)!r} with {len(window)} entries")
        sizes = tuple(int(w) for w in window)
    else:
        raise TypeError(f"window must be {accepted}; got {window!r} ({type(window).__name__})")
    if any(w < 1 for w in sizes):
        raise ValueError(f"window must be {accepted}; got {window!r}")
    return sizes


def _check_choice(name: str, value, accepted: tuple[str, ...]) -> str:
    listed = " or ".join(repr(a) for a in accepted)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {listed}; got {value!r} ({type(value).__name__})")
    if value not in accepted:
        raise ValueError(f"{name} must be {listed}; got {value!r}")
    return value


def check_mode(mode) -> str:
    """Returns `mode` if it is `"tiled"` or `"centered"`, or raises naming it."""
    return _check_choice("mode", mode, MODES)


def check_over(over) -> str:
    """Returns `over` if it is `"spatial"` or `"channels"`, or raises naming it."""
    return _check_choice("over", over, OVERS)


def check_input(x) -> jax.Array:
    """Returns `x` as a JAX array, or raises if it is not floating point of rank >= 2."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"x must be a floating-point array (bfloat16, float16, float32 or float64); got dtype {x.dtype}"
        )
    if x.ndim < 2:
        raise ValueError(
            "x must have rank >= 2: (batch, features) or (batch, *spatial, channels); "
            f"got shape {tuple(x.shape)} (rank {x.ndim})"
        )
    return jnp.asarray(x)


@dataclasses.dataclass(frozen=True)
class Tiling:
    """The windows of an input shape.

    Dense `(batch, features)` inputs are tiled as `(batch, features, 1)`: windows of
    consecutive features, one channel.
    """

    shape: tuple[int, ...]
    """The input's shape."""
    sizes: tuple[int, ...]
    """Window size per spatial axis, clamped to the axis: a window larger than its
    axis covers the whole axis."""

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[1:-1] if len(self.shape) > 2 else self.shape[1:]

    @property
    def counts(self) -> tuple[int, ...]:
        """Number of windows along each spatial axis, partial ones included."""
        return tuple(-(-s // w) for s, w in zip(self.spatial, self.sizes))

    @property
    def is_exact(self) -> bool:
        """True when every spatial size is a multiple of its window (no padding)."""
        return all(s % w == 0 for s, w in zip(self.spatial, self.sizes))

    @property
    def window_axes(self) -> tuple[int, ...]:
        """Axes of the blocked view that run inside a window."""
        return tuple(2 + 2 * i for i in range(len(self.sizes)))

    @property
    def _channels_last(self) -> tuple[int, ...]:
        return self.shape if len(self.shape) > 2 else (*self.shape, 1)

    @property
    def _blocked_shape(self) -> tuple[int, ...]:
        batch, channels = self._channels_last[0], self._channels_last[-1]
        inner = []
        for n, w in zip(self.counts, self.sizes):
            inner += [n, w]
        return (batch, *inner, channels)

    def blocks(self, x: jax.Array) -> jax.Array:
        """Views `x` as `(batch, n_1, w_1, ..., n_k, w_k, channels)`.

        Padding, where an axis is not a multiple of its window, is zero; reductions
        must mask it with `valid` (`reduce` does).
        """
        x = x.reshape(self._channels_last)
        if not self.is_exact:
            pads = [(0, 0)] + [(0, n * w - s) for s, n, w in zip(self.spatial, self.counts, self.sizes)] + [(0, 0)]
            x = jnp.pad(x, pads)
        return x.reshape(self._blocked_shape)

    def view(self, x: jax.Array) -> jax.Array:
        """The working view of the geometry interface: `blocks`."""
        return self.blocks(x)

    def unview(self, y: jax.Array) -> jax.Array:
        """Inverse of `view`: `unblock`."""
        return self.unblock(y)

    @property
    def windows_channels(self) -> bool:
        """True when the windowed axis is the channel axis a per-channel parameter
        varies along (dense inputs, and `over="channels"`): then such a parameter is
        not constant within a window."""
        return len(self.shape) == 2

    @property
    def sums_unrolled(self) -> bool:
        """True when `reduce` sums by default as a loop over the window's slices
        (windows of at most `MAX_SHIFTS` elements along the minor axis), not as an
        XLA reduction."""
        return self.windows_channels and math.prod(self.sizes) <= MAX_SHIFTS

    def param(self, p: jax.Array) -> jax.Array:
        """A per-channel parameter (shape `()` or `(C,)`, C the last axis of `shape`)
        laid out to broadcast against `view(x)`."""
        if jnp.ndim(p) == 0:
            return p
        if not self.windows_channels:
            return p  # the blocked view keeps channels last
        return Tiling(shape=(1, self.shape[1]), sizes=self.sizes).blocks(p[None, :])

    def unblock(self, y: jax.Array) -> jax.Array:
        """Inverse of `blocks`: drops the padding and restores the input's shape."""
        channels_last = self._channels_last
        padded = (channels_last[0], *(n * w for n, w in zip(self.counts, self.sizes)), channels_last[-1])
        y = y.reshape(padded)
        if not self.is_exact:
            y = y[(slice(None), *(slice(0, s) for s in self.spatial), slice(None))]
        return y.reshape(self.shape)

    @property
    def valid(self) -> np.ndarray | None:
        """Boolean mask, broadcastable against `blocks(x)`, of the real elements.

        `None` when there is no padding. A NumPy constant: XLA folds it into the
        fused reduction.
        """
        if self.is_exact:
            return None
        mask = np.ones((1,) * len(self._blocked_shape), dtype=bool)
        for i, (s, n, w) in enumerate(zip(self.spatial, self.counts, self.sizes)):
            position = (np.arange(n)[:, None] * w + np.arange(w)[None, :]) < s
            shape = [1] * len(self._blocked_shape)
            shape[1 + 2 * i], shape[2 + 2 * i] = n, w
            mask = mask & position.reshape(shape)
        return mask

    def reduce(
        self, *terms: tuple[str, jax.Array], transposed: bool = False, unroll: bool | None = None
    ) -> tuple[jax.Array, ...]:
        """Reduces each `(op, values)` term over every window, all in one pass.

        `transposed` (the sum over every window an element belongs to, which a
        backward pass needs) changes nothing here: a tile is its own transpose.

        `op` is `SUM` or `MAX`; `values` is a blocked array (see `blocks`); a term
        `(op, values, part)` reduces `part(values)`, `part` element-wise. Sums are
        accumulated in at least float32. Padding takes each op's identity, so only a
        window's real elements count. Returns one array per term, with the window
        axes kept as size 1 so it broadcasts back against the blocked view.

        The terms go through variadic `lax.reduce`s, so XLA reads the input once
        for every statistic an activation needs, or, with `unroll` (by default
        for windows along the channels and for maxima only), through a loop over a
        window's slices, materialized (`_unrolled`), for windows of at most
        `MAX_SHIFTS` elements.
        """
        terms = [(op, values if not part else part[0](values)) for op, values, *part in terms]
        # XLA's variadic reduce wants one floating type: the widest of the terms, at
        # least float32 when any term is summed (a max is exact in any width).
        dtype = jnp.result_type(*(v.dtype for _, v in terms if jnp.issubdtype(v.dtype, jnp.floating)))
        if any(op == SUM for op, _ in terms):
            dtype = jnp.promote_types(dtype, jnp.float32)
        operands, identities = [], []
        for op, values in terms:
            values = values.astype(dtype)
            if op == SUM:
                identity = jnp.zeros((), dtype)
            elif op == MAX:
                identity = jnp.array(-jnp.inf, dtype)
            else:
                raise ValueError(f"op must be {SUM!r} or {MAX!r}; got {op!r}")
            if self.valid is not None:
                values = jnp.where(self.valid, values, identity)
            operands.append(values)
            identities.append(identity)
        ops = [jnp.add if op == SUM else jnp.maximum for op, _ in terms]
        if unroll is None:
            unroll = self.sums_unrolled or all(op == MAX for op, _ in terms)
        if unroll and math.prod(self.sizes) <= MAX_SHIFTS:
            return tuple(materialize(self._unrolled(op, v)) for op, v in zip(ops, operands))

        # One axis at a time, the innermost first. On XLA:CPU a variadic reduction
        # over both axes of a 4x4 tile at once made NeLU's ResNet-38 training step
        # 1.09x-1.14x ReLU's, one axis at a time 1.07x-1.10x (docs/benchmarks.md).
        def combine(left, right):
            return tuple(op(a, b) for op, a, b in zip(ops, left, right))

        results = tuple(operands)
        for axis in reversed(self.window_axes):
            results = jax.lax.reduce(results, tuple(identities), combine, (axis,))
            results = tuple(jnp.expand_dims(r, axis) for r in results)
        return results

    def _unrolled(self, combine, values: jax.Array) -> jax.Array:
        """`combine` folded over a window's slices in order (`values` blocked).

        Used for windows along the minor axis (dense inputs, channel windows), where
        XLA:CPU's reduction over that short axis measured 10x slower than ReLU's
        forward pass, and for maxima over small tiles (max, max_relu), 1.12x ReLU's
        ResNet-38 training step as a reduction and 1.03x-1.06x unrolled. The caller
        materializes the result: slices and maxima are cheap, so XLA:CPU would
        otherwise recompute them in every consumer, the backward pass's chain of
        residual sums included (an LWTA `max` made ResNet-38's step 2.8x ReLU's,
        1.25x with the statistics materialized).
        """
        parts = []
        for starts in itertools.product(*(range(w) for w in self.sizes)):
            index = [slice(None)] * values.ndim
            for axis, start in zip(self.window_axes, starts):
                index[axis] = slice(start, start + 1)
            parts.append(values[tuple(index)])
        return functools.reduce(combine, parts)


def tile(shape: tuple[int, ...], window: WindowSize) -> Tiling:
    """Checks `window` against an input of `shape` and returns its `Tiling`."""
    rank = len(shape)
    sizes = check_window(window, rank)
    spatial = shape[1:-1] if rank > 2 else shape[1:]
    clamped = tuple(max(1, min(w, s)) for w, s in zip(sizes, spatial))
    return Tiling(shape=tuple(int(d) for d in shape), sizes=clamped)


def _split_terms(terms):
    """`(op, values)` or `(op, values, part)` terms as `(op, values, part)`, where
    `part` maps a block of `values` to the block that is reduced, element-wise, with
    every sum cast to the widest floating type of the values, at least float32 (so
    a count reduced beside a float64 sum is float64 too), and every max in its own
    type; raises for an op other than `SUM` or `MAX`."""
    floating = [t[1].dtype for t in terms if jnp.issubdtype(t[1].dtype, jnp.floating)]
    sum_dtype = jnp.promote_types(jnp.result_type(*floating) if floating else jnp.float32, jnp.float32)
    split = []
    for op, values, *rest in terms:
        part = rest[0] if rest else (lambda v: v)
        if op == SUM:
            split.append((op, values, lambda v, part=part: part(v).astype(sum_dtype)))
        elif op == MAX:
            split.append((op, values, part))
        else:
            raise ValueError(f"op must be {SUM!r} or {MAX!r}; got {op!r}")
    return split


# --------------------------------------------------------------------------- centered


def _axis_window(values: jax.Array, axis: int, before: int, after: int, op: str) -> jax.Array:
    """Along `axis`: `out[i] = op over values[i - before ... i + after]`, clipped to
    the axis (the padding takes `op`'s identity): one `lax.reduce_window`."""
    if before == 0 and after == 0:
        return values
    window = [1] * values.ndim
    window[axis] = before + after + 1
    padding = [(0, 0)] * values.ndim
    padding[axis] = (before, after)
    if op == SUM:
        return jax.lax.reduce_window(values, jnp.zeros((), values.dtype), jax.lax.add, window, None, padding)
    return jax.lax.reduce_window(values, jnp.array(-jnp.inf, values.dtype), jax.lax.max, window, None, padding)


def _identity(op: str, dtype) -> jax.Array:
    return jnp.array(0 if op == SUM else -jnp.inf, dtype)


@dataclasses.dataclass(frozen=True)
class Neighbourhood:
    """Centered windows of an input shape: element `i`'s window `N(i)` holds, along
    spatial axis `d` with window `k_d`, the offsets `-(k_d-1)//2 ... k_d//2` from
    `i` (XLA's `SAME` placement), clipped at the borders to real elements.

    Dense `(batch, features)` inputs are viewed as `(batch, features, 1)`, as by
    `Tiling`. Statistics are one per element (`reduce` returns full-size arrays).
    A sum or max over small neighbourhoods (at most `MAX_SHIFTS` offsets: 3x3, 4x4)
    is one fused loop over slices of the input, assembled from border and interior
    regions (`_by_regions`; one padded copy and its `prod(k)` shifted slices where
    an axis is too short for regions); on XLA:CPU that measured faster than
    separable `lax.reduce_window` passes (which larger neighbourhoods use, their
    work linear in `k`), than a 2-D `reduce_window`, a depthwise convolution or
    cumulative sums.
    """

    shape: tuple[int, ...]
    """The input's shape."""
    sizes: tuple[int, ...]
    """Window size per spatial axis, as given (not clamped: the offsets are)."""

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[1:-1] if len(self.shape) > 2 else self.shape[1:]

    @property
    def num_shifts(self) -> int:
        """The number of offsets of a neighbourhood (before clipping at borders)."""
        return math.prod(b + a + 1 for b, a in self.offsets)

    @property
    def offsets(self) -> tuple[tuple[int, int], ...]:
        """Per spatial axis, `(before, after)`: `N(i)` runs from `i - before` to
        `i + after`. Clamped to `size - 1`, which changes no neighbourhood (the
        border clips them) but keeps the work bounded for windows larger than
        their axis."""
        return tuple((min((k - 1) // 2, s - 1), min(k // 2, s - 1)) for k, s in zip(self.sizes, self.spatial))

    @property
    def windows_channels(self) -> bool:
        """True for dense inputs (and `over="channels"`): the windowed axis is the
        axis a per-channel parameter varies along."""
        return len(self.shape) == 2

    @property
    def _channels_last(self) -> tuple[int, ...]:
        return self.shape

    def view(self, x: jax.Array) -> jax.Array:
        """`x` itself: `(batch, *spatial, channels)`, or `(batch, features)` whose
        windows run along the features (kept as the minor axis, which XLA:CPU
        vectorises; a trailing size-1 channel axis would not be)."""
        return x.reshape(self.shape)

    def unview(self, y: jax.Array) -> jax.Array:
        """Inverse of `view`."""
        return y.reshape(self.shape)

    def param(self, p: jax.Array) -> jax.Array:
        """A per-channel parameter (shape `()` or `(C,)`, C the last axis of `shape`)
        laid out to broadcast against `view(x)`."""
        return p

    def count(self) -> np.ndarray:
        """`|N(i)|` for every position, broadcastable against `view(x)` (a NumPy
        constant, in closed form)."""
        count = np.ones((1,) * len(self._channels_last), dtype=np.int64)
        for d, (s, (before, after)) in enumerate(zip(self.spatial, self.offsets)):
            i = np.arange(s)
            per_axis = np.minimum(i + after, s - 1) - np.maximum(i - before, 0) + 1
            shape = [1] * len(self._channels_last)
            shape[1 + d] = s
            count = count * per_axis.reshape(shape)
        return count

    def reduce(self, *terms: tuple[str, jax.Array], transposed: bool = False) -> tuple[jax.Array, ...]:
        """Reduces each `(op, values)` term over every element's neighbourhood.

        `op` is `SUM` or `MAX`; `values` is a viewed array (see `view`). Sums are
        accumulated in at least float32. With `transposed=True`, element `j`
        receives the reduction over every `i` whose neighbourhood holds `j`
        (`{i : j in N(i)}`: the offsets mirrored), which is what the backward pass
        of a neighbourhood sum needs. Returns one full-size array per term.

        A term `(op, values, part)` reduces `part(values)`, `part` element-wise;
        over small neighbourhoods it is applied to each slice read, inside the loop,
        so `part(values)` is never stored.
        """
        offsets = self._oriented(transposed)
        return tuple(self._reduce_one(op, values, part, offsets) for op, values, part in _split_terms(terms))

    def _oriented(self, transposed: bool) -> list[tuple[int, int]]:
        """The offsets of `N(i)`, or mirrored (`{i : j in N(i)}`) when `transposed`."""
        return [(a, b) if transposed else (b, a) for b, a in self.offsets]

    def _reduce_one(self, op: str, values: jax.Array, part, offsets) -> jax.Array:
        """`op` over every neighbourhood of `part(values)`, in `part`'s dtype: by
        regions (`_by_regions`), else the padded copy's shifted slices for small
        neighbourhoods, else one `lax.reduce_window` per axis."""
        if self._regions_apply(offsets):
            return self._by_regions((values,), offsets, op, part)
        values = part(values)
        if self.num_shifts <= MAX_SHIFTS:
            combine = jnp.add if op == SUM else jnp.maximum
            return functools.reduce(combine, self._shifted(values, offsets, _identity(op, values.dtype)))
        for d, (before, after) in enumerate(offsets):
            values = _axis_window(values, 1 + d, before, after, op)
        return values

    def counts(self, values: jax.Array, predicate) -> jax.Array:
        """`|{j in N(i) : predicate(values_j)}|` for every element `i` (`predicate`
        element-wise), exact, in the smallest unsigned integer type that holds
        `num_shifts` (uint8 up to 15x15): a quarter of a float32 statistic's size.

        The counts are one array behind an `optimization_barrier`: a reduction that
        reads them at every offset (a backward pass's `sums_of`) would otherwise
        have XLA rewrite its slices of the concatenated regions into slices of each
        region, split into as many loops (centered `excitator_v2`'s
        forward+backward: 2.5x slower).
        """
        dtype = next(d for d in (jnp.uint8, jnp.uint16, jnp.uint32) if self.num_shifts <= jnp.iinfo(d).max)
        indicator = lambda v: predicate(v).astype(dtype)
        return jax.lax.optimization_barrier(self._reduce_one(SUM, values, indicator, self._oriented(False)))

    def sums_of(self, arrays, part, finish=None, operands=(), transposed=False) -> jax.Array:
        """`finish(s_i, *(o_i for o in operands))` for every element `i`, where
        `s_i = sum_{j in N(i)} part(*(v_j for v in arrays))` (`{i : j in N(i)}` with
        `transposed=True`), accumulated in at least float32; `part` and `finish`
        element-wise (`finish` defaults to the identity), every array and operand
        broadcast to the viewed shape (a per-channel parameter, a scalar).

        Over small neighbourhoods `part` is applied to slices of the arrays and
        `finish` to each region's sums (`_by_regions`), so a statistic, what is
        summed and what is made of the sum are one loop. XLA:CPU otherwise stores
        the masked gradient a backward pass sums (one pass) and applies the final
        element-wise step in another: centered NeLU's forward+backward measured
        1.48x ReLU's that way and 1.17x this way, in one process
        (docs/benchmarks.md).
        """
        finish = finish or (lambda sums: sums)
        offsets = self._oriented(transposed)
        dtype = jnp.promote_types(jnp.result_type(*arrays), jnp.float32)
        arrays = [jnp.broadcast_to(v, self.shape) for v in arrays]
        operands = [jnp.broadcast_to(o, self.shape) for o in operands]
        summand = lambda *v: part(*v).astype(dtype)
        if self._regions_apply(offsets):
            return self._by_regions(tuple(arrays), offsets, SUM, summand, finish=finish, operands=tuple(operands))
        return finish(self.reduce((SUM, summand(*arrays)), transposed=transposed)[0], *operands)

    def sums_around(self, values: jax.Array, centre: jax.Array, part) -> jax.Array:
        """`sum_{j in N(i)} part(values_j, centre_i)` for every element `i` (`part`
        element-wise), for statistics that are not a box sum of one fixed array
        (the centered softmax: `part(v, m) = exp(v - m)`), accumulated in at least
        float32."""
        dtype = jnp.promote_types(values.dtype, jnp.float32)
        offsets = self._oriented(False)
        if self._regions_apply(offsets):
            return self._by_regions((values,), offsets, SUM, lambda v, c: part(v, c).astype(dtype), centred=(centre,))
        terms = [part(v, centre).astype(dtype) for v in self.neighbours(values, -jnp.inf)]
        return functools.reduce(jnp.add, terms)

    def _regions_apply(self, offsets) -> bool:
        """True for small neighbourhoods (at most `MAX_SHIFTS` offsets) on axes
        longer than `before + after`, which `_by_regions` reduces."""
        return self.num_shifts <= MAX_SHIFTS and all(s > b + a for s, (b, a) in zip(self.spatial, offsets))

    def _by_regions(self, arrays, offsets, op: str, part, centred=(), finish=None, operands=()) -> jax.Array:
        """The reduction over every neighbourhood of `part` of the arrays' values,
        assembled from regions of equal neighbourhood shape: along each axis the
        `before` first positions, the interior and the `after` last ones, each
        reduced over the slices its positions' clipped neighbourhoods read, then
        concatenated.

        `part` takes one slice of every array of `arrays` (the neighbour `j`), then
        the region's slice of every array of `centred` (the element `i`). With
        `finish`, each region's reduction `r` becomes `finish(r, *operands)`, the
        operands sliced to the region, before the regions are concatenated.

        No padded copy is made: XLA:CPU stores a padded copy (one more pass over
        memory) rather than fuse padding into the loop that reads it once per
        offset, whereas it fuses these slices and concatenations, `part` and
        `finish`, into one loop. Centered NeLU's forward+backward measured 2.08x
        ReLU's with the padded copy and 1.70x this way (docs/benchmarks.md). Needs
        every axis longer than `before + after`.
        """
        combine = jnp.add if op == SUM else jnp.maximum

        def axis_regions(size, before, after):
            # (start, length, offsets inside the axis) of each region along one axis
            reach = range(-before, after + 1)
            border = lambda p: (p, 1, [d for d in reach if 0 <= p + d < size])
            return (
                [border(p) for p in range(before)]
                + [(before, size - before - after, list(reach))]
                + [border(p) for p in range(size - after, size)]
            )

        per_axis = [axis_regions(s, b, a) for s, (b, a) in zip(self.spatial, offsets)]

        def region(choice):
            at = (slice(None), *(slice(st, st + n) for st, n, _ in choice))
            here = [c[at] for c in centred]
            parts = []
            for deltas in itertools.product(*(r[2] for r in choice)):
                index = (slice(None), *(slice(st + d, st + d + n) for (st, n, _), d in zip(choice, deltas)))
                parts.append(part(*(v[index] for v in arrays), *here))
            reduced = functools.reduce(combine, parts)
            return reduced if finish is None else finish(reduced, *(o[at] for o in operands))

        def assemble(axis, choice):
            if axis == len(per_axis):
                return region(choice)
            return jnp.concatenate([assemble(axis + 1, choice + [r]) for r in per_axis[axis]], axis=1 + axis)

        return assemble(0, [])

    def _shifted(self, values: jax.Array, offsets, fill) -> list[jax.Array]:
        pads = [(0, 0)] + list(offsets) + [(0, 0)] * (len(self.shape) - 1 - len(offsets))
        padded = jnp.pad(values, pads, constant_values=fill)
        shifted = []
        for starts in itertools.product(*(range(b + a + 1) for b, a in offsets)):
            index = (slice(None), *(slice(st, st + s) for st, s in zip(starts, self.spatial)))
            shifted.append(padded[index])
        return shifted

    def neighbours(self, values: jax.Array, fill) -> list[jax.Array]:
        """For every offset `delta` of a neighbourhood, the array `v[i + delta]`
        (`fill` where `i + delta` is outside the input): `prod(k_d)` full-size
        arrays, for statistics that are not a box reduction of one fixed array
        (the centered softmax, whose terms depend on both `i` and `j`)."""
        return self._shifted(values, self.offsets, jnp.array(fill, values.dtype))


def neighbourhood(shape: tuple[int, ...], window: WindowSize) -> Neighbourhood:
    """Checks `window` against an input of `shape` and returns its `Neighbourhood`."""
    sizes = check_window(window, len(shape))
    return Neighbourhood(shape=tuple(int(d) for d in shape), sizes=sizes)


Geometry = Tiling | Neighbourhood


def working_shape(shape: tuple[int, ...], over: str = DEFAULT_OVER) -> tuple[int, ...]:
    """The shape the geometry works on: `shape` itself, or for `over="channels"`
    `(positions, channels)` (every batch element and spatial position a row)."""
    if check_over(over) == CHANNELS and len(shape) > 2:
        return (math.prod(shape[:-1]), shape[-1])
    return tuple(shape)


def geometry(
    shape: tuple[int, ...], window: WindowSize, mode: str = DEFAULT_MODE, over: str = DEFAULT_OVER
) -> Geometry:
    """Checks every argument and returns the `Tiling` or `Neighbourhood` of an input
    of `shape`, built on its working shape (`working_shape`): an input must be
    reshaped to `.shape` before `view` and back after `unview`."""
    mode, over = check_mode(mode), check_over(over)
    if over == CHANNELS and not _is_int(window):
        raise TypeError(
            f"window must be an int >= 1 when over='channels' (a run of consecutive channels); got {window!r}"
        )
    shape = working_shape(shape, over)
    if mode == CENTERED:
        return neighbourhood(shape, window)
    return tile(shape, window)
