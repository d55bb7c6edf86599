"""Round 2 of the window activations (docs/spec.md, "Round 2: beyond the seed"):
centered windows (`mode="centered"`), channel windows (`over="channels"`) and
per-channel, differentiable `influence`.

* every activation x {centered, channels, centered+channels} x ranks 2-5 x odd,
  even and tuple windows x partial windows, against `reference.py` (element by
  element, float64);
* hand-worked 3x3 maps; translation equivariance (which tiles lack); LWTA;
  centered softmax at |x| = 1e4;
* gradients with respect to `x` (the reference's Jacobian rows, `check_grads` in
  float64) and to `influence` (finite differences of the reference);
* per-channel influence equals one scalar call per channel;
* bf16 / fp16, jit and no jit, every bad value of the new parameters.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from absl.testing import parameterized
from jax.test_util import check_grads

import winact_jax as wa

NAMES = ref.WINDOW_NAMES
INFLUENCE_NAMES = ref.INFLUENCE_NAMES
COMBOS = {
    "centered": dict(mode="centered", over="spatial"),
    "channels": dict(mode="tiled", over="channels"),
    "centered_channels": dict(mode="centered", over="channels"),
}

# shape, window: rank 2 to 5; odd, even and tuple windows; partial windows (and
# channel groups) at the far edge; a window larger than its axis.
CONFIGS = {
    "dense_7_w3": ((3, 7), 3),
    "nwc_6x5_w4": ((2, 6, 5), 4),
    "nhwc_4x5x5_w3": ((2, 4, 5, 5), 3),
    "nhwc_4x5x2_w2x5": ((1, 4, 5, 2), (2, 5)),
    "ndhwc_3x4x3x2_w3x2x2": ((1, 3, 4, 3, 2), (3, 2, 2)),
}


def fn(name):
    return getattr(wa, name)


@functools.cache
def _jitted(name, window, items):
    return jax.jit(functools.partial(fn(name), window=window, **dict(items)))


def jitted(name, window, **params):
    return _jitted(name, window, tuple(sorted(params.items())))


def random_input(shape, seed, scale=2.0, dtype=np.float32):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def smooth_input(name, shape, window, seed, min_margin=1e-3, dtype=np.float32, **params):
    """Random input at least `min_margin` from every kink of `name` (see reference)."""
    for attempt in range(200):
        x = random_input(shape, [seed, attempt], dtype=dtype)
        if ref.kink_margin_ext(name, x, window, **params).min() > min_margin:
            return x
    raise RuntimeError(f"no input away from the kinks of {name} for {shape} {params}")


def assert_matches_reference(name, x, y, window, rtol=1e-5, atol=1e-5, ambiguity=1e-5, **params):
    """`y` equals the reference; a softmax probability within `ambiguity` of the
    threshold may go either way (float32 against float64), but only to its input or 0."""
    x64 = np.asarray(jnp.asarray(x).astype(jnp.float32), np.float64)
    y64 = np.asarray(jnp.asarray(y).astype(jnp.float32), np.float64)
    expected = ref.activation_ext(name, x64, window, **params)
    if name == "softmax_threshold":
        options = {k: v for k, v in params.items() if k in ("threshold", "mode", "over")}
        near = ref.softmax_margin_ext(x64, window, **options) < ambiguity
        assert ((y64 == x64) | (y64 == 0))[near].all()
        assert near.mean() < 0.2
        y64 = np.where(near, expected, y64)
    np.testing.assert_allclose(y64, expected, rtol=rtol, atol=atol, err_msg=f"{name} window={window} {params}")


def _valid(combo, window):
    return COMBOS[combo]["over"] != "channels" or isinstance(window, int)


CASES = [
    (name, combo, config)
    for name in NAMES
    for combo in COMBOS
    for config, (_, window) in CONFIGS.items()
    if _valid(combo, window)
]


# =========================================================================== reference


@pytest.mark.parametrize("name,combo,config", CASES)
def test_matches_reference(name, combo, config):
    shape, window = CONFIGS[config]
    params = {**ref.params_for(name, influence=0.35, threshold=0.2), **COMBOS[combo]}
    x = random_input(shape, seed=len(config) + len(combo))
    y = jitted(name, window, **params)(jnp.asarray(x))
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert_matches_reference(name, x, y, window, **params)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("combo", list(COMBOS))
def test_vjp_matches_reference(name, combo):
    shape, window = (2, 4, 5, 5), 3
    params = {**ref.params_for(name, influence=0.35, threshold=0.2), **COMBOS[combo]}
    x = smooth_input(name, shape, window, seed=7, **params)
    g = random_input(shape, seed=8, scale=1.0)
    f = jitted(name, window, **params)
    dx = jax.vjp(f, jnp.asarray(x))[1](jnp.asarray(g))[0]
    np.testing.assert_allclose(np.asarray(dx), ref.vjp_ext(name, x, g, window, **params), rtol=1e-4, atol=1e-4)


def test_reference_centered_jacobian_matches_its_finite_differences():
    """The reference's element-by-element Jacobian (used above) against central
    differences of the reference's own values."""
    shape, window = (1, 4, 5, 2), 3
    for name in ("nelu", "excitator_v2", "inhibitor_v2"):
        params = dict(influence=0.3, mode="centered", over="spatial")
        x = smooth_input(name, shape, window, seed=9, min_margin=1e-3, dtype=np.float64, **params)
        g = random_input(shape, seed=10, dtype=np.float64)
        v = random_input(shape, seed=11, dtype=np.float64)
        eps = 1e-6
        fd = (
            ref.activation_ext(name, x + eps * v, window, **params)
            - ref.activation_ext(name, x - eps * v, window, **params)
        ) / (2 * eps)
        np.testing.assert_allclose(np.sum(g * fd), np.sum(ref.vjp_ext(name, x, g, window, **params) * v), rtol=1e-6)


