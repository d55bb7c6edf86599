"""How a model gets its activations: what `act` means, and the layers that apply it.

Every model in this package takes `act` (a callable, or a name registered in
`winact_jax`), `act_params`, `placement` and `learn_influence`, and asks
`activations` for two layer factories: one for the nonlinearity after its stem,
one for every other. Each nonlinearity is its own layer, built with its channel
count, so the parametric ones learn per-layer, per-channel parameters:

* `Stateless(function)`: any callable, or a named activation with its parameters
  bound (`winact_jax.get`); no parameters.
* `PReLU(channels)`: `winact_jax.prelu` with a learned per-channel slope.
* `FReLU(channels, kernel_size)`: `max(x, BatchNorm(depthwise_conv(x)))`, the
  funnel activation with a real batch norm (see `winact_jax.frelu` and
  docs/spec.md, "Parametric comparators").
* `LearnableInfluence(name, channels)`: a window activation whose `influence` is a
  learned per-channel parameter in [0, 1].

    >>> stem, body = activations("nelu", "stem", {"window": 2, "influence": 0.5})
    >>> stem(16)
    Stateless(function=Activation('nelu', influence=0.5, window=2))
    >>> body(16).function.__name__
    'relu'

Every layer is an `ActivationLayer`: under `nnx.view(model, record_statistics=True)`
it sows a summary of its output (`nnx.Intermediate`), which
`winact_jax.models.statistics` collects; otherwise it records nothing and costs
nothing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.typing import Dtype

import winact_jax
from winact_jax import parametric
from winact_jax.backends import materialize, materialize_cotangent
from winact_jax.models.layers import BATCH_NORM_MOMENTUM
from winact_jax.parametric import DEFAULT_SLOPE
from winact_jax.registry import function as registered_function
from winact_jax.window_activations import check_influence
from winact_jax.windows import CHANNELS, _is_int

ActivationLike = str | Callable[[jax.Array], jax.Array]

PLACEMENTS = ("all", "stem")

# Parameters a caller may pass for any activation (the training CLI passes the same
# flags whatever the activation): each activation takes the ones it accepts and
# ignores the rest, so `relu` with `window=4` is plain ReLU. Any other parameter goes
# to `winact_jax.get` (or to the parametric layer's options), which rejects it when
# the activation does not take it, so a typo fails loudly instead of being dropped.
SHARED_PARAMS = ("window", "influence", "threshold")

# Ma et al. (2020) use a 3x3 funnel.
DEFAULT_FRELU_KERNEL_SIZE = 3

# A learned influence is sigmoid(logit), which never reaches 0 or 1: an influence
# configured at an end starts this far inside [0, 1].
INFLUENCE_MARGIN = 1e-6

# The name under which an `ActivationLayer` sows its `OutputSummary`.
OUTPUT_SUMMARY = "output_summary"


# --------------------------------------------------------------------------- summaries


class OutputSummary(NamedTuple):
    """What an activation layer records of one output `y` (float32 / int32 arrays).

    Attributes:
      size: number of elements of `y`.
      zeros: number of elements exactly zero.
      total: sum of `y` (float32).
      maximum: max of `y` (float32).
      live: `(C,)` bool, True where a channel (last axis) is nonzero somewhere.
    """

    size: jax.Array
    zeros: jax.Array
    total: jax.Array
    maximum: jax.Array
    live: jax.Array


def summarize_output(y: jax.Array) -> OutputSummary:
    """The `OutputSummary` of one activation output `y` (channels last)."""
    batch_axes = tuple(range(y.ndim - 1))
    return OutputSummary(
        size=jnp.asarray(y.size, jnp.int32),
        zeros=jnp.sum(y == 0, dtype=jnp.int32),
        total=jnp.sum(y, dtype=jnp.float32),
        maximum=jnp.max(y).astype(jnp.float32),
        live=jnp.any(y != 0, axis=batch_axes),
    )


def influence_activations() -> tuple[str, ...]:
    """Every registered activation that takes `influence` (the ones `learn_influence` applies to)."""
    return tuple(n for n in winact_jax.names() if "influence" in winact_jax.parameters(n))


def check_takes_influence(name: str) -> None:
    """Raises `ValueError` unless the activation `name` takes an `influence` to learn."""
    if "influence" not in winact_jax.parameters(name):
        raise ValueError(
            f"learn_influence applies to activations that take an influence "
            f"({', '.join(influence_activations())}); {name!r} takes none"
        )


# --------------------------------------------------------------------------- layers


def _check_channels(channels) -> int:
    if not _is_int(channels) or channels < 1:
        raise ValueError(f"channels must be a positive int; got {channels!r}")
    return int(channels)


def check_slope(slope) -> float:
    """PReLU's initial slope: a finite real number."""
    if isinstance(slope, bool) or not isinstance(slope, numbers.Real) or not math.isfinite(slope):
        raise ValueError(f"PReLU's slope (its initial value) must be a finite real number; got {slope!r}")
    return float(slope)


