"""The CIFAR ResNet of He et al., with any activation at its nonlinearities.

K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
CVPR 2016, section 4.2: 6n+2 layers. A 3x3 convolution with 16 filters, three stages
of n basic blocks on 16, 32 and 64 filters (feature maps 32, 16, 8 for a 32x32
input; the first block of stages 2 and 3 has stride 2), global average pooling and
a linear classifier. Shortcuts are identities, zero-padded along channels where the
width grows ("option A"), so the parameter counts are the paper's (ResNet-20: 0.27M,
ResNet-56: 0.85M).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from winact_jax.models.activation import ActivationLike, LayerFactory, activations
from winact_jax.models.layers import (
    check_normalization,
    global_average_pool,
    normalization_layer,
    scaled_channels,
)

# He et al. initialise convolutions as in their PReLU paper; `fan_out` and an
# (untruncated) normal is what torchvision's ResNet uses.
kaiming_normal_fan_out = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv3x3(
    in_features: int, out_features: int, stride: int, *, use_bias: bool, dtype: Dtype, rngs: nnx.Rngs
) -> nnx.Conv:
    return nnx.Conv(
        in_features,
        out_features,
        kernel_size=(3, 3),
        strides=stride,
        padding="SAME",
        use_bias=use_bias,
        kernel_init=kaiming_normal_fan_out,
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )


def identity_shortcut(x: jax.Array, out_features: int, stride: int) -> jax.Array:
    """Option A: subsample by `stride`, pad the new channels with zeros; no parameters.

    `x[:, ::2]` keeps ceil(n / 2) rows, as many as a stride-2 "SAME" convolution
    outputs, so odd map sizes line up too.
    """
    x = x[:, ::stride, ::stride, :]
    extra = out_features - x.shape[-1]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra))) if extra else x


class BasicBlock(nnx.Module):
    """Two 3x3 convolutions and an identity shortcut (He et al., figure 2, left).

    `y = act2(norm(conv(act1(norm(conv(x))))) + shortcut(x))`, each `act` its own
    layer (`act` builds them).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        stride: int,
        act: LayerFactory,
        *,
        normalization: str,
        dtype: Dtype,
        rngs: nnx.Rngs,
    ):
        # A convolution followed by batch norm needs no bias: the norm's shift is one.
        layer = dict(use_bias=normalization == "none", dtype=dtype, rngs=rngs)
        self.conv1 = conv3x3(in_features, out_features, stride, **layer)
        self.norm1 = normalization_layer(normalization, out_features, dtype=dtype, rngs=rngs)
        self.conv2 = conv3x3(out_features, out_features, 1, **layer)
        self.norm2 = normalization_layer(normalization, out_features, dtype=dtype, rngs=rngs)
        self.act1 = act(out_features)
        self.act2 = act(out_features)
        self.out_features = out_features
        self.stride = stride

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.act1(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act2(y + identity_shortcut(x, self.out_features, self.stride))


class ResNet(nnx.Module):
    """He et al.'s CIFAR ResNet (6n+2 layers) with `act` at every nonlinearity.

    Example:
      >>> from flax import nnx
      >>> model = ResNet(10, "excitator", depth=20, rngs=nnx.Rngs(0))
      >>> model(jnp.zeros((2, 32, 32, 3))).shape
      (2, 10)

    The input is NHWC float of any spatial size; `model.train()` / `model.eval()`
    switch batch norm between batch and running statistics.
    """

    def __init__(
        self,
        num_classes: int,
        act: ActivationLike = "relu",
        *,
        depth: int = 38,
        widths: Sequence[int] = (16, 32, 64),
        width: float = 1.0,
        in_channels: int = 3,
        normalization: str = "batch",
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
          depth: 6n+2 layers, n blocks per stage: 20, 32, 38 (default), 44, 56, 110.
          widths: filters of the three stages (He et al.: 16, 32, 64), each
            non-decreasing, since the shortcuts pad channels and never drop them.
          width: multiplier of `widths` (rounded, at least 1 filter).
          in_channels: channels of the input images.
          normalization: `"batch"` (default) or `"none"`.
          placement: `"all"` (default) or `"stem"`: `act` after the stem only, ReLU
            elsewhere.
          act_params: parameters of a named `act`, e.g. `{"window": 4}`.
          learn_influence: learn a per-channel influence at every `act` layer
            (a window activation that takes one; see `activation.py`).
          dtype: compute dtype (e.g. `jnp.bfloat16`); parameters stay float32 and
            the logits are returned in float32.
          rngs: initialisation randomness.
        """
        if not (isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0):
            raise ValueError(f"depth must be 6n+2 for an int n >= 1 (20, 32, 38, 56, ...); got {depth!r}")
        widths = tuple(scaled_channels(w, width) for w in widths)
        if len(widths) != 3 or any(b < a for a, b in zip(widths, widths[1:])):
            raise ValueError(
                f"widths must be three non-decreasing stage widths (scaled: {widths}); "
                "the identity shortcuts pad channels and cannot drop them"
            )
        check_normalization(normalization)
        blocks_per_stage = (depth - 2) // 6
        acts = activations(act, placement, act_params, learn_influence=learn_influence, dtype=dtype, rngs=rngs)
        # A convolution followed by batch norm needs no bias: the norm's shift is one.
        use_bias = normalization == "none"

        self.stem = conv3x3(in_channels, widths[0], 1, use_bias=use_bias, dtype=dtype, rngs=rngs)
        self.stem_norm = normalization_layer(normalization, widths[0], dtype=dtype, rngs=rngs)
        self.stem_act = acts.stem(widths[0])
        blocks = []
        in_features = widths[0]
        for stage, out_features in enumerate(widths):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(
                    BasicBlock(
                        in_features,
                        out_features,
                        stride,
                        acts.body,
                        normalization=normalization,
                        dtype=dtype,
                        rngs=rngs,
                    )
                )
                in_features = out_features
        self.blocks = nnx.List(blocks)
        self.head = nnx.Linear(widths[-1], num_classes, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """`(batch, height, width, in_channels)` -> float32 logits `(batch, num_classes)`."""
        x = self.stem_act(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(global_average_pool(x)).astype(jnp.float32)
