"""A slow, independent reference of the window activations, from the specification.

Written from `docs/spec.md` alone, with NumPy in float64 and
plain Python loops: over batch elements, channels and window positions. Every
window is cut out of the input with ordinary slices that stop at the end of the
axis, so a partial window (or a window larger than its axis) holds exactly its
real elements, by construction; there is no padding anywhere.

This module must not import `winact_jax`.

Public functions:

* `activation(name, x, window=4, influence=0.1, threshold=0.25)`: the values;
* `jacobian_blocks` / `vjp(name, x, g, ...)`: the gradient the specification gives
  (autodiff of the formulas, with comparisons, counts and the choice of maximum
  carrying none);
* `fd_jvp(name, x, v, ...)`: a central finite-difference Jacobian-vector product of
  `activation`, to check the analytic gradient of the reference itself;
* `kink_margin(name, x, ...)`: how far every element is from a point where the
  activation is not differentiable (a zero input, a relu argument at zero, a tie
  for the maximum, a softmax probability at the threshold);
* `kept(name, x, ...)`: the selection mask of `softmax_threshold`, `max`,
  `max_relu`, and `softmax_margin`, the distance of each softmax probability from
  the threshold.
"""

from __future__ import annotations

import itertools

import numpy as np

WINDOW_NAMES = (
    "nelu",
    "pnelu",
    "excitator",
    "inhibitor",
    "excitator_v2",
    "inhibitor_v2",
    "softmax_threshold",
    "max",
    "max_relu",
)
INFLUENCE_NAMES = WINDOW_NAMES[:6]
SELECTION_NAMES = ("softmax_threshold", "max", "max_relu")
ALIASES = {"passive_nelu": "pnelu", "softmax_relu": "softmax_threshold"}

DEFAULT_WINDOW = 4
DEFAULT_INFLUENCE = 0.1
DEFAULT_THRESHOLD = 0.25