def check_kernel_size(kernel_size) -> int:
    """FReLU's funnel size: a positive int."""
    if not _is_int(kernel_size) or kernel_size < 1:
        raise ValueError(f"FReLU's kernel_size must be a positive int; got {kernel_size!r}")
    return int(kernel_size)


def _windows_channels(function) -> bool:
    return isinstance(function, winact_jax.Activation) and dict(function.params).get("over") == CHANNELS


class ActivationLayer(nnx.Module):
    """A model's nonlinearity: `__call__` applies `activate` and may record its output.

    Subclasses implement `activate(x) -> y`. With `record_statistics` True (set it
    with `nnx.view(model, record_statistics=True)`, never on a model being trained)
    the layer sows its output's `OutputSummary` under `OUTPUT_SUMMARY`, for
    `nnx.capture(..., nnx.Intermediate)` to collect.
    """

    # Static: False keeps the sow out of the traced program entirely.
    record_statistics: bool = False

    def set_view(self, record_statistics: bool | None = None):
        """`nnx.view(model, record_statistics=True)` turns recording on."""
        if record_statistics is not None:
            self.record_statistics = bool(record_statistics)

    def activate(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    @property
    def windows_channels(self) -> bool:
        """True for a window activation over channel windows (`over="channels"`),
        whose backward pass reads its cotangent's elements several times."""
        return False

    def __call__(self, x: jax.Array) -> jax.Array:
        # Every consumer (the next convolution and its weight gradient, a residual
        # sum) reads the output instead of recomputing the activation: `materialize`.
        y = materialize(self.activate(x))
        if self.windows_channels:
            y = materialize_cotangent(y)
        if self.record_statistics:
            self.sow(nnx.Intermediate, OUTPUT_SUMMARY, summarize_output(y))
        return y


class Stateless(ActivationLayer):
    """A parameter-free activation `function` (any callable `x -> y`) as a layer."""

    def __init__(self, function: Callable[[jax.Array], jax.Array]):
        if not callable(function):
            raise TypeError(f"function must be callable; got {function!r}")
        self.function = function

    def activate(self, x: jax.Array) -> jax.Array:
        return self.function(x)

    @property
    def windows_channels(self) -> bool:
        return _windows_channels(self.function)

    def __repr__(self) -> str:
        return f"Stateless(function={self.function!r})"


class _PerChannel(ActivationLayer):
    """An activation layer with per-channel parameters for `channels` channels."""

    channels: int

    def _check_input(self, x: jax.Array) -> None:
        if x.ndim < 2 or x.shape[-1] != self.channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.channels} channels (the "
                f"input's last axis); got an input of shape {tuple(x.shape)}"
            )


