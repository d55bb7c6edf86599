"""Every activation by name: `get`, `names`, `parameters`.

    >>> import winact_jax as wa
    >>> act = wa.get("excitator", window=4)       # a callable x -> y, parameters bound
    >>> act
    Activation('excitator', window=4)
    >>> wa.names("window")[:3]
    ('nelu', 'pnelu', 'excitator')
    >>> wa.get("max", window=2, over="channels")  # local winner-take-all
    Activation('max', over='channels', window=2)

Names are the specification's; aliases (`passive_nelu`, `softmax_relu`, `swish`)
resolve to the same functions. An `Activation` is hashable and compares by name and
parameters, so it can be a static argument of `jax.jit` or a field of a model; a
per-channel `influence` (or `slope`) is bound as a tuple of floats for that reason.

Three kinds: `"window"` (the nine window activations), `"elementwise"` (the
baselines) and `"parametric"` (`prelu`, `frelu`: learned per-channel parameters).
`get("prelu", slope=...)` binds a fixed slope. `frelu`'s kernel, scale and bias are
learned arrays with no sensible fixed value, so `get("frelu")` raises and points to
`winact_jax.frelu` (the pure function) and to the `FReLU` layer of
`winact_jax.models`, which learns them; `parameters("frelu")` lists no parameter.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from winact_jax import elementwise, parametric, window_activations, windows

WINDOW = "window"
ELEMENTWISE = "elementwise"
PARAMETRIC = "parametric"
KINDS = (WINDOW, ELEMENTWISE, PARAMETRIC)

_FUNCTIONS: dict[str, tuple[str, Callable[..., jax.Array]]] = {
    "nelu": (WINDOW, window_activations.nelu),
    "pnelu": (WINDOW, window_activations.pnelu),
    "excitator": (WINDOW, window_activations.excitator),
    "inhibitor": (WINDOW, window_activations.inhibitor),
    "excitator_v2": (WINDOW, window_activations.excitator_v2),
    "inhibitor_v2": (WINDOW, window_activations.inhibitor_v2),
    "softmax_threshold": (WINDOW, window_activations.softmax_threshold),
    "max": (WINDOW, window_activations.max),
    "max_relu": (WINDOW, window_activations.max_relu),
    "relu": (ELEMENTWISE, elementwise.relu),
    "leaky_relu": (ELEMENTWISE, elementwise.leaky_relu),
    "gelu": (ELEMENTWISE, elementwise.gelu),
    "elu": (ELEMENTWISE, elementwise.elu),
    "selu": (ELEMENTWISE, elementwise.selu),
    "celu": (ELEMENTWISE, elementwise.celu),
    "silu": (ELEMENTWISE, elementwise.silu),
    "mish": (ELEMENTWISE, elementwise.mish),
    "softplus": (ELEMENTWISE, elementwise.softplus),
    "tanh": (ELEMENTWISE, elementwise.tanh),
    "sigmoid": (ELEMENTWISE, elementwise.sigmoid),
    "prelu": (PARAMETRIC, parametric.prelu),
    "frelu": (PARAMETRIC, parametric.frelu),
}

# Parametric activations whose parameters are learned arrays `get` cannot bind.
_UNBINDABLE = {
    "frelu": "its kernel, scale and bias are learned arrays: call winact_jax.frelu(x, kernel, scale, bias), "
    "or use the FReLU layer of winact_jax.models, which learns them",
}

ALIASES: dict[str, str] = {
    "passive_nelu": "pnelu",
    "softmax_relu": "softmax_threshold",
    "swish": "silu",
}

# Checks run by `get`, so a bad configuration fails when it is made, not at the first
# forward pass. `window` is checked against the input's rank again at call time.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "window": windows.check_window,
    "influence": window_activations.check_influence,
    "threshold": window_activations.check_threshold,
    "mode": windows.check_mode,
    "over": windows.check_over,
}

# Array-valued parameters that `get` binds as tuples (hashable).
_PER_CHANNEL = ("influence", "slope")


def _bindable(param: str, value):
    """`value` as `get` stores it: a per-channel array as a tuple of floats."""
    if param in _PER_CHANNEL and (isinstance(value, (list, np.ndarray, jax.Array))):
        if isinstance(value, jax.core.Tracer):
            raise TypeError(
                f"{param} bound by get() must be concrete (get() binds fixed values; a traced or learned "
                f"{param} is passed to the function itself); got a traced array"
            )
        array = np.asarray(value)
        if array.ndim == 0:
            return array.item()
        if array.ndim == 1 and array.dtype.kind in "fiu":
            return tuple(float(v) for v in array)
    return value


def _all_names() -> str:
    aliases = ", ".join(f"{a} (= {n})" for a, n in ALIASES.items())
    return f"{', '.join(_FUNCTIONS)}; aliases: {aliases}"


def canonical_name(name: str) -> str:
    """Resolves an alias; raises `ValueError` listing every name if `name` is unknown."""
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a str; got {name!r} ({type(name).__name__})")
    key = ALIASES.get(name, name)
    if key not in _FUNCTIONS:
        raise ValueError(f"unknown activation {name!r}; registered names: {_all_names()}")
    return key


def kind(name: str) -> str:
    """`"window"`, `"elementwise"` or `"parametric"`."""
    return _FUNCTIONS[canonical_name(name)][0]


def function(name: str) -> Callable[..., jax.Array]:
    """The pure function registered under `name` (or an alias)."""
    return _FUNCTIONS[canonical_name(name)][1]


def parameters(name: str) -> dict[str, Any]:
    """The keyword parameters `name` accepts, with their defaults.

    Parameters without a default (`frelu`'s learned arrays, which `get` cannot
    bind) are not listed.

    >>> parameters("nelu")
    {'window': 4, 'influence': 0.1, 'mode': 'tiled', 'over': 'spatial'}
    >>> parameters("frelu")
    {}
    """
    signature = inspect.signature(function(name))
    return {
        p.name: p.default for p in list(signature.parameters.values())[1:] if p.default is not inspect.Parameter.empty
    }


def names(kind: str | None = None) -> tuple[str, ...]:
    """Every registered activation name (aliases excluded), or those of one kind.

    Args:
      kind: `None` for all, `"window"`, `"elementwise"` or `"parametric"`.
    """
    if kind is None:
        return tuple(_FUNCTIONS)
    if kind not in KINDS:
        raise ValueError(f"kind must be None, {WINDOW!r}, {ELEMENTWISE!r} or {PARAMETRIC!r}; got {kind!r}")
    return tuple(n for n, (k, _) in _FUNCTIONS.items() if k == kind)


@dataclasses.dataclass(frozen=True)
class Activation:
    """An activation with its parameters bound: `Activation(...)(x)` is `f(x, **params)`."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def __call__(self, x) -> jax.Array:
        return function(self.name)(x, **dict(self.params))

    @property
    def kind(self) -> str:
        return kind(self.name)

    def __repr__(self) -> str:
        bound = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"Activation({self.name!r}{bound})"