def test_tiled_reference_paths_agree():
    """The element-by-element reference equals the round-1 window-by-window one."""
    x = random_input((2, 7, 5, 2), seed=12)
    for name in NAMES:
        np.testing.assert_allclose(ref.activation_ext(name, x, (4, 3)), ref.activation(name, x, (4, 3)))


# =========================================================================== hand-worked
# One NHWC (1, 3, 3, 1) map:
#
#     X = [[ 1, -2,  3],
#          [-1,  4, -3],
#          [ 2, -1,  0]]
#
# Centered 3x3 neighbourhoods, clipped (offsets -1..1): neg / pos / n_np / n_nn of N(i):
#   (0,0) {1,-2,-1,4}          -3 / 5       (0,1) {1,-2,3,-1,4,-3}   -6 / 8 / 3
#   (0,2) {-2,3,4,-3}          -5 / 7 / 2   (1,0) {1,-2,-1,4,2,-1}   -4 / 7 / 3
#   (1,1) all nine             -7 / 10 / n_nn 5                  (1,2) {-2,3,4,-3,-1,0} -6 / 7 / 4
#   (2,0) {-1,4,2,-1}          -2 / 6 / 2   (2,1) {-1,4,-3,2,-1,0}   -5 / 6 / 4
#   (2,2) {4,-3,-1,0}          -4 / 4 / 3
# nelu a=0.5: relu(x + neg/2): (0,2) 3-2.5, (1,1) 4-3.5, (2,0) 2-1; the rest <= 0.
# excitator a=0.5: relu(x - relu(x)/2 + pos/2).
# excitator_v2 a=0.5: positives x/2; (1,0) -1 + 3.5/3 = 1/6, (2,2) 0 + 2/3; others < 0.
# inhibitor_v2 a=0.5: x >= 0: relu(x + neg/(2 n_nn)): (0,0) 1-3/4, (0,2) 3-5/4,
#   (1,1) 4-7/10, (2,0) 2-2/4, (2,2) 0-4/6 -> 0.
# softmax t=0.25: p(4 at (1,1)) = e^4/86.72 = 0.63; p(3 at (0,2)) = e^3/74.87 = 0.268;
#   every other p < 0.12.
# max, window 2 (even: offsets 0..1, the 2x2 block below-right, clipped):
#   (0,2) {3,-3}, (1,1) {4,-3,-1,0}, (2,0) {2,-1}, (2,2) {0}: their own maxima.