class PReLU(_PerChannel):
    """PReLU (He et al., 2015) with a learned slope per channel: `winact_jax.prelu`.

    `y = x` where `x > 0`, else `slope[c] * x`, in the input's dtype; the slope is a
    float32 parameter, initialised at `init` (He et al.: 0.25).

    Example:
      >>> layer = PReLU(2, init=0.5)
      >>> layer(jnp.array([[-2.0, 3.0]]))
      Array([[-1.,  3.]], dtype=float32)
    """

    def __init__(self, channels: int, init: float = DEFAULT_SLOPE):
        """
        Args:
          channels: the input's last axis.
          init: every channel's initial slope, a finite real number.
        """
        self.channels = _check_channels(channels)
        self.slope = nnx.Param(jnp.full((self.channels,), check_slope(init), jnp.float32))

    def activate(self, x: jax.Array) -> jax.Array:
        self._check_input(x)
        return winact_jax.prelu(x, self.slope[...])


class FReLU(_PerChannel):
    """FReLU (Ma et al., 2020): `max(x, BatchNorm(depthwise_conv(x)))`.

    The funnel `T` is a per-channel `kernel_size x kernel_size` cross-correlation
    with zero (`SAME`) padding, followed by a real `nnx.BatchNorm` (PyTorch's
    momentum, `BATCH_NORM_MOMENTUM`): batch statistics in training mode, running
    ones after `model.eval()`, where the layer equals `winact_jax.frelu` with the
    batch norm folded into `scale` and `bias`. The input is NHWC; a `(batch, C)`
    input (a dense layer's features) is a 1x1 map, where the funnel reduces to the
    kernel's centre tap.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = DEFAULT_FRELU_KERNEL_SIZE,
        *,
        dtype: Dtype | None = None,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          channels: the input's last axis.
          kernel_size: the funnel's height and width, a positive int.
          dtype: compute dtype of the funnel (default: the input's); parameters
            are float32.
          rngs: draws the kernel, as PyTorch's default init of a depthwise
            convolution: U(-1/k, 1/k).
        """
        self.channels = _check_channels(channels)
        self.kernel_size = check_kernel_size(kernel_size)
        self.dtype = dtype
        bound = 1.0 / self.kernel_size  # 1/sqrt(fan_in), fan_in = k*k
        shape = (self.kernel_size, self.kernel_size, self.channels)
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))
        self.norm = nnx.BatchNorm(
            self.channels,
            momentum=BATCH_NORM_MOMENTUM,
            epsilon=1e-5,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )

    def activate(self, x: jax.Array) -> jax.Array:
        self._check_input(x)
        if x.ndim not in (2, 4):
            raise ValueError(f"FReLU takes NHWC feature maps or (batch, features); got shape {tuple(x.shape)}")
        dtype = self.dtype or x.dtype
        maps = x.astype(dtype).reshape(x.shape[0], 1, 1, -1) if x.ndim == 2 else x.astype(dtype)
        funnel = self.norm(parametric.depthwise_conv(maps, self.kernel[...].astype(dtype)))
        return jnp.maximum(maps, funnel.astype(dtype)).reshape(x.shape)

    def folded_affine(self) -> tuple[jax.Array, jax.Array]:
        """`(scale, bias)` of the batch norm on its running statistics, for
        `winact_jax.frelu(x, layer.kernel[...], scale, bias)`."""
        norm = self.norm
        scale = norm.scale[...] / jnp.sqrt(norm.var[...] + norm.epsilon)
        return scale, norm.bias[...] - norm.mean[...] * scale


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), INFLUENCE_MARGIN, 1.0 - INFLUENCE_MARGIN)
    return np.log(p) - np.log1p(-p)


