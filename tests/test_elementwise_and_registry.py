"""The element-wise baselines and the registry (`get`, `names`, `parameters`,
`Activation`, `ALIASES`), against the specification's last two sections."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import winact_jax as wa

WINDOW_NAMES = ref.WINDOW_NAMES
ELEMENTWISE_NAMES = (
    "relu",
    "leaky_relu",
    "gelu",
    "elu",
    "selu",
    "celu",
    "silu",
    "mish",
    "softplus",
    "tanh",
    "sigmoid",
)
PARAMETRIC_NAMES = ("prelu", "frelu")
WINDOW_OPTIONS = {"mode": "tiled", "over": "spatial"}  # docs/spec.md, round 2
SPEC_ALIASES = {"passive_nelu": "pnelu", "softmax_relu": "softmax_threshold", "swish": "silu"}

# =========================================================================== element-wise

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _softplus(v):
    return math.log1p(math.exp(v))


CLOSED_FORMS = {
    "relu": lambda v: max(v, 0.0),
    "leaky_relu": lambda v: v if v >= 0 else 0.01 * v,
    "gelu": lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
    "elu": lambda v: v if v > 0 else math.exp(v) - 1.0,
    "selu": lambda v: SELU_SCALE * (v if v > 0 else SELU_ALPHA * (math.exp(v) - 1.0)),
    "celu": lambda v: max(v, 0.0) + min(0.0, math.exp(v) - 1.0),
    "silu": lambda v: v * _sigmoid(v),
    "mish": lambda v: v * math.tanh(_softplus(v)),
    "softplus": _softplus,
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
}

# Known numbers, worked independently (erf / exp tables).
KNOWN = {
    "relu": [(-1.0, 0.0), (2.0, 2.0)],
    "leaky_relu": [(-1.0, -0.01), (-3.0, -0.03), (2.0, 2.0)],
    "gelu": [(1.0, 0.8413447460685429), (-1.0, -0.15865525393145707), (0.0, 0.0)],
    "elu": [(-1.0, -0.6321205588285577), (2.0, 2.0)],
    "selu": [(1.0, 1.0507009873554805), (-1.0, -1.1113307378125628)],
    "celu": [(-1.0, -0.6321205588285577), (2.0, 2.0)],
    "silu": [(1.0, 0.7310585786300049), (-1.0, -0.2689414213699951)],
    "mish": [(1.0, 0.8650983882673103), (-1.0, -0.30340146137410895)],
    "softplus": [(0.0, 0.6931471805599453), (1.0, 1.3132616875182228)],
    "tanh": [(0.5, 0.46211715726000974), (-2.0, -0.9640275800758169)],
    "sigmoid": [(0.0, 0.5), (2.0, 0.8807970779778823)],
}

GRID = np.linspace(-4.0, 4.0, 33)


@pytest.mark.parametrize("name", ELEMENTWISE_NAMES)
def test_elementwise_closed_form(name):
    x = jnp.asarray(GRID.reshape(3, 11), jnp.float32)
    y = getattr(wa, name)(x)
    assert y.shape == x.shape and y.dtype == jnp.float32
    expected = np.vectorize(CLOSED_FORMS[name])(GRID).reshape(3, 11)
    np.testing.assert_allclose(np.asarray(y), expected, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", ELEMENTWISE_NAMES)
def test_elementwise_known_values(name):
    xs, ys = zip(*KNOWN[name])
    y = getattr(wa, name)(jnp.asarray([xs], jnp.float32))
    np.testing.assert_allclose(np.asarray(y)[0], ys, rtol=1e-6, atol=1e-7)
    # the registry gives the same function with the same defaults
    np.testing.assert_array_equal(np.asarray(wa.get(name)(jnp.asarray([xs], jnp.float32))), np.asarray(y))


def test_gelu_exact_by_default_tanh_when_approximate():
    x = jnp.asarray([[1.0, -1.0, 2.0]], jnp.float32)
    exact = [0.8413447460685429, -0.15865525393145707, 1.9544997361036416]

    def tanh_form(v):
        return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))

    approx = [tanh_form(v) for v in (1.0, -1.0, 2.0)]  # 0.84119199, -0.15880801, 1.95459769
    assert abs(approx[0] - exact[0]) > 1e-4  # the two forms differ measurably
    np.testing.assert_allclose(np.asarray(wa.gelu(x))[0], exact, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(wa.gelu(x, approximate=True))[0], approx, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(wa.get("gelu")(x))[0], exact, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(wa.get("gelu", approximate=True)(x))[0], approx, rtol=1e-6, atol=1e-7)


def test_leaky_relu_slope_is_0_01():
    x = jnp.asarray([[-100.0, -1.0, 0.0, 5.0]])
    np.testing.assert_allclose(np.asarray(wa.leaky_relu(x)), [[-1.0, -0.01, 0.0, 5.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(wa.get("leaky_relu")(x)), [[-1.0, -0.01, 0.0, 5.0]], rtol=1e-6)
    assert 0.01 in wa.parameters("leaky_relu").values()


def test_swish_is_silu():
    x = jnp.asarray(GRID.reshape(3, 11), jnp.float32)
    np.testing.assert_array_equal(np.asarray(wa.swish(x)), np.asarray(wa.silu(x)))
    np.testing.assert_array_equal(np.asarray(wa.get("swish")(x)), np.asarray(wa.silu(x)))


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "tanh"])
def test_elementwise_keeps_low_precision_dtype(name):
    x = jnp.asarray(GRID.reshape(3, 11), jnp.bfloat16)
    y = getattr(wa, name)(x)
    assert y.dtype == jnp.bfloat16 and y.shape == x.shape
    expected = np.vectorize(CLOSED_FORMS[name])(np.asarray(x.astype(jnp.float32), np.float64))
    np.testing.assert_allclose(np.asarray(y.astype(jnp.float32)), expected, rtol=2e-2, atol=2e-2)


# =========================================================================== names


def test_names_all_and_by_kind():
    window = wa.names("window")
    elementwise = wa.names("elementwise")
    parametric = wa.names("parametric")
    everything = wa.names()
    assert set(window) == set(WINDOW_NAMES) and len(window) == 9
    assert set(elementwise) == set(ELEMENTWISE_NAMES) and len(elementwise) == 11
    assert parametric == PARAMETRIC_NAMES
    assert set(everything) == set(WINDOW_NAMES) | set(ELEMENTWISE_NAMES) | set(PARAMETRIC_NAMES)
    assert len(everything) == len(set(everything)) == 22
    assert all(wa.kind(n) == "parametric" for n in PARAMETRIC_NAMES)
    assert not set(SPEC_ALIASES) & set(everything)  # aliases are not registered names


def test_names_unknown_kind():
    with pytest.raises(ValueError) as excinfo:
        wa.names("windows")
    assert "windows" in str(excinfo.value)


def test_aliases():
    for alias, name in SPEC_ALIASES.items():
        assert wa.ALIASES[alias] == name
    assert set(wa.ALIASES) == set(SPEC_ALIASES)


@pytest.mark.parametrize("alias", ["passive_nelu", "softmax_relu"])
def test_window_aliases_compute_the_same(alias):
    name = SPEC_ALIASES[alias]
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 5, 2)).astype(np.float32))
    expected = np.asarray(getattr(wa, name)(x))
    np.testing.assert_array_equal(np.asarray(getattr(wa, alias)(x)), expected)
    np.testing.assert_array_equal(np.asarray(wa.get(alias)(x)), expected)
    assert wa.parameters(alias) == wa.parameters(name)
    param = "influence" if name == "pnelu" else "threshold"
    np.testing.assert_array_equal(
        np.asarray(wa.get(alias, **{param: 0.35})(x)), np.asarray(getattr(wa, name)(x, **{param: 0.35}))
    )


# =========================================================================== parameters


@pytest.mark.parametrize("name", ref.INFLUENCE_NAMES)
def test_parameters_influence_activations(name):
    assert wa.parameters(name) == {"window": 4, "influence": 0.1, **WINDOW_OPTIONS}


def test_parameters_selections_and_elementwise():
    assert wa.parameters("softmax_threshold") == {"window": 4, "threshold": 0.25, **WINDOW_OPTIONS}
    assert wa.parameters("max") == {"window": 4, **WINDOW_OPTIONS}
    assert wa.parameters("max_relu") == {"window": 4, **WINDOW_OPTIONS}
    assert wa.parameters("gelu")["approximate"] is False
    assert wa.parameters("relu") == {}
    for name in ELEMENTWISE_NAMES:
        assert "window" not in wa.parameters(name)


@pytest.mark.parametrize("name", WINDOW_NAMES)
def test_defaults_are_the_seeds(name):
    """Calling with no parameters is calling with window=4, influence=0.1,
    threshold=0.25."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 2)).astype(np.float32))
    np.testing.assert_array_equal(
        np.asarray(getattr(wa, name)(x)),
        np.asarray(getattr(wa, name)(x, window=4, **ref.params_for(name, 0.1, 0.25))),
    )
    np.testing.assert_array_equal(np.asarray(wa.get(name)(x)), np.asarray(getattr(wa, name)(x)))