HAND_X = [[1.0, -2.0, 3.0], [-1.0, 4.0, -3.0], [2.0, -1.0, 0.0]]

HAND_CASES = [
    ("nelu", dict(window=3, influence=0.5), [[0, 0, 0.5], [0, 0.5, 0], [1, 0, 0]]),
    ("excitator", dict(window=3, influence=0.5), [[3, 2, 5], [2.5, 7, 0.5], [4, 2, 2]]),
    ("excitator_v2", dict(window=3, influence=0.5), [[0.5, 0, 1.5], [1 / 6, 2, 0], [1, 0, 2 / 3]]),
    ("inhibitor_v2", dict(window=3, influence=0.5), [[0.25, 0, 1.75], [0, 3.3, 0], [1.5, 0, 0]]),
    ("softmax_threshold", dict(window=3, threshold=0.25), [[0, 0, 3], [0, 4, 0], [0, 0, 0]]),
    ("max", dict(window=3), [[0, 0, 0], [0, 4, 0], [0, 0, 0]]),
    ("max", dict(window=2), [[0, 0, 3], [0, 4, 0], [2, 0, 0]]),
    ("max_relu", dict(window=2), [[0, 0, 3], [0, 4, 0], [2, 0, 0]]),
]


@pytest.mark.parametrize("name,params,expected", HAND_CASES, ids=[f"{n}-{p['window']}" for n, p, _ in HAND_CASES])
def test_hand_worked_3x3_centered(name, params, expected):
    x = jnp.asarray(HAND_X).reshape(1, 3, 3, 1)
    y = fn(name)(x, mode="centered", **params)
    np.testing.assert_allclose(np.asarray(y).reshape(3, 3), expected, rtol=1e-6, atol=1e-6)


def test_hand_worked_channel_windows():
    """Channels [1, -2, 3, -1, 4] at one position, window 2: groups {1,-2}, {3,-1},
    {4} (partial). Tiled nelu a=0.5: 1-1, 3-0.5, 4. Centered (offsets 0..1):
    N = {1,-2}, {-2,3}, {3,-1}, {-1,4}, {4}: 1-1, 0, 3-0.5, 0, 4."""
    x = jnp.asarray([1.0, -2.0, 3.0, -1.0, 4.0]).reshape(1, 1, 1, 5)
    tiled = wa.nelu(x, window=2, influence=0.5, over="channels")
    centered = wa.nelu(x, window=2, influence=0.5, over="channels", mode="centered")
    np.testing.assert_allclose(np.asarray(tiled).reshape(-1), [0, 0, 2.5, 0, 4])
    np.testing.assert_allclose(np.asarray(centered).reshape(-1), [0, 0, 2.5, 0, 4])
    lwta = wa.max(x, window=2, over="channels")
    np.testing.assert_array_equal(np.asarray(lwta).reshape(-1), [1, 0, 3, 0, 4])


# =========================================================================== properties


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("window", [3, 4])
def test_centered_is_translation_equivariant(name, window):
    """Shifting the input one pixel down and one right shifts the output the same
    way, away from the borders. Tiled windows are not equivariant: the same shift
    moves elements into other tiles."""
    params = ref.params_for(name, influence=0.35, threshold=0.2)
    x = random_input((2, 12, 12, 2), seed=20)
    shifted = np.roll(x, (1, 1), axis=(1, 2))
    interior = (slice(None), slice(window + 1, 12 - window), slice(window + 1, 12 - window))
    before = (slice(None), slice(window, 11 - window), slice(window, 11 - window))
    f = jitted(name, window, mode="centered", **params)
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(shifted)))[interior], np.asarray(f(jnp.asarray(x)))[before])
    if name in ("nelu", "excitator"):
        tiled = jitted(name, window, **params)
        assert not np.array_equal(
            np.asarray(tiled(jnp.asarray(shifted)))[interior], np.asarray(tiled(jnp.asarray(x)))[before]
        )