class LearnableInfluence(_PerChannel):
    """A window activation whose `influence` is learned, one value per channel.

    The parameter is a logit, `influence = sigmoid(influence_logit)`, so every
    gradient step keeps the influence in [0, 1]. It starts at the configured
    influence (an end, 0 or 1, starts `INFLUENCE_MARGIN` inside).

    Example:
      >>> layer = LearnableInfluence("nelu", 3, influence=0.5, window=2)
      >>> layer.influence
      Array([0.5, 0.5, 0.5], dtype=float32)
    """

    def __init__(self, name: str, channels: int, influence=None, **params):
        """
        Args:
          name: a registered activation that takes `influence`, e.g. `"nelu"`.
          channels: the input's last axis.
          influence: the initial influence, a number in [0, 1] or a `(channels,)`
            array of them (default: the activation's default).
          **params: the activation's other parameters, e.g. `window=4`,
            `mode="centered"`.
        """
        name = winact_jax.canonical_name(name)
        check_takes_influence(name)
        accepted = winact_jax.parameters(name)
        self.channels = _check_channels(channels)
        if influence is None:
            influence = accepted["influence"]
        initial = np.asarray(check_influence(influence, channels=self.channels), np.float64)
        # Validated now, so a bad window or mode fails when the model is built.
        self.activation = winact_jax.get(name, **params)
        self.influence_logit = nnx.Param(jnp.asarray(np.broadcast_to(_logit(initial), (self.channels,)), jnp.float32))

    @property
    def influence(self) -> jax.Array:
        """The current `(channels,)` influence, in [0, 1]."""
        return jax.nn.sigmoid(self.influence_logit[...])

    @property
    def windows_channels(self) -> bool:
        return _windows_channels(self.activation)

    def activate(self, x: jax.Array) -> jax.Array:
        self._check_input(x)
        function = registered_function(self.activation.name)
        return function(x, **dict(self.activation.params), influence=self.influence)


# --------------------------------------------------------------------------- act


def _reject_unknown(name: str, params: dict, accepted: str) -> None:
    unknown = sorted(set(params) - {accepted})
    if unknown:
        raise TypeError(
            f"activation {name!r} got unexpected parameter(s) "
            f"{', '.join(f'{k}={params[k]!r}' for k in unknown)}; it accepts: {accepted}"
        )


def _prelu_options(params: dict) -> dict:
    _reject_unknown("prelu", params, "slope")
    return {"init": check_slope(params["slope"])} if "slope" in params else {}


def _frelu_options(params: dict) -> dict:
    _reject_unknown("frelu", params, "kernel_size")
    return {"kernel_size": check_kernel_size(params["kernel_size"])} if "kernel_size" in params else {}


# The activations whose parameters are learned: a layer class, and the layer
# options its `act_params` give.
PARAMETRIC_LAYERS: dict[str, tuple[type, Callable[[dict], dict]]] = {
    "prelu": (PReLU, _prelu_options),
    "frelu": (FReLU, _frelu_options),
}


def _own_params(name: str, act_params: Mapping[str, Any]) -> dict:
    """`act_params` without the `SHARED_PARAMS` that `name` does not take."""
    if name in PARAMETRIC_LAYERS:
        accepted: Any = ()
    else:
        accepted = winact_jax.parameters(name)
    return {k: v for k, v in act_params.items() if k in accepted or k not in SHARED_PARAMS}


def resolve(act: ActivationLike, act_params: Mapping[str, Any] | None = None) -> Callable:
    """`act` checked with `act_params`: a callable `x -> y`, or a layer class.

    Args:
      act: a callable, used as is, or a name (or alias) registered in `winact_jax`.
      act_params: parameters for a named activation, e.g. `{"window": 4,
        "influence": 0.1}`; those of `SHARED_PARAMS` it does not accept are ignored.

    Returns:
      The activation with its parameters bound (`winact_jax.get`), or `act` itself
      for a callable. For an activation with learned parameters (`prelu`,
      `frelu`), which models build as a layer per site (see `layer_factory`), the
      layer class (`PReLU`, `FReLU`), its options checked.

    Raises:
      ValueError: `act` is an unknown name (the message lists every name), or a
        parameter has a bad value.
      TypeError: `act` is neither, a parameter is unknown to the activation, or
        `act_params` is given with a callable (whose parameters are its own).
    """
    act_params = dict(act_params or {})
    if isinstance(act, str):
        if act in PARAMETRIC_LAYERS:
            layer, options_of = PARAMETRIC_LAYERS[act]
            options_of(_own_params(act, act_params))
            return layer
        return winact_jax.get(act, **_own_params(winact_jax.canonical_name(act), act_params))
    if callable(act):
        if act_params:
            raise TypeError(
                f"act_params={act_params!r} applies to an activation given by name; "
                f"act={act!r} is a callable: bind its parameters yourself, e.g. "
                "functools.partial(winact_jax.nelu, window=2)"
            )
        return act
    raise TypeError(
        f"act must be a callable or an activation name (one of: "
        f"{', '.join(winact_jax.names())}); got {act!r} ({type(act).__name__})"
    )