def params_for(name: str, influence: float = DEFAULT_INFLUENCE, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """The keyword parameters (besides `window`) that activation `name` takes."""
    name = ALIASES.get(name, name)
    if name in INFLUENCE_NAMES:
        return {"influence": influence}
    if name == "softmax_threshold":
        return {"threshold": threshold}
    return {}


# --------------------------------------------------------------------------- geometry


def _spatial_and_sizes(shape, window):
    rank = len(shape)
    if rank < 2:
        raise ValueError(f"reference: rank must be >= 2, got {shape}")
    spatial = tuple(shape[1:-1]) if rank > 2 else (shape[1],)
    if isinstance(window, (tuple, list)):
        sizes = tuple(int(w) for w in window)
        if len(sizes) != len(spatial):
            raise ValueError(f"reference: window {window} for spatial {spatial}")
    else:
        sizes = (int(window),) * len(spatial)
    if any(w < 1 for w in sizes):
        raise ValueError(f"reference: bad window {window}")
    return spatial, sizes


def windows(shape, window):
    """Yields one index tuple per window: `(b, slice, ..., slice, c)` into the
    channels-last view of an input of `shape` (rank-2 inputs get a channel axis).

    Each slice stops at the end of its axis, so it holds only real elements.
    """
    spatial, sizes = _spatial_and_sizes(shape, window)
    batch = shape[0]
    channels = shape[-1] if len(shape) > 2 else 1
    starts = [range(0, s, w) for s, w in zip(spatial, sizes)]
    for b in range(batch):
        for c in range(channels):
            for corner in itertools.product(*starts):
                # A Python slice past the end of an axis stops at the axis' end.
                yield (b, *(slice(k, k + w) for k, w in zip(corner, sizes)), c)


def _channels_last(x):
    x = np.asarray(x, dtype=np.float64)
    return x[..., None] if x.ndim == 2 else x


# --------------------------------------------------------------------------- one window


def _relu(v):
    return np.maximum(v, 0.0)


def _stats(w):
    return {
        "neg": float(np.sum(np.minimum(w, 0.0))),
        "pos": float(np.sum(np.maximum(w, 0.0))),
        "n_np": int(np.sum(w <= 0)),
        "n_nn": int(np.sum(w >= 0)),
        "m": float(np.max(w)),
    }


def _softmax(w):
    e = np.exp(w - np.max(w))
    return e / np.sum(e)


def _window_values(name, w, a, t):
    """The spec's table, for the real elements `w` (1-D, float64) of one window."""
    s = _stats(w)
    if name == "nelu":
        return _relu(w + a * s["neg"])
    if name == "pnelu":
        return np.where(w > 0, w + a * s["neg"], 0.0)
    if name == "excitator":
        return _relu(w - a * _relu(w) + a * s["pos"])
    if name == "inhibitor":
        return _relu(w - a * np.minimum(w, 0.0) + a * s["neg"])
    if name == "excitator_v2":
        return np.where(w > 0, (1 - a) * w, _relu(w + a * s["pos"] / max(1, s["n_np"])))
    if name == "inhibitor_v2":
        return np.where(w >= 0, _relu(w + a * s["neg"] / max(1, s["n_nn"])), 0.0)
    if name == "softmax_threshold":
        return np.where(_softmax(w) >= t, w, 0.0)
    if name == "max":
        return np.where(w == s["m"], w, 0.0)
    if name == "max_relu":
        return np.where((w == s["m"]) & (w > 0), w, 0.0)
    raise ValueError(f"reference: unknown activation {name!r}")


def _window_kept(name, w, t):
    s = _stats(w)
    if name == "softmax_threshold":
        return _softmax(w) >= t
    if name == "max":
        return w == s["m"]
    if name == "max_relu":
        return (w == s["m"]) & (w > 0)
    raise ValueError(f"reference: {name!r} is not a selection")


def _window_jacobian(name, w, a, t):
    """`J[i, j] = dy_i / dw_j` within one window: autodiff of the spec's formulas
    with comparisons, counts and the choice of maximum carrying no gradient."""
    n = len(w)
    eye = np.eye(n)
    s = _stats(w)
    neg_ind = (w < 0).astype(np.float64)  # d min(w, 0) / dw
    pos_ind = (w > 0).astype(np.float64)  # d max(w, 0) / dw
    if name == "nelu":  # the spec's [y_i > 0] (delta_ij + a [x_j < 0])
        z = w + a * s["neg"]
        return (z > 0)[:, None] * (eye + a * neg_ind[None, :])
    if name == "pnelu":
        return (w > 0)[:, None] * (eye + a * neg_ind[None, :])
    if name == "excitator":
        z = w - a * _relu(w) + a * s["pos"]
        dz = np.diag(1 - a * pos_ind) + a * pos_ind[None, :]
        return (z > 0)[:, None] * dz
    if name == "inhibitor":
        z = w - a * np.minimum(w, 0.0) + a * s["neg"]
        dz = np.diag(1 - a * neg_ind) + a * neg_ind[None, :]
        return (z > 0)[:, None] * dz
    if name == "excitator_v2":
        k = max(1, s["n_np"])
        z = w + a * s["pos"] / k
        receiver = (z > 0)[:, None] * (eye + a * pos_ind[None, :] / k)
        donor = np.diag(np.full(n, 1 - a))
        return np.where((w > 0)[:, None], donor, receiver)
    if name == "inhibitor_v2":
        k = max(1, s["n_nn"])
        z = w + a * s["neg"] / k
        live = (w >= 0) & (z > 0)
        return live[:, None] * (eye + a * neg_ind[None, :] / k)
    if name in SELECTION_NAMES:
        return np.diag(_window_kept(name, w, t).astype(np.float64))
    raise ValueError(f"reference: unknown activation {name!r}")


def _window_margin(name, w, a, t):
    """Per element, the distance to the nearest kink of the activation."""
    s = _stats(w)
    margin = np.abs(w)  # every formula branches on the sign of w
    if name in ("nelu", "inhibitor", "pnelu"):
        margin = np.minimum(margin, np.abs(w + a * s["neg"]))
    elif name == "excitator":
        margin = np.minimum(margin, np.abs(w - a * _relu(w) + a * s["pos"]))
    elif name == "excitator_v2":
        margin = np.minimum(margin, np.abs(w + a * s["pos"] / max(1, s["n_np"])))
    elif name == "inhibitor_v2":
        margin = np.minimum(margin, np.abs(w + a * s["neg"] / max(1, s["n_nn"])))
    elif name == "softmax_threshold":
        margin = np.minimum(margin, np.abs(_softmax(w) - t))
    elif name in ("max", "max_relu"):
        others = np.sort(w)
        gap = others[-1] - others[-2] if len(w) > 1 else np.inf
        margin = np.minimum(margin, gap)
    return margin


# --------------------------------------------------------------------------- whole arrays


def _per_window(shape, window, fn, out_dtype=np.float64):
    out = np.zeros(shape if len(shape) > 2 else (*shape, 1), dtype=out_dtype)
    for index in windows(shape, window):
        out[index] = fn(index)
    return out.reshape(shape)


def activation(name, x, window=DEFAULT_WINDOW, influence=DEFAULT_INFLUENCE, threshold=DEFAULT_THRESHOLD):
    """`name` applied to `x` (float64 result of `x`'s shape)."""
    name = ALIASES.get(name, name)
    xc = _channels_last(x)

    def fn(index):
        block = xc[index]
        return _window_values(name, block.reshape(-1), influence, threshold).reshape(block.shape)

    return _per_window(np.shape(x), window, fn)


def kept(name, x, window=DEFAULT_WINDOW, threshold=DEFAULT_THRESHOLD):
    """The boolean selection mask of a selection activation."""
    name = ALIASES.get(name, name)
    xc = _channels_last(x)

    def fn(index):
        block = xc[index]
        return _window_kept(name, block.reshape(-1), threshold).reshape(block.shape)

    return _per_window(np.shape(x), window, fn, out_dtype=bool)


def softmax_margin(x, window=DEFAULT_WINDOW, threshold=DEFAULT_THRESHOLD):
    """`|softmax(W)[w] - threshold|` per element."""
    xc = _channels_last(x)

    def fn(index):
        block = xc[index]
        return np.abs(_softmax(block.reshape(-1)) - threshold).reshape(block.shape)

    return _per_window(np.shape(x), window, fn)


def kink_margin(name, x, window=DEFAULT_WINDOW, influence=DEFAULT_INFLUENCE, threshold=DEFAULT_THRESHOLD):
    """Per element, the distance from the nearest non-differentiable point."""
    name = ALIASES.get(name, name)
    xc = _channels_last(x)

    def fn(index):
        block = xc[index]
        return _window_margin(name, block.reshape(-1), influence, threshold).reshape(block.shape)

    return _per_window(np.shape(x), window, fn)


def _jacobian_products(name, x, v, product, window, influence, threshold):
    """`product(jacobian, v_window)` for each window's analytic Jacobian."""
    name = ALIASES.get(name, name)
    xc = _channels_last(x)
    vc = _channels_last(v)

    def fn(index):
        block = xc[index]
        jac = _window_jacobian(name, block.reshape(-1), influence, threshold)
        return product(jac, vc[index].reshape(-1)).reshape(block.shape)

    return _per_window(np.shape(x), window, fn)


def vjp(name, x, g, window=DEFAULT_WINDOW, influence=DEFAULT_INFLUENCE, threshold=DEFAULT_THRESHOLD):
    """`g^T dy/dx`, window by window, from the analytic per-window Jacobian."""
    return _jacobian_products(name, x, g, lambda jac, gw: gw @ jac, window, influence, threshold)


def jvp(name, x, v, window=DEFAULT_WINDOW, influence=DEFAULT_INFLUENCE, threshold=DEFAULT_THRESHOLD):
    """`dy/dx v`, window by window, from the analytic per-window Jacobian."""
    return _jacobian_products(name, x, v, lambda jac, vw: jac @ vw, window, influence, threshold)


def fd_jvp(name, x, v, window=DEFAULT_WINDOW, influence=DEFAULT_INFLUENCE, threshold=DEFAULT_THRESHOLD, eps=1e-6):
    """Central finite difference of `activation` along `v`, in float64."""
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    kw = dict(window=window, influence=influence, threshold=threshold)
    return (activation(name, x + eps * v, **kw) - activation(name, x - eps * v, **kw)) / (2 * eps)


# =========================================================================== round 2
# docs/spec.md, "Round 2: beyond the seed": `mode` (tiled or centered windows),
# `over` (spatial or channel windows), `influence` per channel. Written element by
# element: for every output element `i`, its window `W(i)` is built from the
# definition (a tile, or the neighbourhood of offsets -(k-1)//2 ... k//2 clipped to
# the axis), the window's statistics are computed from its real elements, and `i`'s
# entry of the round-1 formula is taken, with `i`'s own channel's influence.


def _windowed_axes(shape, window, over):
    """`(axes, sizes)`: the axes of the channels-last view that windows run along,
    and the window size along each."""
    rank = len(shape)
    if over == "channels" and rank > 2:
        if not isinstance(window, int):
            raise ValueError("reference: channel windows take an int window")
        return (rank - 1,), (window,)
    if over not in ("spatial", "channels"):
        raise ValueError(f"reference: bad over {over!r}")
    _, sizes = _spatial_and_sizes(shape, window)
    return tuple(range(1, 1 + len(sizes))), sizes


def _axis_range(position, length, k, mode):
    """The positions of the window along one axis that holds `position`."""
    if mode == "tiled":
        start = (position // k) * k
        return range(start, min(start + k, length))
    if mode == "centered":
        return range(max(position - (k - 1) // 2, 0), min(position + k // 2, length - 1) + 1)
    raise ValueError(f"reference: bad mode {mode!r}")


def window_of(shape, index, window, mode="tiled", over="spatial"):
    """The indices (into the channels-last view) of the window `W(i)` of element
    `index`, in row-major order; `index` is one of them."""
    view_shape = shape if len(shape) > 2 else (*shape, 1)
    axes, sizes = _windowed_axes(shape, window, over)
    ranges = [[index[d]] for d in range(len(view_shape))]
    for axis, k in zip(axes, sizes):
        ranges[axis] = list(_axis_range(index[axis], view_shape[axis], k, mode))
    return list(itertools.product(*ranges))


def _channel_of(shape, index):
    return index[-1] if len(shape) > 2 else index[1]


def _per_element(name, x, window, influence, threshold, mode, over, fn):
    """`fn(w, position_of_i_in_w, a_i)` for every element, over its own window."""
    shape = np.shape(x)
    xc = _channels_last(x)
    a = np.broadcast_to(np.asarray(influence, np.float64), (shape[-1],))
    out = np.zeros(xc.shape)
    for index in np.ndindex(*xc.shape):
        members = window_of(shape, index, window, mode, over)
        w = np.array([xc[m] for m in members])
        out[index] = fn(w, members.index(index), a[_channel_of(shape, index)], members)
    return out.reshape(shape)


def activation_ext(
    name,
    x,
    window=DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    threshold=DEFAULT_THRESHOLD,
    mode="tiled",
    over="spatial",
):
    """`name` applied to `x` with round-2 options: `mode`, `over`, and `influence`
    a scalar or one value per channel (float64 result of `x`'s shape)."""
    name = ALIASES.get(name, name)

    def fn(w, i, a, _):
        return _window_values(name, w, a, threshold)[i]

    return _per_element(name, x, window, influence, threshold, mode, over, fn)


def vjp_ext(
    name,
    x,
    g,
    window=DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    threshold=DEFAULT_THRESHOLD,
    mode="tiled",
    over="spatial",
):
    """`g^T dy/dx` from each output element's row of its window's analytic Jacobian:
    `dx_j = sum_i g_i dy_i/dx_j` over every `i` whose window holds `j`."""
    name = ALIASES.get(name, name)
    shape = np.shape(x)
    gc = _channels_last(g)
    dx = np.zeros(gc.shape)

    def fn(w, i, a, members):
        row = _window_jacobian(name, w, a, threshold)[i]
        index = members[i]
        for j, member in enumerate(members):
            dx[member] += gc[index] * row[j]
        return 0.0

    _per_element(name, x, window, influence, threshold, mode, over, fn)
    return dx.reshape(shape)


def fd_influence_grad(
    name, x, g, window=DEFAULT_WINDOW, influence=DEFAULT_INFLUENCE, mode="tiled", over="spatial", eps=1e-6
):
    """`d sum(g * y) / d influence` by central finite differences, in float64: a
    float for a scalar influence, an array of shape `(C,)` for a per-channel one."""
    a = np.asarray(influence, np.float64)
    kw = dict(window=window, mode=mode, over=over)
    g = np.asarray(g, np.float64)
    flat = a.reshape(-1)
    grad = np.zeros_like(flat)
    for c in range(flat.size):
        step = np.zeros_like(flat)
        step[c] = eps
        up = activation_ext(name, x, influence=(flat + step).reshape(a.shape), **kw)
        down = activation_ext(name, x, influence=(flat - step).reshape(a.shape), **kw)
        grad[c] = np.sum(g * (up - down)) / (2 * eps)
    return grad.reshape(a.shape) if a.ndim else float(grad[0])


def kink_margin_ext(
    name,
    x,
    window=DEFAULT_WINDOW,
    influence=DEFAULT_INFLUENCE,
    threshold=DEFAULT_THRESHOLD,
    mode="tiled",
    over="spatial",
):
    """Per element, the distance from the nearest non-differentiable point (with
    respect to `x`), over its own window."""
    name = ALIASES.get(name, name)

    def fn(w, i, a, _):
        return _window_margin(name, w, a, threshold)[i]

    return _per_element(name, x, window, influence, threshold, mode, over, fn)


def softmax_margin_ext(x, window=DEFAULT_WINDOW, threshold=DEFAULT_THRESHOLD, mode="tiled", over="spatial"):
    """`|softmax(W(i))[i] - threshold|` per element."""

    def fn(w, i, a, _):
        return abs(_softmax(w)[i] - threshold)

    return _per_element("softmax_threshold", x, window, 0.0, threshold, mode, over, fn)


# --------------------------------------------------------------------------- comparators


def prelu(x, slope):
    """`x` if `x > 0`, else `slope * x`; `slope` a scalar or one per channel."""
    x = np.asarray(x, np.float64)
    return np.where(x > 0, x, np.asarray(slope, np.float64) * x)


def frelu(x, kernel, scale, bias):
    """FReLU: `max(x, T(x))`, `T(x)[b, h, w, c] = scale[c] * sum_{u,v} x[b, h+u-(k-1)//2,
    w+v-(k-1)//2, c] * kernel[u, v, c] + bias[c]`, zero outside the map; loops."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    batch, height, width, channels = x.shape
    k_h, k_w = kernel.shape[:2]  # the spec's k x k; a k_h x k_w kernel places each axis alike
    t = np.zeros_like(x)
    for b, h, w, c in np.ndindex(*x.shape):
        total = 0.0
        for u in range(k_h):
            for v in range(k_w):
                hh, ww = h + u - (k_h - 1) // 2, w + v - (k_w - 1) // 2
                if 0 <= hh < height and 0 <= ww < width:
                    total += x[b, hh, ww, c] * kernel[u, v, c]
        t[b, h, w, c] = scale[c] * total + bias[c]
    return np.maximum(x, t)


def kept_ext(name, x, window=DEFAULT_WINDOW, threshold=DEFAULT_THRESHOLD, mode="tiled", over="spatial"):
    """The boolean selection mask of a selection activation, over each element's window."""
    name = ALIASES.get(name, name)

    def fn(w, i, a, _):
        return _window_kept(name, w, threshold)[i]

    return _per_element(name, x, window, 0.0, threshold, mode, over, fn).astype(bool)