def _lwta(x, k):
    """Local winner-take-all written directly: in every group of k consecutive
    channels (the last group partial), keep the maxima, zero the rest."""
    out = np.zeros_like(x)
    for start in range(0, x.shape[-1], k):
        group = x[..., start : start + k]
        out[..., start : start + k] = np.where(group == group.max(axis=-1, keepdims=True), group, 0)
    return out


@pytest.mark.parametrize("k", [2, 3, 4])
def test_channel_max_is_lwta(k):
    x = np.round(random_input((2, 3, 4, 10), seed=21) * 2) / 2  # ties included
    y = wa.max(jnp.asarray(x), window=k, over="channels")
    np.testing.assert_array_equal(np.asarray(y), _lwta(x, k))
    g = random_input(x.shape, seed=22)
    dx = jax.vjp(lambda v: wa.max(v, window=k, over="channels"), jnp.asarray(x))[1](jnp.asarray(g))[0]
    np.testing.assert_array_equal(np.asarray(dx), np.where(_lwta_mask(x, k), g, 0))


def _lwta_mask(x, k):
    mask = np.zeros(x.shape, bool)
    for start in range(0, x.shape[-1], k):
        group = x[..., start : start + k]
        mask[..., start : start + k] = group == group.max(axis=-1, keepdims=True)
    return mask


def test_rank2_channels_is_the_default():
    x = jnp.asarray(random_input((4, 11), seed=23))
    for name in NAMES:
        np.testing.assert_array_equal(
            np.asarray(fn(name)(x, window=3, over="channels")), np.asarray(fn(name)(x, window=3))
        )


@pytest.mark.parametrize("name", NAMES)
def test_explicit_defaults_are_round_one(name):
    x = jnp.asarray(random_input((2, 7, 5, 3), seed=24))
    np.testing.assert_array_equal(np.asarray(fn(name)(x, mode="tiled", over="spatial")), np.asarray(fn(name)(x)))