# =========================================================================== get, Activation


@pytest.mark.parametrize("name", WINDOW_NAMES)
def test_get_binds_parameters(name):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 6, 6, 2)).astype(np.float32))
    params = ref.params_for(name, influence=0.35, threshold=0.1)
    act = wa.get(name, window=(4, 2), **params)
    assert isinstance(act, wa.Activation)
    assert callable(act)
    np.testing.assert_array_equal(np.asarray(act(x)), np.asarray(getattr(wa, name)(x, window=(4, 2), **params)))
    np.testing.assert_allclose(
        np.asarray(act(x), np.float64), ref.activation(name, np.asarray(x), (4, 2), **params), rtol=1e-5, atol=1e-5
    )


def test_activation_equality_hash_and_static_jit_argument():
    a1 = wa.get("nelu", window=4, influence=0.2)
    a2 = wa.get("nelu", influence=0.2, window=4)
    a3 = wa.get("nelu", influence=0.3, window=4)
    assert a1 == a2 and hash(a1) == hash(a2)
    assert a1 != a3
    assert a1 != wa.get("pnelu", window=4, influence=0.2)
    assert len({a1, a2, a3}) == 2
    x = jnp.asarray([[2.0, -1.0, 0.5, -3.0]])

    @jax.jit
    def apply(v):
        return a1(v)

    np.testing.assert_allclose(np.asarray(apply(x)), [[1.2, 0.0, 0.0, 0.0]], atol=1e-6)  # drain 0.2*4 = 0.8
    static = jax.jit(lambda v, act: act(v), static_argnums=1)
    np.testing.assert_allclose(np.asarray(static(x, a3)), [[0.8, 0.0, 0.0, 0.0]], atol=1e-6)  # drain 1.2
    assert a1.kind == "window" and wa.get("relu").kind == "elementwise"