def get(name: str, **params) -> Activation:
    """The activation `name` as a callable `x -> y` with `params` bound.

    Unknown names and parameters, and bad parameter values, raise here (a window
    that is not an int with `over="channels"` included; a window's length and a
    per-channel array's length are checked against the input at call time).
    `get("frelu")` raises: see the module docstring.

    Example:
      >>> import jax.numpy as jnp
      >>> get("nelu", influence=0.5)(jnp.ones((1, 4)))
      Array([[1., 1., 1., 1.]], dtype=float32)
      >>> get("nelu", window=3, mode="centered", influence=(0.5, 0.0, 0.5))
      Activation('nelu', influence=(0.5, 0.0, 0.5), mode='centered', window=3)
    """
    key = canonical_name(name)
    if key in _UNBINDABLE:
        raise ValueError(f"activation {key!r} cannot be bound by get(): {_UNBINDABLE[key]}")
    accepted = parameters(key)
    params = {param: _bindable(param, value) for param, value in params.items()}
    for param, value in params.items():
        if param not in accepted:
            raise TypeError(
                f"activation {key!r} got an unexpected parameter {param!r}={value!r}; "
                f"it accepts: {', '.join(accepted) or 'no parameters'}"
            )
        if param in _CHECKS:
            _CHECKS[param](value)
    if params.get("over") == windows.CHANNELS and "window" in params:
        windows.geometry((1, 1), params["window"], over=windows.CHANNELS)  # an int window, or raises
    return Activation(key, tuple(sorted(params.items())))
