"""Non-overlapping windows over the spatial axes of channels-last arrays.

A window activation needs, for every element, a statistic of the window the element
lies in. This module owns that geometry so the activations only describe arithmetic:

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
import numbers
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

WindowSize = Union[int, tuple[int, ...]]

SUM = "sum"
MAX = "max"


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
            raise ValueError(
                f"window must be {accepted}; got {tuple(window)!r} with "
                f"{len(window)} entries"
            )
        sizes = tuple(int(w) for w in window)
    else:
        raise TypeError(f"window must be {accepted}; got {window!r} ({type(window).__name__})")
    if any(w < 1 for w in sizes):
        raise ValueError(f"window must be {accepted}; got {window!r}")
    return sizes


def check_input(x) -> jax.Array:
    """Returns `x` as a JAX array, or raises if it is not floating point of rank >= 2."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            "x must be a floating-point array (bfloat16, float16, float32 or float64); "
            f"got dtype {x.dtype}"
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

    def reduce(self, *terms: tuple[str, jax.Array]) -> tuple[jax.Array, ...]:
        """Reduces each `(op, values)` term over every window, all in one pass.

        `op` is `SUM` or `MAX`; `values` is a blocked array (see `blocks`). Sums are
        accumulated in at least float32. Padding takes each op's identity, so only a
        window's real elements count. Returns one array per term, with the window
        axes kept as size 1 so it broadcasts back against the blocked view.

        All terms go through one variadic `lax.reduce`, so XLA reads the input once
        for every statistic an activation needs.
        """
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

        def combine(left, right):
            return tuple(op(a, b) for op, a, b in zip(ops, left, right))

        results = jax.lax.reduce(tuple(operands), tuple(identities), combine, self.window_axes)
        return tuple(jnp.expand_dims(r, self.window_axes) for r in results)


def tile(shape: tuple[int, ...], window: WindowSize) -> Tiling:
    """Checks `window` against an input of `shape` and returns its `Tiling`."""
    rank = len(shape)
    sizes = check_window(window, rank)
    spatial = shape[1:-1] if rank > 2 else shape[1:]
    clamped = tuple(max(1, min(w, s)) for w, s in zip(sizes, spatial))
    return Tiling(shape=tuple(int(d) for d in shape), sizes=clamped)