def test_window_larger_than_the_map_centered():
    """A centered window covering the whole axis from everywhere is one window."""
    x = random_input((2, 4, 3, 2), seed=25)
    for name in ("nelu", "excitator_v2", "max", "softmax_threshold"):
        params = ref.params_for(name)
        centered = fn(name)(jnp.asarray(x), window=9, mode="centered", **params)
        np.testing.assert_allclose(np.asarray(centered), ref.activation(name, x, 8, **params), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("window", [4, (3, 2)])
def test_centered_softmax_is_finite_and_exact_at_1e4(window):
    """float32 inputs of magnitude 1e4 (exp would overflow): the kept set is the
    float64 reference's, outputs and gradients finite."""
    rng = np.random.default_rng(26)
    x = (rng.choice([-1e4, 1e4], size=(2, 6, 7, 2)) + rng.normal(size=(2, 6, 7, 2)) * 2).astype(np.float32)
    x[0, 2, 3, 0] = 1e4  # equal neighbours: probabilities 1/2 at the top
    x[0, 2, 4, 0] = 1e4
    for threshold in (0.25, 0.5):
        f = jitted("softmax_threshold", window, threshold=threshold, mode="centered")
        y = np.asarray(f(jnp.asarray(x)))
        assert np.isfinite(y).all()
        expected = ref.activation_ext(
            "softmax_threshold", x.astype(np.float64), window, threshold=threshold, mode="centered"
        )
        np.testing.assert_array_equal(y, expected.astype(np.float32))
        dx = jax.grad(lambda v, f=f: jnp.sum(f(v)))(jnp.asarray(x))
        assert np.isfinite(np.asarray(dx)).all()
        kept = ref.kept_ext("softmax_threshold", x.astype(np.float64), window, threshold=threshold, mode="centered")
        np.testing.assert_array_equal(np.asarray(dx), kept.astype(np.float32))


# =========================================================================== influence


@pytest.mark.parametrize("name", INFLUENCE_NAMES)
@pytest.mark.parametrize("combo", ["tiled", *COMBOS])
def test_per_channel_influence_is_one_scalar_call_per_channel(name, combo):
    options = COMBOS.get(combo, {})
    x = jnp.asarray(random_input((1, 4, 5, 4), seed=30))
    influence = np.array([0.0, 0.2, 0.55, 1.0])
    y = np.asarray(fn(name)(x, window=3, influence=influence, **options))
    for c, a in enumerate(influence):
        scalar = np.asarray(fn(name)(x, window=3, influence=float(a), **options))
        np.testing.assert_allclose(y[..., c], scalar[..., c], rtol=1e-6, atol=1e-6)
    assert_matches_reference(name, x, y, 3, influence=influence, **options)


@pytest.mark.parametrize("name", INFLUENCE_NAMES)
@pytest.mark.parametrize("combo", ["tiled", "centered", "channels"])  # centered+channels: check_grads below
def test_influence_gradient_matches_finite_differences(name, combo):
    """d sum(g * y) / d influence (scalar and per channel) equals central differences
    of the float64 reference, and the x-gradient with a per-channel influence equals
    the reference's Jacobian rows; float64 throughout."""
    options = COMBOS.get(combo, {})
    shape, window = (2, 4, 5, 3), 3
    per_channel = np.array([0.15, 0.4, 0.7])
    x = smooth_input(name, shape, window, seed=31, min_margin=1e-3, dtype=np.float64, influence=per_channel, **options)
    g = random_input(shape, seed=32, dtype=np.float64)
    with jax.enable_x64(True):
        for influence in (np.float64(0.4), per_channel):

            def loss(v, a):
                return jnp.sum(jnp.asarray(g) * fn(name)(v, window=window, influence=a, **options))

            dx, da = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(influence))
            assert da.shape == np.shape(influence) and da.dtype == jnp.float64
            expected = ref.fd_influence_grad(name, x, g, window, influence, **options)
            np.testing.assert_allclose(np.asarray(da), expected, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(
                np.asarray(dx), ref.vjp_ext(name, x, g, window, influence, **options), rtol=1e-10, atol=1e-10
            )


@pytest.mark.parametrize("name", ["nelu", "excitator", "inhibitor_v2"])
def test_check_grads_float64_centered(name):
    options = COMBOS["centered_channels"] if name == "excitator" else COMBOS["centered"]
    shape = (1, 4, 5, 3)
    a = np.array([0.2, 0.5, 0.8])
    x = smooth_input(name, shape, 3, seed=33, min_margin=1e-2, dtype=np.float64, influence=a, **options)
    with jax.enable_x64(True):
        f = functools.partial(fn(name), window=3, **options)
        check_grads(
            lambda v, inf: f(v, influence=inf),
            (jnp.asarray(x), jnp.asarray(a)),
            order=1,
            modes=("rev",),
            eps=1e-4,
            atol=1e-6,
            rtol=1e-6,
        )


def test_influence_gradient_under_jit_and_traced_influence_is_not_checked():
    x = jnp.asarray(random_input((2, 4, 4, 2), seed=34))

    @jax.jit
    def loss(a):
        return jnp.sum(wa.nelu(x, window=2, influence=a, mode="centered"))

    assert loss.lower(jnp.array([0.1, 0.2])) is not None
    grad = jax.grad(loss)(jnp.array([0.1, 0.2]))
    assert grad.shape == (2,) and np.isfinite(np.asarray(grad)).all()
    # a traced influence's values are unknown: out-of-range values pass through
    assert np.isfinite(np.asarray(loss(jnp.array([2.0, -1.0]))))


# =========================================================================== dtypes, jit


LOW_PRECISION = {"bfloat16": (jnp.bfloat16, 5e-2), "float16": (jnp.float16, 1e-2)}


@pytest.mark.parametrize("dtype", list(LOW_PRECISION))
@pytest.mark.parametrize("name", NAMES)
def test_low_precision(name, dtype):
    jdtype, tol = LOW_PRECISION[dtype]
    params = {**ref.params_for(name, influence=0.35), "mode": "centered"}
    x = jnp.asarray(random_input((2, 5, 6, 3), seed=40)).astype(jdtype)
    y = fn(name)(x, window=3, **params)
    assert y.dtype == jdtype and y.shape == x.shape
    if name in ("max", "max_relu", "softmax_threshold"):  # selections return input elements exactly
        assert_matches_reference(name, x, y, 3, rtol=0, atol=0, ambiguity=1e-2, **params)
    else:
        assert_matches_reference(name, x, y, 3, rtol=tol, atol=tol * 4, **params)
    y = fn(name)(x, window=2, over="channels", **params)
    assert y.dtype == jdtype
    if name not in ("max", "max_relu", "softmax_threshold"):
        a = jnp.asarray([0.1, 0.5, 0.9])
        y = fn(name)(x, window=3, mode="centered", influence=a)
        assert y.dtype == jdtype
        da = jax.grad(lambda v: jnp.sum(fn(name)(x, window=3, mode="centered", influence=v).astype(jnp.float32)))(a)
        assert da.dtype == jnp.float32 and np.isfinite(np.asarray(da)).all()


class JitAndNoJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        *[(n, n, "centered" if i % 2 else "centered_channels") for i, n in enumerate(NAMES)]
    )
    def test_agree(self, name, combo):
        shape, window = (2, 4, 5, 4), 3
        params = {**ref.params_for(name), **COMBOS[combo]}
        x = smooth_input(name, shape, window, seed=41, **params)
        f = functools.partial(fn(name), window=window, **params)
        y = self.variant(f)(jnp.asarray(x))
        chex.assert_shape(y, shape)
        chex.assert_type(y, jnp.float32)
        assert_matches_reference(name, x, y, window, **params)
        g = random_input(shape, seed=42, scale=1.0)
        grad = self.variant(jax.grad(lambda v: jnp.sum(f(v) * g)))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(grad), ref.vjp_ext(name, x, g, window, **params), rtol=1e-4, atol=1e-4)