LayerFactory = Callable[[int], ActivationLayer]


def layer_factory(
    act: ActivationLike,
    act_params: Mapping[str, Any] | None = None,
    *,
    learn_influence: bool = False,
    dtype: Dtype | None = None,
    rngs: nnx.Rngs | None = None,
) -> LayerFactory:
    """`channels -> ActivationLayer` for `act`; every option is checked here.

    Args:
      act: a callable (a `Stateless` layer), a registered name, or a
        `winact_jax.Activation` (a name with parameters bound, `winact_jax.get`).
        `"prelu"` and `"frelu"` give `PReLU` and `FReLU` layers.
      act_params: parameters of a named `act`, as for `resolve`; `prelu` takes
        `slope` (its initial slope), `frelu` takes `kernel_size`.
      learn_influence: learn a per-channel influence (`LearnableInfluence`),
        starting at the configured one; only for activations that take one.
      dtype: compute dtype of a `FReLU`'s funnel.
      rngs: randomness for layers that draw their initial parameters (`FReLU`).

    Raises:
      ValueError, TypeError: an unknown activation or parameter, a bad value, or
        `learn_influence` with an activation that takes no influence.
    """
    if not isinstance(learn_influence, bool):
        raise TypeError(f"learn_influence must be a bool; got {learn_influence!r}")
    act_params = dict(act_params or {})
    if isinstance(act, str) and act in PARAMETRIC_LAYERS:
        if learn_influence:
            check_takes_influence(act)
        layer, options_of = PARAMETRIC_LAYERS[act]
        options = options_of(_own_params(act, act_params))  # checked now, before any layer
        if layer is FReLU:

            def build_frelu(channels: int) -> ActivationLayer:
                if rngs is None:
                    raise ValueError("FReLU draws its kernel: pass rngs to layer_factory / activations")
                return FReLU(channels, **options, dtype=dtype, rngs=rngs)

            return build_frelu
        return lambda channels: layer(channels, **options)

    function = resolve(act, act_params)
    if not learn_influence:
        return lambda channels: Stateless(function)
    if not isinstance(function, winact_jax.Activation):
        raise TypeError(
            f"learn_influence needs an activation given by name (e.g. act='nelu'); got the callable {act!r}"
        )
    check_takes_influence(function.name)
    # `resolve` (or `winact_jax.get`) has checked every parameter already.
    params = dict(function.params)
    influence = params.pop("influence", None)
    return lambda channels: LearnableInfluence(function.name, channels, influence, **params)


class Activations(NamedTuple):
    """Factories of the layer after the stem and of the layer at every other nonlinearity."""

    stem: LayerFactory
    body: LayerFactory


def activations(
    act: ActivationLike,
    placement: str = "all",
    act_params: Mapping[str, Any] | None = None,
    *,
    learn_influence: bool = False,
    dtype: Dtype | None = None,
    rngs: nnx.Rngs | None = None,
) -> Activations:
    """Resolves `act` and places it: a layer factory per kind of site.

    Args:
      act, act_params, learn_influence, dtype, rngs: see `layer_factory`.
      placement: `"all"`: `act` at every nonlinearity. `"stem"`: `act` only at the
        first one (after the stem) and ReLU everywhere else, the fine-tuning
        protocol of the window-activation paper.

    Raises:
      ValueError, TypeError: as `layer_factory`, or an unknown `placement`.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(map(repr, PLACEMENTS))}; got {placement!r}")
    chosen = layer_factory(act, act_params, learn_influence=learn_influence, dtype=dtype, rngs=rngs)
    if placement == "all":
        return Activations(stem=chosen, body=chosen)
    return Activations(stem=chosen, body=lambda channels: Stateless(winact_jax.relu))
