"""The nine window activations against the specification (docs/spec.md).

* hand-worked examples, with the expected outputs written out literally;
* every activation against `reference.py` (an independent float64 NumPy reference
  with plain loops over windows) on divisible and partial maps, per-axis windows,
  windows larger than the map, dense, NWC, NHWC and NDHWC inputs, default and
  non-default parameters;
* no leakage between windows, padding that cannot matter;
* gradients (the reference's analytic VJP, `check_grads` in float64, NeLU's
  Jacobian formula, selections' kept masks), `inhibitor == nelu` bitwise;
* bf16 / fp16 / float64, jit vs no jit (chex variants), vmap, shapes and dtypes;
* every bad input the specification names.
"""

from __future__ import annotations

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import winact_jax as wa

NAMES = ref.WINDOW_NAMES
INFLUENCE_NAMES = ref.INFLUENCE_NAMES
SELECTION_NAMES = ref.SELECTION_NAMES

F32_TOL = dict(rtol=1e-5, atol=1e-5)


def fn(name):
    return getattr(wa, name)


@functools.cache
def _jitted(name, window, items):
    f = fn(name) if window is None else functools.partial(fn(name), window=window)
    return jax.jit(functools.partial(f, **dict(items)))


def jitted(name, window=None, **params):
    """`name` under `jax.jit` with `window` and `params` bound (`window=None` leaves
    it at its default); cached, so a shape compiles once per process."""
    return _jitted(name, window, tuple(sorted(params.items())))


@functools.cache
def _jitted_vjp(name, window, items):
    f = functools.partial(fn(name), window=window, **dict(items))
    return jax.jit(lambda x, g: jax.vjp(f, x)[1](g)[0])


def grid_input(shape, seed, scale=2.0):
    """Float32 multiples of 0.25: many exact zeros and ties, exact window sums."""
    rng = np.random.default_rng(seed)
    return (np.round(rng.normal(size=shape) * scale * 4) / 4).astype(np.float32)


def smooth_input(name, shape, window, seed, min_margin=1e-3, scale=2.0, dtype=np.float32, **params):
    """Random input whose every element is at least `min_margin` away from a kink
    of `name` (no zeros, no ties, no relu argument or softmax probability near
    its switching point), so gradients are well defined and comparable."""
    for attempt in range(1000):
        rng = np.random.default_rng([seed, attempt])
        x = (rng.normal(size=shape) * scale).astype(dtype)
        if ref.kink_margin(name, x, window, **params).min() > min_margin:
            return x
    raise RuntimeError(f"no input away from the kinks of {name} for {shape}")


def assert_matches_reference(name, x, y, window=4, rtol=1e-5, atol=1e-5, ambiguity=1e-5, **params):
    """`y` (the library's output for `x`) equals the reference, up to tolerance.

    For `softmax_threshold`, an element whose softmax probability is within
    `ambiguity` of the threshold may go either way (float32 vs float64); it must
    then be either its input or zero.
    """
    x64 = np.asarray(jnp.asarray(x).astype(jnp.float32), np.float64)
    y64 = np.asarray(jnp.asarray(y).astype(jnp.float32), np.float64)
    expected = ref.activation(name, x64, window, **params)
    if name == "softmax_threshold":
        threshold = params.get("threshold", ref.DEFAULT_THRESHOLD)
        near = ref.softmax_margin(x64, window, threshold) < ambiguity
        either = (y64 == x64) | (y64 == 0)
        assert either[near].all(), "an ambiguous element is neither its input nor zero"
        assert near.mean() < 0.2, "too many ambiguous elements for a meaningful test"
        y64 = np.where(near, expected, y64)
    np.testing.assert_allclose(y64, expected, rtol=rtol, atol=atol, err_msg=f"{name} window={window} {params}")


# =========================================================================== hand-worked
# One NHWC (1, 4, 4, 1) map, one window of 16 elements (window=4). Worked by hand:
#
#     X = [[ 4, -2,  0,  1  ],        negatives: -2 -1 -3 -4      neg  = -10
#          [-1,  4,  2, -3  ],        positives: 4 1 4 2 3 1 2 0.5 2.5
#          [ 0, -4,  3,  1  ],                                    pos  = 20
#          [ 2, 0.5, 0, 2.5 ]]        zeros: 3     n_np = 3 + 4 = 7, n_nn = 9 + 3 = 12
#                                     max m = 4, a tie at (0,0) and (1,1)
#
# nelu (a=0.1): relu(w - 1).  pnelu: w - 1 where w > 0 (0.5 -> -0.5), else 0.
# excitator (a=0.1): relu(w - 0.1 relu(w) + 2): positives 0.9 w + 2, others relu(w + 2).
# inhibitor: relu(w - 0.1 min(w,0) - 1) = nelu.
# excitator_v2 (a=0.7): positives 0.3 w; others relu(w + 0.7*20/7) = relu(w + 2).
# inhibitor_v2 (a=0.6): w >= 0: relu(w + 0.6*(-10)/12) = relu(w - 0.5); negatives 0.
# softmax over all 16: p(w) = e^w / Z with Z = 2e^4 + e^3 + e^2.5 + 2e^2 + 2e + e^0.5 + 3 + e^-1
#   + e^-2 + e^-3 + e^-4 = 166.90 -> p(4) = 54.60/166.90 = 0.327, p(3) = 0.120,
#   p(2.5) = 0.073, p(2) = 0.044: t=0.25 keeps the two 4s; t=0.1 also keeps the 3.
#   (Along rows only, as the seed did, the last row would keep 2.5 at p = 0.548.)
# max / max_relu: the two tied 4s.