# =========================================================================== bad input

X4 = jnp.zeros((1, 6, 6, 3), jnp.float32)


def _assert_message(excinfo, *parts):
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, f"{part!r} not in error message {msg!r}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "params,error,parts",
    [
        ({"mode": "center"}, ValueError, ["mode", "'center'", "'tiled'", "'centered'"]),
        ({"mode": 1}, TypeError, ["mode", "1", "'tiled'", "'centered'"]),
        ({"over": "space"}, ValueError, ["over", "'space'", "'spatial'", "'channels'"]),
        ({"over": None}, TypeError, ["over", "None", "'spatial'", "'channels'"]),
        ({"over": "channels", "window": (2, 2)}, TypeError, ["window", "(2, 2)", "int", "channels"]),
        ({"mode": "centered", "window": 0}, ValueError, ["window", "0"]),
        ({"mode": "centered", "window": (3, 3, 3)}, ValueError, ["window", "(3, 3, 3)"]),
    ],
)
def test_bad_mode_over_window(name, params, error, parts):
    with pytest.raises(error) as excinfo:
        fn(name)(X4, **params)
    _assert_message(excinfo, *parts)


BAD_INFLUENCE_ARRAYS = [
    (np.array([0.1, 0.2]), ValueError, ["influence", "(2,)", "(3,)"]),
    (jnp.ones((3, 1)) * 0.1, ValueError, ["influence", "(3, 1)"]),
    (np.array([0.1, 1.5, 0.2]), ValueError, ["influence", "1.5", "[0, 1]"]),
    (jnp.array([0.1, jnp.nan, 0.2]), ValueError, ["influence", "nan"]),
    (jnp.array([-0.1, 0.0, 0.2]), ValueError, ["influence", "-0.1"]),
    (np.array([True, False, True]), TypeError, ["influence", "bool"]),
    ([0.1, "0.2", 0.3], TypeError, ["influence", "'0.2'"]),
]


@pytest.mark.parametrize("name", INFLUENCE_NAMES)
@pytest.mark.parametrize(
    "influence,error,parts", BAD_INFLUENCE_ARRAYS, ids=[str(i) for i in range(len(BAD_INFLUENCE_ARRAYS))]
)
def test_bad_influence_arrays(name, influence, error, parts):
    with pytest.raises(error) as excinfo:
        fn(name)(X4, influence=influence)
    _assert_message(excinfo, *parts)


def test_traced_influence_shape_is_still_checked():
    with pytest.raises(ValueError) as excinfo:
        jax.jit(lambda a: wa.nelu(X4, influence=a))(jnp.ones(2) * 0.1)
    _assert_message(excinfo, "influence", "(2,)")


