"""The window-activation paper's model (its "ResNet 38"), as its code builds it.

The seed's results (Table 1 of the paper, `docs/seed-experiments.md`) come
from this network, not from He et al.'s ResNet: a 3x3 stem to 128 channels, five
residual modules on 128 channels, a 2x2 max pool after modules 2 and 4, a global
max pool and a linear layer. The reported runs used no normalization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from winact_jax.models.activation import ActivationLike, LayerFactory, activations
from winact_jax.models.layers import (
    global_max_pool,
    normalization_layer,
    pytorch_default_init,
    scaled_channels,
)

CHANNELS = 128
BOTTLENECK = 64  # the first convolution of a module halves the channels
NUM_MODULES = 5
POOL_AFTER = (2, 4)  # 1-based module numbers followed by a 2x2 max pool


def conv3x3(in_features: int, out_features: int, *, dtype: Dtype, rngs: nnx.Rngs) -> nnx.Conv:
    # PyTorch's Conv2d defaults (bias, uniform init), as the seed ran.
    return nnx.Conv(
        in_features,
        out_features,
        kernel_size=(3, 3),
        padding="SAME",
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
        **pytorch_default_init(9 * in_features),
    )


class ResidualModule(nnx.Module):
    """`x + act(norm(conv(conv(x))))`: two 3x3 convolutions, 128 -> 64 -> 128.

    No activation between the convolutions, and the skip is added after the
    activation, in the order the seed's description gives.
    """

    def __init__(
        self,
        channels: int,
        bottleneck: int,
        act: LayerFactory,
        *,
        normalization: str,
        dtype: Dtype,
        rngs: nnx.Rngs,
    ):
        self.reduce = conv3x3(channels, bottleneck, dtype=dtype, rngs=rngs)
        self.expand = conv3x3(bottleneck, channels, dtype=dtype, rngs=rngs)
        self.norm = normalization_layer(normalization, channels, dtype=dtype, rngs=rngs)
        self.act = act(channels)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.act(self.norm(self.expand(self.reduce(x))))


class SeedBackbone(nnx.Module):
    """The window-activation paper's network, with `act` at every nonlinearity.

    stem conv 3 -> 128 (3x3) + norm + act; five `ResidualModule`s, a 2x2 max pool
    after the second and the fourth; global max pool; linear 128 -> classes. A
    32x32 input reaches the last module as an 8x8 map, a 64x64 one as 16x16.

    Example:
      >>> from flax import nnx
      >>> model = SeedBackbone(100, "nelu", act_params={"window": 4}, rngs=nnx.Rngs(0))
      >>> model(jnp.zeros((1, 32, 32, 3))).shape
      (1, 100)
    """

    def __init__(
        self,
        num_classes: int,
        act: ActivationLike = "relu",
        *,
        width: float = 1.0,
        in_channels: int = 3,
        normalization: str = "none",
        placement: str = "all",
        act_params: Mapping[str, Any] | None = None,
        learn_influence: bool = False,
        dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          num_classes: outputs of the linear head.
          act: the activation, a callable or a name registered in `winact_jax`.
          width: multiplier of the 128 (and 64) channels; 1 is the seed's model.
          in_channels: channels of the input images.
          normalization: `"none"` (default, the seed's reported runs) or `"batch"`.
          placement: `"all"` (default) or `"stem"`: `act` after the stem only, ReLU
            elsewhere.
          act_params: parameters of a named `act`, e.g. `{"window": 4}`.
          learn_influence: learn a per-channel influence at every `act` layer
            (a window activation that takes one; see `activation.py`).
          dtype: compute dtype (e.g. `jnp.bfloat16`); parameters stay float32 and
            the logits are returned in float32.
          rngs: initialisation randomness.
        """
        channels = scaled_channels(CHANNELS, width)
        bottleneck = scaled_channels(BOTTLENECK, width)
        acts = activations(act, placement, act_params, learn_influence=learn_influence, dtype=dtype, rngs=rngs)

        self.stem = conv3x3(in_channels, channels, dtype=dtype, rngs=rngs)
        self.stem_norm = normalization_layer(normalization, channels, dtype=dtype, rngs=rngs)
        self.stem_act = acts.stem(channels)
        self.residuals = nnx.List(
            [
                ResidualModule(channels, bottleneck, acts.body, normalization=normalization, dtype=dtype, rngs=rngs)
                for _ in range(NUM_MODULES)
            ]
        )
        self.head = nnx.Linear(
            channels,
            num_classes,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
            **pytorch_default_init(channels),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """`(batch, height, width, in_channels)` -> float32 logits `(batch, num_classes)`."""
        x = self.stem_act(self.stem_norm(self.stem(x)))
        for number, module in enumerate(self.residuals, start=1):
            x = module(x)
            if number in POOL_AFTER:
                x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        return self.head(global_max_pool(x)).astype(jnp.float32)