def test_unknown_activation_lists_every_registered_name():
    for call in (lambda: wa.get("nelu2"), lambda: wa.parameters("nelu2")):
        with pytest.raises(ValueError) as excinfo:
            call()
        msg = str(excinfo.value)
        assert "nelu2" in msg
        for name in (*WINDOW_NAMES, *ELEMENTWISE_NAMES):
            assert name in msg, f"{name} missing from {msg!r}"


@pytest.mark.parametrize(
    "name,param",
    [
        ("nelu", "threshold"),
        ("relu", "window"),
        ("max", "influence"),
        ("softmax_threshold", "influence"),
        ("gelu", "alpha"),
    ],
)
def test_get_unknown_parameter(name, param):
    with pytest.raises((TypeError, ValueError)) as excinfo:
        wa.get(name, **{param: 0.5})
    msg = str(excinfo.value)
    assert param in msg and name in msg, msg


@pytest.mark.parametrize(
    "name,params,error,value",
    [
        ("nelu", {"influence": 1.5}, ValueError, "1.5"),
        ("excitator", {"influence": float("nan")}, ValueError, "nan"),
        ("pnelu", {"influence": "0.1"}, TypeError, "'0.1'"),
        ("softmax_threshold", {"threshold": 0}, ValueError, "0"),
        ("max", {"window": 0}, ValueError, "0"),
        ("max_relu", {"window": (4, 0)}, ValueError, "(4, 0)"),
    ],
)
def test_get_bad_parameter_values(name, params, error, value):
    """Bad values raise, at `get` or at the latest at the first call."""
    (param,) = params
    x = jnp.zeros((1, 8, 8, 1), jnp.float32)
    with pytest.raises(error) as excinfo:
        wa.get(name, **params)(x)
    msg = str(excinfo.value)
    assert param in msg and value in msg, msg