def test_accepted_influence_forms():
    """A Python or NumPy scalar, a 0-d array, a (C,) array, list or tuple: all the
    same function of their values."""
    expected = np.asarray(wa.nelu(X4 + 1 - 2 * (jnp.arange(3) % 2), influence=0.5))
    x = X4 + 1 - 2 * (jnp.arange(3) % 2)
    for influence in (
        0.5,
        np.float32(0.5),
        np.array(0.5),
        jnp.array(0.5),
        [0.5] * 3,
        (0.5,) * 3,
        np.full(3, 0.5),
        jnp.full(3, 0.5),
    ):
        np.testing.assert_allclose(np.asarray(wa.nelu(x, influence=influence)), expected, rtol=1e-6)


# =========================================================================== geometry paths


@pytest.mark.parametrize("name", NAMES)
def test_large_neighbourhoods_and_long_runs_take_the_other_path(name, monkeypatch):
    """Small neighbourhoods are reduced as shifted slices, large ones by separable
    `reduce_window`s; tiles along the channels of at most `MAX_SHIFTS` by unrolled
    slices, longer ones by a reduction.
    Forcing the other path gives the reference's values and gradients too."""
    from winact_jax import windows

    monkeypatch.setattr(windows, "MAX_SHIFTS", 0)
    params = ref.params_for(name, influence=0.35, threshold=0.2)
    x = smooth_input(name, (2, 4, 5, 5), 3, seed=50, mode="centered", **params)
    g = random_input(x.shape, seed=51)
    for options in (COMBOS["centered"], COMBOS["channels"]):
        f = functools.partial(fn(name), window=3, **options, **params)
        y, pullback = jax.vjp(f, jnp.asarray(x))
        assert_matches_reference(name, x, y, 3, **options, **params)
        np.testing.assert_allclose(
            np.asarray(pullback(jnp.asarray(g))[0]),
            ref.vjp_ext(name, x, g, 3, **options, **params),
            rtol=1e-4,
            atol=1e-4,
        )
    if name in ("nelu", "excitator", "excitator_v2"):  # and the per-channel influence cotangent
        x64, g64 = x.astype(np.float64), g.astype(np.float64)
        with jax.enable_x64(True):
            for options in (COMBOS["centered"], COMBOS["channels"]):
                for influence in (np.array([0.1, 0.3, 0.5, 0.7, 0.9]),):
                    da = jax.grad(
                        lambda a, options=options: jnp.sum(
                            g64 * fn(name)(jnp.asarray(x64), window=3, influence=a, **options)
                        )
                    )(jnp.asarray(influence))
                    expected = ref.fd_influence_grad(name, x64, g64, 3, influence, **options)
                    np.testing.assert_allclose(np.asarray(da), expected, rtol=1e-6, atol=1e-8)


def test_geometry_objects():
    from winact_jax import windows

    assert isinstance(windows.geometry((2, 8, 8, 3), 4), wa.Tiling)
    assert isinstance(windows.geometry((2, 8, 8, 3), 3, mode="centered"), wa.Neighbourhood)
    assert isinstance(windows.geometry((2, 8, 8, 16), 4, over="channels"), wa.Tiling)
    assert windows.geometry((2, 8, 8, 16), 4, over="channels").shape == (128, 16)
    nb = windows.geometry((1, 5, 4, 2), (3, 2), mode="centered")
    assert nb.offsets == ((1, 1), (0, 1))
    # |N(i)| in closed form: rows 2,3,3,3,2 by columns 2,2,2,1
    np.testing.assert_array_equal(nb.count()[0, :, :, 0], np.outer([2, 3, 3, 3, 2], [2, 2, 2, 1]))


