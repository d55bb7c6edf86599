"""The parametric comparators `prelu` and `frelu` (docs/spec.md, "Parametric
comparators"): values against `reference.py` (FReLU against a loop
cross-correlation), gradients in float64, dtypes, jit, bad input, doctests."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import winact_jax as wa
from winact_jax import parametric


def random(shape, seed, scale=1.0, dtype=np.float32):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def test_doctests():
    failed, attempted = doctest.testmod(parametric, verbose=False)
    assert attempted >= 2 and failed == 0


# =========================================================================== prelu


def test_prelu_hand_worked():
    x = jnp.asarray([[-2.0, 0.0, 3.0], [-4.0, -1.0, 0.5]])
    np.testing.assert_array_equal(np.asarray(wa.prelu(x)), [[-0.5, 0.0, 3.0], [-1.0, -0.25, 0.5]])
    np.testing.assert_array_equal(
        np.asarray(wa.prelu(x, slope=jnp.asarray([0.0, 2.0, -1.0]))), [[0.0, 0.0, 3.0], [0.0, -2.0, 0.5]]
    )


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 3, 3, 4), (1, 2, 3, 2, 4)])
def test_prelu_matches_reference(shape):
    x = random(shape, seed=1)
    slope = np.linspace(-0.5, 1.5, shape[-1])
    for s in (0.3, slope, jnp.asarray(slope)):
        y = jax.jit(wa.prelu)(jnp.asarray(x), s)
        assert y.shape == x.shape and y.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(y), ref.prelu(x, s), rtol=1e-6, atol=1e-7)


def test_prelu_gradients_float64():
    x = random((3, 4, 5), seed=2, dtype=np.float64)
    x[np.abs(x) < 1e-2] = 0.5  # away from the kink
    with jax.enable_x64(True):
        slope = jnp.asarray([0.1, 0.2, 0.3, 0.4, 0.5], jnp.float64)
        check_grads(wa.prelu, (jnp.asarray(x), slope), order=1, modes=("rev",), eps=1e-4)
        check_grads(wa.prelu, (jnp.asarray(x), jnp.float64(0.2)), order=1, modes=("rev",), eps=1e-4)
        da = jax.grad(lambda s: jnp.sum(wa.prelu(jnp.asarray(x), s)))(slope)
        np.testing.assert_allclose(np.asarray(da), np.minimum(x, 0).sum(axis=(0, 1)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_prelu_low_precision(dtype):
    x = jnp.asarray(random((4, 6), seed=3)).astype(dtype)
    y = wa.prelu(x, jnp.full((6,), 0.25))
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float32), ref.prelu(np.asarray(x, np.float32), 0.25), rtol=1e-2)


@pytest.mark.parametrize(
    "slope,error,parts",
    [
        (np.ones(3), ValueError, ["slope", "(3,)", "(4,)"]),
        (np.ones((4, 1)), ValueError, ["slope", "(4, 1)"]),
        (float("nan"), ValueError, ["slope", "non-finite"]),
        (np.array([0.1, np.inf, 0.1, 0.1]), ValueError, ["slope", "non-finite"]),
        ("0.25", TypeError, ["slope", "'0.25'"]),
        (None, TypeError, ["slope", "None"]),
        (np.array([True, False, True, True]), TypeError, ["slope", "bool"]),
    ],
)
def test_prelu_bad_slope(slope, error, parts):
    with pytest.raises(error) as excinfo:
        wa.prelu(jnp.zeros((2, 4)), slope)
    for part in parts:
        assert part in str(excinfo.value), str(excinfo.value)


def test_prelu_bad_x():
    with pytest.raises(TypeError) as excinfo:
        wa.prelu(jnp.ones((2, 4), jnp.int32))
    assert "x" in str(excinfo.value) and "int32" in str(excinfo.value)


# =========================================================================== frelu


def _frelu_params(k_h, k_w, channels, seed):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(k_h, k_w, channels)).astype(np.float32),
        rng.uniform(0.5, 1.5, size=channels).astype(np.float32),
        rng.normal(size=channels).astype(np.float32),
    )


@pytest.mark.parametrize("k_h,k_w", [(3, 3), (2, 2), (1, 1), (5, 3)])
def test_frelu_matches_loop_cross_correlation(k_h, k_w):
    x = random((2, 5, 6, 3), seed=4)
    kernel, scale, bias = _frelu_params(k_h, k_w, 3, seed=5)
    y = jax.jit(wa.frelu)(jnp.asarray(x), kernel, scale, bias)
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), ref.frelu(x, kernel, scale, bias), rtol=1e-5, atol=1e-5)


def test_frelu_hand_worked_is_a_cross_correlation():
    """A kernel with a single 1 at (0, 1) of a 3x3 picks the pixel one row up
    (offset -1): cross-correlation, not convolution (which would pick one row down)."""
    x = jnp.asarray(np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1) - 20)  # all negative
    kernel = np.zeros((3, 3, 1), np.float32)
    kernel[0, 1, 0] = 1.0
    y = wa.frelu(x, kernel, np.ones(1), np.zeros(1))
    expected = np.maximum(np.asarray(x)[0, :, :, 0], [[0, 0, 0], [-20, -19, -18], [-17, -16, -15]])
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], expected)


def test_frelu_gradients_float64():
    x = random((1, 4, 4, 2), seed=6, dtype=np.float64)
    kernel, scale, bias = (np.asarray(p, np.float64) for p in _frelu_params(3, 3, 2, seed=7))
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(a) for a in (x, kernel, scale, bias))
        check_grads(wa.frelu, args, order=1, modes=("rev",), eps=1e-5, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_frelu_low_precision(dtype):
    x = jnp.asarray(random((1, 4, 4, 2), seed=8)).astype(dtype)
    kernel, scale, bias = _frelu_params(3, 3, 2, seed=9)
    y = wa.frelu(x, kernel, scale, bias)
    assert y.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(y, np.float32), ref.frelu(np.asarray(x, np.float32), kernel, scale, bias), rtol=2e-2, atol=2e-2
    )


@pytest.mark.parametrize(
    "change,error,parts",
    [
        (dict(x=np.zeros((2, 4, 3), np.float32)), ValueError, ["x", "NHWC", "(2, 4, 3)"]),
        (dict(x=np.zeros((1, 4, 4, 3), np.int32)), TypeError, ["x", "int32"]),
        (dict(kernel=np.zeros((3, 3, 2))), ValueError, ["kernel", "(3, 3, 2)", "(k, k, 3)"]),
        (dict(kernel=np.zeros((3, 3))), ValueError, ["kernel", "(3, 3)"]),
        (dict(scale=np.ones(2)), ValueError, ["scale", "(2,)", "(3,)"]),
        (dict(scale=1.0), ValueError, ["scale", "()", "(3,)"]),
        (dict(bias=np.zeros((3, 1))), ValueError, ["bias", "(3, 1)"]),
        (dict(bias=np.array([0.0, np.nan, 0.0])), ValueError, ["bias", "non-finite"]),
    ],
)
def test_frelu_bad_input(change, error, parts):
    args = dict(x=np.zeros((1, 4, 4, 3), np.float32), kernel=np.zeros((3, 3, 3)), scale=np.ones(3), bias=np.zeros(3))
    args.update(change)
    with pytest.raises(error) as excinfo:
        wa.frelu(args["x"], args["kernel"], args["scale"], args["bias"])
    for part in parts:
        assert part in str(excinfo.value), str(excinfo.value)


def test_frelu_large_kernels_take_the_convolution(monkeypatch):
    """Kernels of more than `MAX_TAPS` taps go through the grouped convolution;
    forced for a 3x3 here, it gives the same values and gradients."""
    x = random((1, 5, 4, 3), seed=10)
    kernel, scale, bias = _frelu_params(3, 3, 3, seed=11)
    taps = jax.value_and_grad(lambda k: jnp.sum(wa.frelu(jnp.asarray(x), k, scale, bias) ** 2))(kernel)
    monkeypatch.setattr(parametric, "MAX_TAPS", 0)
    conv = jax.value_and_grad(lambda k: jnp.sum(wa.frelu(jnp.asarray(x), k, scale, bias) ** 2))(kernel)
    np.testing.assert_allclose(float(conv[0]), float(taps[0]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(conv[1]), np.asarray(taps[1]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(wa.frelu(jnp.asarray(x), kernel, scale, bias)),
        ref.frelu(x, kernel, scale, bias),
        rtol=1e-5,
        atol=1e-5,
    )