# =========================================================================== round 2


def test_parameters_parametric():
    assert wa.parameters("prelu") == {"slope": 0.25}
    assert wa.parameters("frelu") == {}  # its arrays have no default: `get` cannot bind them


def test_get_frelu_raises_pointing_to_the_function_and_layer():
    with pytest.raises(ValueError) as excinfo:
        wa.get("frelu")
    msg = str(excinfo.value)
    assert "frelu" in msg and "kernel" in msg and "FReLU" in msg, msg


def test_get_prelu_binds_scalar_and_per_channel_slopes():
    x = jnp.asarray([[-2.0, 3.0, -1.0]])
    np.testing.assert_array_equal(np.asarray(wa.get("prelu")(x)), [[-0.5, 3.0, -0.25]])
    per_channel = wa.get("prelu", slope=np.array([0.5, 0.0, 1.0]))
    assert per_channel == wa.get("prelu", slope=[0.5, 0.0, 1.0])  # arrays bound as tuples: hashable
    assert hash(per_channel) == hash(wa.get("prelu", slope=(0.5, 0.0, 1.0)))
    np.testing.assert_array_equal(np.asarray(per_channel(x)), [[-1.0, 3.0, -1.0]])


@pytest.mark.parametrize("name", WINDOW_NAMES)
def test_get_binds_mode_and_over(name):
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 5, 6, 4)).astype(np.float32))
    params = ref.params_for(name, influence=0.35, threshold=0.1)
    act = wa.get(name, window=3, mode="centered", over="channels", **params)
    assert dict(act.params)["mode"] == "centered" and dict(act.params)["over"] == "channels"
    expected = getattr(wa, name)(x, window=3, mode="centered", over="channels", **params)
    np.testing.assert_array_equal(np.asarray(act(x)), np.asarray(expected))


def test_get_binds_per_channel_influence():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(1, 4, 4, 3)).astype(np.float32))
    influence = np.array([0.0, 0.5, 1.0])
    act = wa.get("nelu", window=2, influence=influence)
    assert dict(act.params)["influence"] == (0.0, 0.5, 1.0)
    np.testing.assert_array_equal(np.asarray(act(x)), np.asarray(wa.nelu(x, window=2, influence=influence)))
    with pytest.raises(ValueError) as excinfo:
        wa.get("nelu", influence=[0.1, 1.5])
    assert "influence" in str(excinfo.value) and "1.5" in str(excinfo.value)


@pytest.mark.parametrize(
    "params,error,parts",
    [
        ({"mode": "center"}, ValueError, ["mode", "'center'", "'tiled'", "'centered'"]),
        ({"mode": None}, TypeError, ["mode", "None", "'tiled'", "'centered'"]),
        ({"over": "channel"}, ValueError, ["over", "'channel'", "'spatial'", "'channels'"]),
        ({"over": 1}, TypeError, ["over", "1", "'spatial'", "'channels'"]),
        ({"over": "channels", "window": (2, 2)}, TypeError, ["window", "(2, 2)", "int", "channels"]),
    ],
)
def test_get_validates_mode_and_over(params, error, parts):
    with pytest.raises(error) as excinfo:
        wa.get("nelu", **params)
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_exports():
    for name in ("prelu", "frelu", "Neighbourhood", "Tiling", "MODES", "OVERS"):
        assert name in wa.__all__ and hasattr(wa, name), name
    assert wa.MODES == ("tiled", "centered") and wa.OVERS == ("spatial", "channels")