@pytest.mark.parametrize(
    "shape, window",
    [((2, 7, 6, 3), 3), ((2, 9, 4), 4), ((1, 4, 5, 3, 2), (2, 2, 2)), ((3, 11), 4), ((2, 5, 5, 2), (4, 1))],
)
@pytest.mark.parametrize("transposed", [False, True])
def test_neighbourhood_regions_match_the_padded_shifts(shape, window, transposed):
    """Small neighbourhoods are reduced from border and interior regions, without a
    padded copy; the padded copy's shifted slices give the same sums and maxima,
    and a term's element-wise `part` is the same as reducing `part(values)`."""
    from winact_jax import windows

    geometry = windows.neighbourhood(shape, window)
    x = jnp.asarray(random_input(shape, seed=60))
    offsets = [(a, b) if transposed else (b, a) for b, a in geometry.offsets]
    for op, combine, fill in ((windows.SUM, jnp.add, 0.0), (windows.MAX, jnp.maximum, -jnp.inf)):
        expected = functools.reduce(combine, geometry._shifted(jnp.minimum(x, 0.5), offsets, jnp.array(fill)))
        (by_regions,) = geometry.reduce((op, x, lambda v: jnp.minimum(v, 0.5)), transposed=transposed)
        np.testing.assert_allclose(np.asarray(by_regions), np.asarray(expected), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "shape, window, dtype",
    [
        ((2, 7, 6, 3), 3, np.uint8),  # regions
        ((2, 2, 6, 3), 3, np.uint8),  # an axis too short for regions: padded shifts
        ((2, 9, 8, 2), 5, np.uint8),  # 25 offsets: separable reduce_window
        ((3, 11), 4, np.uint8),  # dense
        ((1, 9, 9, 9, 1), 7, np.uint16),  # 343 offsets do not fit a uint8
    ],
)
def test_neighbourhood_counts_are_exact(shape, window, dtype):
    """`Neighbourhood.counts` counts the neighbours where a predicate holds, in the
    smallest unsigned type that holds the neighbourhood's size, on every path; the
    expected counts are a NumPy loop over each element's clipped neighbourhood."""
    from winact_jax import windows

    geometry = windows.neighbourhood(shape, window)
    x = random_input(shape, seed=61)
    counts = geometry.counts(jnp.asarray(x), lambda v: v <= 0)
    assert counts.dtype == dtype, counts.dtype
    hits = x <= 0
    spatial = geometry.spatial
    expected = np.zeros(shape, np.int64)
    for i in np.ndindex(*spatial):
        box = tuple(slice(max(p - b, 0), min(p + a, s - 1) + 1) for p, (b, a), s in zip(i, geometry.offsets, spatial))
        region = hits[(slice(None), *box)]
        at = (slice(None), *i)
        expected[at] = region.reshape(shape[0], -1, *shape[1 + len(spatial) :]).sum(axis=1)
    np.testing.assert_array_equal(np.asarray(counts), expected)


@pytest.mark.parametrize("shape, window", [((2, 7, 6, 3), 3), ((2, 2, 6, 3), 3), ((2, 9, 8, 2), 5), ((3, 11), 4)])
@pytest.mark.parametrize("transposed", [False, True])
def test_neighbourhood_sums_of_apply_part_and_finish(shape, window, transposed):
    """`Neighbourhood.sums_of` sums `part` of several arrays over each neighbourhood
    and applies `finish` with per-element and per-channel operands, inside the
    regions' loop or after the sum: the same as the padded shifts' sum of the
    `part` array, finished afterwards."""
    from winact_jax import windows

    geometry = windows.neighbourhood(shape, window)
    x, w = (jnp.asarray(random_input(shape, seed=s)) for s in (62, 63))
    per_channel = jnp.linspace(0.5, 1.5, shape[-1])
    offsets = [(a, b) if transposed else (b, a) for b, a in geometry.offsets]
    part = lambda x, w, c: jnp.where(x > 0, c * w, 0)
    finish = lambda s, x, c: jnp.where(x < 0, s, c * x)
    expected_sums = functools.reduce(
        jnp.add, geometry._shifted(part(x, w, jnp.broadcast_to(per_channel, shape)), offsets, jnp.array(0.0))
    )
    got = geometry.sums_of((x, w, per_channel), part, finish, (x, per_channel), transposed=transposed)
    np.testing.assert_allclose(np.asarray(got), np.asarray(finish(expected_sums, x, per_channel)), rtol=1e-6, atol=1e-6)