HAND_X = [
    [4.0, -2.0, 0.0, 1.0],
    [-1.0, 4.0, 2.0, -3.0],
    [0.0, -4.0, 3.0, 1.0],
    [2.0, 0.5, 0.0, 2.5],
]

HAND_CASES = {
    "nelu": ({}, [[3, 0, 0, 0], [0, 3, 1, 0], [0, 0, 2, 0], [1, 0, 0, 1.5]]),
    "pnelu": ({}, [[3, 0, 0, 0], [0, 3, 1, 0], [0, 0, 2, 0], [1, -0.5, 0, 1.5]]),
    "excitator": (
        {},
        [[5.6, 0, 2, 2.9], [1, 5.6, 3.8, 0], [2, 0, 4.7, 2.9], [3.8, 2.45, 2, 4.25]],
    ),
    "inhibitor": ({}, [[3, 0, 0, 0], [0, 3, 1, 0], [0, 0, 2, 0], [1, 0, 0, 1.5]]),
    "excitator_v2": (
        {"influence": 0.7},
        [[1.2, 0, 2, 0.3], [1, 1.2, 0.6, 0], [2, 0, 0.9, 0.3], [0.6, 0.15, 2, 0.75]],
    ),
    "inhibitor_v2": (
        {"influence": 0.6},
        [[3.5, 0, 0, 0.5], [0, 3.5, 1.5, 0], [0, 0, 2.5, 0.5], [1.5, 0, 0, 2.0]],
    ),
    "softmax_threshold": ({}, [[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
    "max": ({}, [[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
    "max_relu": ({}, [[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
}


@pytest.mark.parametrize("name", NAMES)
def test_hand_worked_4x4(name):
    params, expected = HAND_CASES[name]
    x = jnp.asarray(HAND_X, jnp.float32).reshape(1, 4, 4, 1)
    y = fn(name)(x, window=4, **params)
    assert y.shape == (1, 4, 4, 1) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y)[0, :, :, 0], expected, rtol=1e-6, atol=1e-6)
    # The reference agrees with the hand-worked numbers too.
    np.testing.assert_allclose(
        ref.activation(name, np.asarray(x), 4, **params)[0, :, :, 0], expected, rtol=1e-12, atol=1e-12
    )


def test_hand_worked_4x4_softmax_threshold_0_1_keeps_the_3():
    x = jnp.asarray(HAND_X, jnp.float32).reshape(1, 4, 4, 1)
    y = wa.softmax_threshold(x, window=4, threshold=0.1)
    expected = [[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], expected)


def test_hand_worked_4x4_inhibitor_v2_is_not_nelu():
    # Deviation 2 of the spec: nelu at a=0.6 drains 6 from every positive
    # (relu(w - 6)), inhibitor_v2 only 0.5.
    x = jnp.asarray(HAND_X, jnp.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(np.asarray(wa.nelu(x, influence=0.6)), 0.0)
    assert float(wa.inhibitor_v2(x, influence=0.6)[0, 0, 0, 0]) == pytest.approx(3.5)


# All non-positive, a tie for the maximum (-0.5): max keeps both, max_relu nothing.
HAND_NEG_X = [
    [-1.0, -3.0, -0.5, -2.0],
    [-0.5, -4.0, -1.0, -2.0],
    [-6.0, -1.0, -3.0, -1.5],
    [-2.0, -0.75, -8.0, -1.0],
]


def test_hand_worked_4x4_all_negative_max_vs_max_relu():
    x = jnp.asarray(HAND_NEG_X, jnp.float32).reshape(1, 4, 4, 1)
    expected_max = [[0, 0, -0.5, 0], [-0.5, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(np.asarray(wa.max(x))[0, :, :, 0], expected_max)
    np.testing.assert_array_equal(np.asarray(wa.max_relu(x))[0, :, :, 0], np.zeros((4, 4)))


def test_hand_worked_5x5_partial_windows_max():
    # x[i, j] = -(5 i + j + 1): windows [0:4,0:4], [0:4,4], [4,0:4], [4,4] have their
    # maxima -1, -5, -21, -25 at their top-left element. Zero padding would win
    # every max and zero the whole output.
    x = -(np.arange(25, dtype=np.float32) + 1).reshape(1, 5, 5, 1)
    expected = np.zeros((5, 5))
    expected[0, 0], expected[0, 4], expected[4, 0], expected[4, 4] = -1, -5, -21, -25
    np.testing.assert_array_equal(np.asarray(wa.max(jnp.asarray(x), window=4))[0, :, :, 0], expected)


# Dense (1, 6) inputs with window 4: windows [0:4] and the partial [4:6]. Each
# second window is chosen so that statistics polluted by two zero pads would differ.
HAND_DENSE = {
    # [2,-1,0.5,-3]: neg -4 -> drain 0.4; [2,-1]: neg -1 -> drain 0.1.
    "nelu": ({}, [2, -1, 0.5, -3, 2, -1], [1.6, 0, 0.1, 0, 1.9, 0]),
    "inhibitor": ({}, [2, -1, 0.5, -3, 2, -1], [1.6, 0, 0.1, 0, 1.9, 0]),
    # [2,-1,0.25,-3]: drain 0.4 -> 0.25 passes as -0.15; [0.05,-1]: 0.05 - 0.1 = -0.05.
    "pnelu": ({}, [2, -1, 0.25, -3, 0.05, -1], [1.6, 0, -0.15, 0, -0.05, 0]),
    # [2,-0.1,0.5,-3]: pos 2.5 -> +0.25; [-0.3, 4]: pos 4 -> +0.4: -0.3 -> 0.1, 4 -> 4.
    "excitator": ({}, [2, -0.1, 0.5, -3, -0.3, 4], [2.05, 0.15, 0.7, 0, 0.1, 4]),
    # a=0.5. [1,1,1,1]: 0.5 each. [-0.5, 2]: n_np = 1 (3 with two zero pads):
    # -0.5 + 0.5*2/1 = 0.5, 2 -> 1.
    "excitator_v2": ({"influence": 0.5}, [1, 1, 1, 1, -0.5, 2], [0.5, 0.5, 0.5, 0.5, 0.5, 1]),
    # a=0.5. [1,1,1,1]: unchanged. [3,-2]: n_nn = 1 (3 with pads): 3 + 0.5*(-2)/1 = 2.
    "inhibitor_v2": ({"influence": 0.5}, [1, 1, 1, 1, 3, -2], [1, 1, 1, 1, 2, 0]),
    # [2,-1,1.5,-3]: p = .601 .030 .365 .004; [0,-0.5]: p = .622 .378, both kept
    # (with two zero pads: .277 and .168, -0.5 dropped).
    "softmax_threshold": ({}, [2, -1, 1.5, -3, 0, -0.5], [2, 0, 1.5, 0, 0, -0.5]),
    # [-1,-3]: max -1 (zero pads would make it 0 and drop it).
    "max": ({}, [1, 2, 3, 4, -1, -3], [0, 0, 0, 4, -1, 0]),
    "max_relu": ({}, [1, 2, 3, 4, -1, -3], [0, 0, 0, 4, 0, 0]),
}


@pytest.mark.parametrize("name", NAMES)
def test_hand_worked_dense_partial_window(name):
    params, x, expected = HAND_DENSE[name]
    y = fn(name)(jnp.asarray([x], jnp.float32), window=4, **params)
    np.testing.assert_allclose(np.asarray(y)[0], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ref.activation(name, np.asarray([x]), 4, **params)[0], expected, atol=1e-12)


# =========================================================================== vs reference

CONFIGS = {
    # id: (shape, window); window None means "not passed" (the default, 4).
    "nhwc_8x8_default_window": ((2, 8, 8, 3), None),
    "nhwc_7x5_w4": ((2, 7, 5, 2), 4),
    "nhwc_6x6_w4x2": ((1, 6, 6, 2), (4, 2)),
    "nhwc_7x5_w3x1": ((2, 7, 5, 1), (3, 1)),
    "nhwc_8x8_w32_one_window": ((2, 8, 8, 2), 32),
    "nhwc_3x9_w4x4_larger_on_one_axis": ((1, 3, 9, 2), (4, 4)),
    "dense_16": ((3, 16), 4),
    "dense_10": ((3, 10), 4),
    "nwc_9_tuple_w4": ((2, 9, 3), (4,)),
    "ndhwc_5x4x6_w2x4x3": ((1, 5, 4, 6, 2), (2, 4, 3)),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_default_params(name, config):
    shape, window = CONFIGS[config]
    x = grid_input(shape, seed=sorted(CONFIGS).index(config))
    y = jitted(name, window)(jnp.asarray(x))  # parameters left at their defaults
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert_matches_reference(name, x, y, 4 if window is None else window)


@pytest.mark.parametrize("config", ["nhwc_7x5_w4", "dense_10", "ndhwc_5x4x6_w2x4x3", "nhwc_6x6_w4x2"])
@pytest.mark.parametrize("name", INFLUENCE_NAMES + ("softmax_threshold",))
def test_matches_reference_influence_0_35_threshold_0_1(name, config):
    shape, window = CONFIGS[config]
    params = ref.params_for(name, influence=0.35, threshold=0.1)
    x = grid_input(shape, seed=100 + sorted(CONFIGS).index(config))
    y = jitted(name, window, **params)(jnp.asarray(x))
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert_matches_reference(name, x, y, window, **params)


@pytest.mark.parametrize("influence", [0.0, 1.0])
@pytest.mark.parametrize("name", INFLUENCE_NAMES)
def test_matches_reference_influence_bounds(name, influence):
    x = grid_input((2, 7, 5, 2), seed=7)
    y = jitted(name, 4, influence=influence)(jnp.asarray(x))
    assert_matches_reference(name, x, y, 4, influence=influence)


@pytest.mark.parametrize("threshold", [1.0, 0.05])
def test_softmax_threshold_bounds(threshold):
    x = smooth_input("softmax_threshold", (2, 7, 5, 2), 4, seed=3, threshold=threshold)
    y = jitted("softmax_threshold", 4, threshold=threshold)(jnp.asarray(x))
    assert_matches_reference("softmax_threshold", x, y, 4, threshold=threshold)


def test_influence_zero_is_relu_for_the_nelu_family():
    x = jnp.asarray(grid_input((2, 7, 5, 2), seed=11))
    for name in ("nelu", "pnelu", "excitator", "inhibitor", "inhibitor_v2"):
        np.testing.assert_allclose(jitted(name, 4, influence=0.0)(x), jax.nn.relu(x), atol=0, err_msg=name)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(data=st.data())
def test_matches_reference_property(data):
    name = data.draw(st.sampled_from(NAMES), label="name")
    rank = data.draw(st.integers(2, 5), label="rank")
    num_spatial = 1 if rank == 2 else rank - 2
    spatial = data.draw(st.lists(st.integers(1, 7), min_size=num_spatial, max_size=num_spatial), label="spatial")
    batch = data.draw(st.integers(1, 2), label="batch")
    shape = (batch, *spatial) if rank == 2 else (batch, *spatial, data.draw(st.integers(1, 2), label="channels"))
    if data.draw(st.booleans(), label="tuple window") and rank > 2:
        window = tuple(data.draw(st.lists(st.integers(1, 5), min_size=num_spatial, max_size=num_spatial)))
    else:
        window = data.draw(st.integers(1, 9), label="window")
    params = ref.params_for(
        name,
        influence=data.draw(st.sampled_from([0.1, 0.35, 0.9]), label="influence"),
        threshold=data.draw(st.sampled_from([0.1, 0.25, 0.6]), label="threshold"),
    )
    x = grid_input(shape, seed=data.draw(st.integers(0, 2**16), label="seed"))
    y = jitted(name, window, **params)(jnp.asarray(x))
    assert y.shape == x.shape and y.dtype == jnp.float32
    # tiny windows can make many softmax probabilities sit exactly at simple values
    x64 = x.astype(np.float64)
    expected = ref.activation(name, x64, window, **params)
    y64 = np.asarray(y, np.float64)
    if name == "softmax_threshold":
        near = ref.softmax_margin(x64, window, params["threshold"]) < 1e-5
        assert np.all(((y64 == x64) | (y64 == 0))[near])
        y64 = np.where(near, expected, y64)
    np.testing.assert_allclose(y64, expected, **F32_TOL)


# =========================================================================== window isolation


@pytest.mark.parametrize("name", NAMES)
def test_no_leakage_between_windows(name):
    """Changing only the elements of one window changes no other window's outputs
    (other windows, other channels, other batch elements)."""
    params = ref.params_for(name)
    x = grid_input((2, 7, 5, 2), seed=21)
    y = np.asarray(jitted(name, 4, **params)(jnp.asarray(x)))
    rng = np.random.default_rng(22)
    # One full window (rows 0:4, cols 0:4) and one partial (rows 4:7, col 4), in
    # batch element 1, channel 0.
    for rows, cols in [(slice(0, 4), slice(0, 4)), (slice(4, 7), slice(4, 5))]:
        x2 = x.copy()
        block = x2[1, rows, cols, 0]
        x2[1, rows, cols, 0] = rng.normal(size=block.shape).astype(np.float32) * 10
        y2 = np.asarray(jitted(name, 4, **params)(jnp.asarray(x2)))
        outside = np.ones(x.shape, bool)
        outside[1, rows, cols, 0] = False
        np.testing.assert_array_equal(y2[outside], y[outside])
        # ... and the changed window itself follows the reference.
        assert_matches_reference(name, x2, y2, 4, **params)


@pytest.mark.parametrize("name", NAMES)
def test_no_leakage_dense(name):
    params = ref.params_for(name)
    x = grid_input((2, 10), seed=23)
    y = np.asarray(jitted(name, 4, **params)(jnp.asarray(x)))
    x2 = x.copy()
    x2[0, 8:10] = [-7.0, 9.0]  # the partial window of row 0
    y2 = np.asarray(jitted(name, 4, **params)(jnp.asarray(x2)))
    np.testing.assert_array_equal(y2[0, :8], y[0, :8])
    np.testing.assert_array_equal(y2[1], y[1])
    assert_matches_reference(name, x2, y2, 4, **params)


@pytest.mark.parametrize("name", NAMES)
def test_partial_windows_equal_their_own_maps(name):
    """A partial window's outputs are those of its real elements alone: the output
    on a 7x5 map (window 4) cropped to any one window equals the activation of that
    crop as a map of its own (where the window covers the whole crop)."""
    params = ref.params_for(name)
    x = grid_input((2, 7, 5, 2), seed=31)
    y = np.asarray(jitted(name, 4, **params)(jnp.asarray(x)))
    for rows, cols in [(slice(0, 4), slice(4, 5)), (slice(4, 7), slice(0, 4)), (slice(4, 7), slice(4, 5))]:
        crop = x[:, rows, cols, :]
        y_crop = np.asarray(jitted(name, 4, **params)(jnp.asarray(crop)))
        np.testing.assert_allclose(y[:, rows, cols, :], y_crop, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_padding_values_cannot_matter(name):
    """Only what is true is asserted. The 7x5 map's partial windows follow the
    reference (real elements only; zero padding would change counts, maxima and
    softmaxes). Extending the map to 8x8 gives those partial windows new elements,
    so their outputs may change, but the full top-left window (rows 0:4, cols 0:4)
    keeps its outputs whatever the extension holds (large positives or negatives)."""
    params = ref.params_for(name)
    x = grid_input((2, 7, 5, 2), seed=41)
    y = np.asarray(jitted(name, 4, **params)(jnp.asarray(x)))
    assert_matches_reference(name, x, y, 4, **params)
    for fill in (50.0, -50.0):
        ext = np.full((2, 8, 8, 2), fill, np.float32)
        ext[:, :7, :5, :] = x
        y_ext = np.asarray(jitted(name, 4, **params)(jnp.asarray(ext)))
        np.testing.assert_allclose(y_ext[:, :4, :4, :], y[:, :4, :4, :], rtol=1e-6, atol=1e-6)


def test_window_larger_than_map_is_one_window():
    x = jnp.asarray(grid_input((2, 8, 8, 2), seed=51))
    for name in NAMES:
        params = ref.params_for(name)
        np.testing.assert_array_equal(
            np.asarray(jitted(name, 32, **params)(x)), np.asarray(jitted(name, 8, **params)(x)), err_msg=name
        )
        np.testing.assert_array_equal(
            np.asarray(jitted(name, (32, 9), **params)(x)), np.asarray(jitted(name, 8, **params)(x)), err_msg=name
        )


def test_channels_never_mix():
    # A window of all-equal values in channel 0 next to a very different channel 1.
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[..., 0] = 1.0
    x[..., 1] = -5.0
    x[0, 0, 0, 1] = 3.0
    y = np.asarray(wa.max(jnp.asarray(x)))
    np.testing.assert_array_equal(y[..., 0], 1.0)  # all tied at the max of channel 0
    expected1 = np.zeros((4, 4))
    expected1[0, 0] = 3.0
    np.testing.assert_array_equal(y[0, :, :, 1], expected1)
    y = np.asarray(wa.nelu(jnp.asarray(x)))
    np.testing.assert_array_equal(y[..., 0], 1.0)  # channel 1's negatives do not drain channel 0


# =========================================================================== gradients

GRAD_CONFIGS = {
    "nhwc_7x5_w4": ((2, 7, 5, 2), 4),
    "dense_10": ((3, 10), 4),
    "ndhwc_5x4x6_w2x4x3": ((1, 5, 4, 6, 2), (2, 4, 3)),
}


def _vjp(name, x, g, window, **params):
    pullback = _jitted_vjp(name, window, tuple(sorted(params.items())))
    return np.asarray(pullback(jnp.asarray(x), jnp.asarray(g)), np.float64)


@pytest.mark.parametrize("config", list(GRAD_CONFIGS))
@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_reference(name, config):
    shape, window = GRAD_CONFIGS[config]
    params = ref.params_for(name)
    seed = sorted(GRAD_CONFIGS).index(config)
    x = smooth_input(name, shape, window, seed=seed, **params)
    g = np.random.default_rng(seed + 1000).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(_vjp(name, x, g, window, **params), ref.vjp(name, x, g, window, **params), **F32_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_reference_influence_0_35_threshold_0_1(name):
    shape, window = (2, 7, 5, 2), 4
    params = ref.params_for(name, influence=0.35, threshold=0.1)
    x = smooth_input(name, shape, window, seed=5, **params)
    g = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(_vjp(name, x, g, window, **params), ref.vjp(name, x, g, window, **params), **F32_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_check_grads_float64(name):
    """`jax.test_util.check_grads` (reverse mode, finite differences) in float64,
    with inputs away from every kink."""
    shape, window = (2, 6, 5, 1), (4, 3)
    params = ref.params_for(name, influence=0.35)
    x = smooth_input(name, shape, window, seed=61, min_margin=1e-2, dtype=np.float64, **params)
    with jax.enable_x64(True):
        xj = jnp.asarray(x, jnp.float64)
        assert xj.dtype == jnp.float64
        f = jitted(name, window, **params)
        assert f(xj).dtype == jnp.float64
        check_grads(f, (xj,), order=1, modes=("rev",), eps=1e-4, atol=1e-6, rtol=1e-6)
        # and the VJP equals the reference's to float64 precision
        g = np.random.default_rng(62).normal(size=shape)
        pullback = _jitted_vjp(name, window, tuple(params.items()))
        np.testing.assert_allclose(
            np.asarray(pullback(xj, jnp.asarray(g))), ref.vjp(name, x, g, window, **params), rtol=1e-12, atol=1e-12
        )


def test_reference_jacobian_matches_its_finite_differences():
    """The reference's analytic gradient is that of its own values (checks the
    reference, away from kinks)."""
    for name in NAMES:
        for params in (ref.params_for(name), ref.params_for(name, influence=0.35, threshold=0.1)):
            x = smooth_input(name, (2, 5, 6, 2), (4, 4), seed=71, min_margin=1e-2, dtype=np.float64, **params)
            v = np.random.default_rng(72).normal(size=x.shape)
            np.testing.assert_allclose(
                ref.jvp(name, x, v, (4, 4), **params),
                ref.fd_jvp(name, x, v, (4, 4), **params),
                rtol=1e-6,
                atol=1e-6,
                err_msg=f"{name} {params}",
            )


def test_nelu_negatives_get_gradient_relu_does_not():
    # x = [2, -1, 0.5, -3], a = 0.1: y = [1.6, 0, 0.1, 0], both positives fire.
    # d sum(y) / dx_j = [x_j fires] + 0.1 [x_j < 0] * (number firing = 2).
    x = jnp.asarray([[2.0, -1.0, 0.5, -3.0]])
    g_nelu = jax.grad(lambda v: jnp.sum(wa.nelu(v, window=4, influence=0.1)))(x)
    g_relu = jax.grad(lambda v: jnp.sum(wa.relu(v)))(x)
    np.testing.assert_allclose(g_nelu, [[1.0, 0.2, 1.0, 0.2]], rtol=1e-6)
    np.testing.assert_array_equal(g_relu, [[1.0, 0.0, 1.0, 0.0]])


def test_nelu_jacobian_is_the_spec_formula():
    """dy_i/dx_j = [y_i > 0] (delta_ij + a [x_j < 0]) within a window, 0 across
    windows (dense (2, 7), window 4: windows [0:4] and the partial [4:7])."""
    a = 0.3
    x = np.asarray([[3.0, -0.5, 1.0, -2.0, 2.5, -0.25, 0.75], [-1.0, 4.0, 0.5, 0.25, -3.0, -1.5, 6.0]], np.float32)
    jac = np.asarray(jax.jacrev(lambda v: wa.nelu(v, window=4, influence=a))(jnp.asarray(x)))
    y = np.asarray(wa.nelu(jnp.asarray(x), window=4, influence=a))
    expected = np.zeros((2, 7, 2, 7))
    for b in range(2):
        for lo, hi in ((0, 4), (4, 7)):
            for i in range(lo, hi):
                for j in range(lo, hi):
                    expected[b, i, b, j] = (y[b, i] > 0) * ((i == j) + a * (x[b, j] < 0))
    np.testing.assert_allclose(jac, expected, rtol=1e-6, atol=1e-7)
    # a concrete entry: x[0,1] = -0.5 gets a from the firing x[0,0]
    assert jac[0, 0, 0, 1] == pytest.approx(a)


@pytest.mark.parametrize("name", SELECTION_NAMES)
def test_selection_gradient_is_kept_mask(name):
    shape, window = (2, 7, 5, 2), 4
    params = ref.params_for(name)
    x = smooth_input(name, shape, window, seed=81, **params)
    grad = np.asarray(_vjp(name, x, np.ones_like(x), window, **params))
    mask = ref.kept(name, x, window, **params)
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(grad, mask.astype(np.float32))
    # and the output is x where kept, 0 elsewhere
    y = np.asarray(jitted(name, window, **params)(jnp.asarray(x)))
    np.testing.assert_array_equal(y, np.where(mask, x, 0))


def test_selection_gradient_on_ties():
    # Ties for the maximum are all kept, so all receive gradient 1.
    x = jnp.asarray([[3.0, 3.0, 1.0, 2.0]])
    grad = lambda f: np.asarray(jax.grad(lambda v: jnp.sum(f(v)))(x))  # noqa: E731
    np.testing.assert_array_equal(grad(wa.max), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(grad(wa.max_relu), [[1, 1, 0, 0]])
    # softmax of [3,3,1,2]: p = .422 .422 .057 .155 -> the two 3s are kept
    np.testing.assert_array_equal(grad(wa.softmax_threshold), [[1, 1, 0, 0]])
    neg = jnp.asarray([[-1.0, -1.0, -2.0, -3.0]])
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(wa.max_relu(v)))(neg), [[0, 0, 0, 0]])
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(wa.max(v)))(neg), [[1, 1, 0, 0]])
    # A maximum of exactly 0 is kept by max (w == m) but not by max_relu (w > 0 fails).
    zero_max = jnp.asarray([[0.0, -1.0, 0.0, -2.0]])
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(wa.max(v)))(zero_max), [[1, 0, 1, 0]])
    np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(wa.max_relu(v)))(zero_max), [[0, 0, 0, 0]])


def test_softmax_threshold_keeps_probability_equal_to_threshold():
    """`softmax(W)[w] >= t` keeps equality: a uniform 2x2 window has p = 1/4 exactly
    (kept at the default t = 0.25), a one-element window p = 1 (kept at t = 1)."""
    x = jnp.asarray([[[1.5, 1.5, -2.0, 3.0], [1.5, 1.5, 3.0, 3.0]]], jnp.float32)[..., None]  # (1, 2, 4, 1)
    y = np.asarray(wa.softmax_threshold(x, window=2))
    # window [0:2, 0:2]: all 1.5, p = 1/4 each, all kept; window [0:2, 2:4]: -2 drops,
    # the three 3s have p = e^5/(3e^5 + 1) = 0.3318 each.
    np.testing.assert_array_equal(y[0, :, :, 0], [[1.5, 1.5, 0.0, 3.0], [1.5, 1.5, 3.0, 3.0]])
    np.testing.assert_array_equal(np.asarray(wa.softmax_threshold(x, window=1, threshold=1.0)), np.asarray(x))


# =========================================================================== inhibitor == nelu


@pytest.mark.parametrize("influence", [0.1, 0.35])
@pytest.mark.parametrize("shape,window", [((2, 7, 5, 2), 4), ((1, 5, 4, 6, 2), (2, 4, 3))])
def test_inhibitor_equals_nelu_bitwise(shape, window, influence):
    x = jnp.asarray(grid_input(shape, seed=91))  # zeros, ties, partial windows
    g = jnp.asarray(np.random.default_rng(92).normal(size=shape).astype(np.float32))
    y_n = jitted("nelu", window, influence=influence)(x)
    y_i = jitted("inhibitor", window, influence=influence)(x)
    np.testing.assert_array_equal(np.asarray(y_i), np.asarray(y_n))
    grad_n = _jitted_vjp("nelu", window, (("influence", influence),))(x, g)
    grad_i = _jitted_vjp("inhibitor", window, (("influence", influence),))(x, g)
    np.testing.assert_array_equal(np.asarray(grad_i), np.asarray(grad_n))
    assert np.asarray(y_n).any() and np.asarray(grad_n).any()


# =========================================================================== dtypes

LOW_PRECISION = {
    # dtype: (rtol, atol relative to the input's scale)
    "bfloat16": (jnp.bfloat16, 1e-2, 2e-2),
    "float16": (jnp.float16, 2e-3, 4e-3),
}


@pytest.mark.parametrize("dtype", list(LOW_PRECISION))
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_keeps_dtype_and_stays_close(name, dtype):
    jdtype, rtol, atol = LOW_PRECISION[dtype]
    params = ref.params_for(name)
    for attempt in range(1000):  # inputs whose rounded values are away from every kink
        x32 = np.random.default_rng([101, attempt]).normal(size=(2, 7, 5, 2)).astype(np.float32) * 2
        x_lo = jnp.asarray(x32).astype(jdtype)
        if ref.kink_margin(name, np.asarray(x_lo.astype(jnp.float32)), 4, **params).min() > 1e-2:
            break
    else:
        raise RuntimeError("no input away from the kinks")
    y_lo = jitted(name, 4, **params)(x_lo)
    assert y_lo.dtype == jdtype and y_lo.shape == x_lo.shape
    # close to float32 on the same (rounded) input values...
    x_q = x_lo.astype(jnp.float32)
    y_32 = jitted(name, 4, **params)(x_q)
    assert_matches_reference(name, x_q, y_32, 4, **params)
    assert_matches_reference(name, x_q, y_lo, 4, rtol=rtol, atol=atol * 2, ambiguity=1e-2, **params)
    if jdtype == jnp.bfloat16:  # ... and gradients work and keep the dtype
        grad = _jitted_vjp(name, 4, tuple(params.items()))(x_lo, jnp.ones_like(x_lo))
        assert grad.dtype == jdtype and grad.shape == x_lo.shape
        expected = ref.vjp(name, np.asarray(x_q), np.ones(x_q.shape), 4, **params)
        np.testing.assert_allclose(np.asarray(grad.astype(jnp.float32)), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("name", ["nelu", "pnelu", "excitator", "excitator_v2", "inhibitor_v2"])
def test_bfloat16_window_sums_accumulate_in_float32(name):
    """1024-element windows of small values: a bfloat16 accumulator would stall
    (at 32 the bf16 spacing is 0.25, so adding 0.1 rounds away)."""
    n = 1024
    x = np.full((2, n), -0.1, np.float32)
    x[0, ::128] = 20.0  # row 0: neg ~ -101.6, a few strong positives
    x[1] = 0.1
    x[1, ::128] = -1.0  # row 1: pos ~ 101.6, a few negatives
    x_lo = jnp.asarray(x).astype(jnp.bfloat16)
    y = jitted(name, n, influence=0.1)(x_lo)
    assert y.dtype == jnp.bfloat16
    assert_matches_reference(name, x_lo, y, n, rtol=1e-2, atol=1e-2, influence=0.1)


@pytest.mark.parametrize("name", NAMES)
def test_float64_under_x64(name):
    params = ref.params_for(name, influence=0.35, threshold=0.1)
    x = np.random.default_rng(111).normal(size=(2, 7, 5, 2)) * 2
    with jax.enable_x64(True):
        y = jitted(name, 4, **params)(jnp.asarray(x, jnp.float64))
        assert y.dtype == jnp.float64 and y.shape == x.shape
        y = np.asarray(y)
    expected = ref.activation(name, x, 4, **params)
    if name == "softmax_threshold":
        near = ref.softmax_margin(x, 4, 0.1) < 1e-12
        y = np.where(near, expected, y)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


SHAPES_BY_RANK = {2: ((3, 10), 4), 3: ((2, 9, 3), (4,)), 4: ((2, 7, 5, 2), 4), 5: ((1, 5, 4, 6, 2), (2, 4, 3))}
assert all(any(c == s for c in CONFIGS.values()) for s in SHAPES_BY_RANK.values())


@pytest.mark.parametrize("rank", list(SHAPES_BY_RANK))
@pytest.mark.parametrize("name", NAMES)
def test_shape_and_dtype_follow_input(name, rank):
    shape, window = SHAPES_BY_RANK[rank]
    params = ref.params_for(name)
    x32 = jnp.asarray(grid_input(shape, seed=rank))
    y = jitted(name, window, **params)(x32)  # compiled by the reference tests already
    assert y.shape == shape and y.dtype == jnp.float32, (y.shape, y.dtype)
    if name in ("nelu", "softmax_threshold", "max"):  # a few, to keep compile counts down
        y = jitted(name, window, **params)(x32.astype(jnp.bfloat16))
        assert y.shape == shape and y.dtype == jnp.bfloat16, (y.shape, y.dtype)


# =========================================================================== jit, vmap


class JitAndNoJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(n, n) for n in NAMES])
    def test_agree(self, name):
        shape, window = (2, 7, 5, 2), 4
        params = ref.params_for(name)
        x = smooth_input(name, shape, window, seed=121, **params)
        f = functools.partial(fn(name), window=window, **params)
        y = self.variant(f)(jnp.asarray(x))
        eager = f(jnp.asarray(x))
        chex.assert_shape(y, shape)
        chex.assert_type(y, jnp.float32)
        np.testing.assert_allclose(np.asarray(y), np.asarray(eager), rtol=1e-6, atol=1e-6)
        assert_matches_reference(name, x, y, window, **params)
        # gradients agree too
        g = np.random.default_rng(122).normal(size=shape).astype(np.float32)
        grad = self.variant(jax.grad(lambda v: jnp.sum(f(v) * g)))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(grad), ref.vjp(name, x, g, window, **params), **F32_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_leading_axis(name):
    params = ref.params_for(name)
    f = jitted(name, 4, **params)
    xs = jnp.asarray(grid_input((3, 2, 7, 5, 2), seed=131))
    batched = np.asarray(jax.jit(jax.vmap(f))(xs))
    per_slice = np.stack([np.asarray(f(xs[i])) for i in range(3)])
    np.testing.assert_allclose(batched, per_slice, rtol=1e-6, atol=1e-6)
    assert_matches_reference(name, np.asarray(xs[1]), batched[1], 4, **params)


def test_vmap_dense():
    xs = jnp.asarray(grid_input((4, 3, 10), seed=132))
    for name in ("nelu", "softmax_threshold", "max"):
        f = jitted(name, 4)
        np.testing.assert_allclose(
            np.asarray(jax.jit(jax.vmap(f))(xs)), np.stack([np.asarray(f(x)) for x in xs]), rtol=1e-6, atol=1e-6
        )


# =========================================================================== bad input


def _assert_message(excinfo, *parts):
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, f"{part!r} not in error message {msg!r}"


X4 = jnp.zeros((1, 8, 8, 2), jnp.float32)

BAD_WINDOWS = [
    (0, ValueError),
    (-1, ValueError),
    (2.5, TypeError),
    ("4", TypeError),
    (None, TypeError),
    ((4, 4, 4), ValueError),  # three entries for two spatial axes
    ((4,), ValueError),  # one entry for two spatial axes
    ((4, 0), ValueError),
    ((4, -2), ValueError),
]


@pytest.mark.parametrize("window,error", BAD_WINDOWS, ids=[repr(w) for w, _ in BAD_WINDOWS])
@pytest.mark.parametrize("name", NAMES)
def test_bad_window(name, window, error):
    with pytest.raises(error) as excinfo:
        fn(name)(X4, window=window)
    _assert_message(excinfo, "window", repr(window))


@pytest.mark.parametrize("window", [(4, 4), 0, 2.5])
def test_bad_window_dense(window):
    x = jnp.zeros((2, 8), jnp.float32)
    with pytest.raises((ValueError, TypeError)) as excinfo:
        wa.nelu(x, window=window)
    _assert_message(excinfo, "window", repr(window))


BAD_INFLUENCES = [
    (-0.1, ValueError),
    (1.5, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (-float("inf"), ValueError),
    ("0.1", TypeError),
    (True, TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize("influence,error", BAD_INFLUENCES, ids=[repr(v) for v, _ in BAD_INFLUENCES])
@pytest.mark.parametrize("name", INFLUENCE_NAMES)
def test_bad_influence(name, influence, error):
    with pytest.raises(error) as excinfo:
        fn(name)(X4, influence=influence)
    _assert_message(excinfo, "influence", repr(influence))


BAD_THRESHOLDS = [
    (0, ValueError),
    (0.0, ValueError),
    (-0.5, ValueError),
    (1.5, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    ("0.25", TypeError),
    (True, TypeError),
]


@pytest.mark.parametrize("threshold,error", BAD_THRESHOLDS, ids=[repr(v) for v, _ in BAD_THRESHOLDS])
def test_bad_threshold(threshold, error):
    with pytest.raises(error) as excinfo:
        wa.softmax_threshold(X4, threshold=threshold)
    _assert_message(excinfo, "threshold", repr(threshold))


def _names_x(msg):
    return re.search(r"\bx\b", msg) is not None


@pytest.mark.parametrize("name", NAMES)
def test_integer_input_is_a_type_error(name):
    for x in (jnp.ones((2, 8), jnp.int32), np.ones((1, 4, 4, 1), np.int64), jnp.ones((2, 8), jnp.bool_)):
        with pytest.raises(TypeError) as excinfo:
            fn(name)(x)
        msg = str(excinfo.value)
        assert _names_x(msg) and str(x.dtype) in msg, msg


@pytest.mark.parametrize("name", NAMES)
def test_rank_below_two_is_a_value_error(name):
    for x in (jnp.ones((8,), jnp.float32), jnp.float32(1.0), jnp.ones((), jnp.float32)):
        with pytest.raises(ValueError) as excinfo:
            fn(name)(x)
        msg = str(excinfo.value)
        assert _names_x(msg), msg
        assert str(tuple(x.shape)) in msg or f"rank {x.ndim}" in msg, msg


def test_valid_edge_parameters_are_accepted():
    """The ends of every accepted range work and follow the reference."""
    x = grid_input((1, 4, 4, 2), seed=141)
    cases = [
        ("nelu", dict(window=1, influence=0.0)),
        ("nelu", dict(window=(1, 4), influence=1.0)),
        ("excitator", dict(window=(4, 1), influence=np.float64(0.5))),  # a float subclass
        ("softmax_threshold", dict(window=4, threshold=1.0)),
        ("max_relu", dict(window=(2, 3))),
    ]
    for name, params in cases:
        y = fn(name)(jnp.asarray(x), **params)
        assert_matches_reference(name, x, y, **params)
