"""winact-jax: window-based activation functions for JAX.

    import winact_jax as wa
    y = wa.nelu(x, window=4, influence=0.1)      # every activation is a pure function
    act = wa.get("excitator", window=4)          # a callable x -> y with bound parameters
    wa.names()                                   # every registered name
    wa.names("window"), wa.names("elementwise"), wa.names("parametric")

    y = wa.nelu(x, window=3, mode="centered")    # every element's own 3x3 neighbourhood
    y = wa.max(x, window=4, over="channels")     # local winner-take-all over channel groups
    y = wa.nelu(x, influence=jnp.full((C,), 0.1))  # per-channel, differentiable influence
    y = wa.prelu(x, slope), wa.frelu(x, kernel, scale, bias)

The specification of every activation is in `window_activations.py`'s docstrings;
the geometry of windows in `windows.py`. Models are in `winact_jax.models`, data in
`winact_jax.data`, training in `winact_jax.train`. Importing this package never
imports TensorFlow.
"""

from winact_jax.elementwise import (
    celu,
    elu,
    gelu,
    leaky_relu,
    mish,
    relu,
    selu,
    sigmoid,
    silu,
    softplus,
    tanh,
)
from winact_jax.parametric import frelu, prelu
from winact_jax.registry import ALIASES, Activation, canonical_name, get, kind, names, parameters
from winact_jax.window_activations import (
    excitator,
    excitator_v2,
    inhibitor,
    inhibitor_v2,
    max,  # noqa: A004 - the specification's name
    max_relu,
    nelu,
    pnelu,
    softmax_threshold,
)
from winact_jax.windows import MODES, OVERS, Neighbourhood, Tiling

passive_nelu = pnelu
softmax_relu = softmax_threshold
swish = silu

__version__ = "0.1.0"

__all__ = [
    "ALIASES",
    "MODES",
    "OVERS",
    "Activation",
    "Neighbourhood",
    "Tiling",
    "canonical_name",
    "celu",
    "elu",
    "frelu",
    "excitator",
    "excitator_v2",
    "gelu",
    "get",
    "inhibitor",
    "inhibitor_v2",
    "kind",
    "leaky_relu",
    "max",
    "max_relu",
    "mish",
    "names",
    "nelu",
    "parameters",
    "passive_nelu",
    "pnelu",
    "prelu",
    "relu",
    "selu",
    "sigmoid",
    "silu",
    "softmax_relu",
    "softmax_threshold",
    "softplus",
    "swish",
    "tanh",
]
