"""The small CIFAR-10 LeNet of the activation-comparison seed.

The LeNet-5 variant of PyTorch's "Training a Classifier" tutorial, which the seed
trained for Mish, ELU and GELU (Y. LeCun et al., "Gradient-based learning applied to
document recognition", 1998, for the original): conv 3 -> 6 (5x5), 2x2 max pool,
conv 6 -> 16 (5x5), 2x2 max pool, linear 400 -> 120 -> 84 -> classes, the activation
after every layer but the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from winact_jax.models.activation import ActivationLike, activations
from winact_jax.models.layers import pytorch_default_init
from winact_jax.windows import _is_int

KERNEL = 5


def _pair(size) -> tuple[int, int]:
    if _is_int(size):
        return (int(size), int(size))
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) for s in size):
        return (int(size[0]), int(size[1]))
    raise TypeError(f"image_size must be an int or a (height, width) pair of ints; got {size!r}")


def feature_map_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """Height and width after both convolutions ("VALID") and 2x2 pools (floored).

    32 -> 5 (the 400 = 16*5*5 inputs of the first linear layer), 64 -> 13.
    """
    sizes = []
    for n in _pair(image_size):
        for _ in range(2):
            n = (n - KERNEL + 1) // 2
        if n < 1:
            raise ValueError(f"image_size must be at least 16x16 for LeNet; got {image_size!r}")
        sizes.append(n)
    return tuple(sizes)


class LeNet(nnx.Module):
    """LeNet for CIFAR-sized images, with `act` at every nonlinearity.

    Its first linear layer takes `16 * h * w` features, `h x w` the map the
    convolutions leave of an `image_size` input (400 for 32x32), so the model is
    built for one input size.

    Example:
      >>> from flax import nnx
      >>> model = LeNet(10, "gelu", image_size=64, rngs=nnx.Rngs(0))
      >>> model(jnp.zeros((3, 64, 64, 3))).shape
      (3, 10)
    """

    def __init__(
        self,
        num_classes: int,
        act: ActivationLike = "relu",
        *,
        image_size: int | tuple[int, int] = 32,
        in_channels: int = 3,
        placement: str = "all",
        act_params: Mapping[str, Any] | None = None,
        learn_influence: bool = False,
        dtype: Dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        """
        Args:
          num_classes: outputs of the last linear layer.
          act: the activation, a callable or a name registered in `winact_jax`.
          image_size: the input's height and width (an int for square inputs).
          in_channels: channels of the input images.
          placement: `"all"` (default) or `"stem"`: `act` after the first
            convolution only, ReLU elsewhere.
          act_params: parameters of a named `act`, e.g. `{"window": 2}`.
          learn_influence: learn a per-channel influence at every `act` layer
            (a window activation that takes one; see `activation.py`).
          dtype: compute dtype (e.g. `jnp.bfloat16`); parameters stay float32 and
            the logits are returned in float32.
          rngs: initialisation randomness.
        """
        self.image_size = _pair(image_size)
        height, width = feature_map_size(image_size)
        acts = activations(act, placement, act_params, learn_influence=learn_influence, dtype=dtype, rngs=rngs)
        layer = dict(dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

        # PyTorch's default init, as the seed ran.
        self.conv1 = nnx.Conv(
            in_channels,
            6,
            (KERNEL, KERNEL),
            padding="VALID",
            **layer,
            **pytorch_default_init(in_channels * KERNEL**2),
        )
        self.conv2 = nnx.Conv(6, 16, (KERNEL, KERNEL), padding="VALID", **layer, **pytorch_default_init(6 * KERNEL**2))
        flat = 16 * height * width
        self.fc1 = nnx.Linear(flat, 120, **layer, **pytorch_default_init(flat))
        self.fc2 = nnx.Linear(120, 84, **layer, **pytorch_default_init(120))
        self.fc3 = nnx.Linear(84, num_classes, **layer, **pytorch_default_init(84))
        self.conv1_act = acts.stem(6)
        self.conv2_act = acts.body(16)
        self.fc1_act = acts.body(120)
        self.fc2_act = acts.body(84)

    def __call__(self, x: jax.Array) -> jax.Array:
        """`(batch, *image_size, in_channels)` -> float32 logits `(batch, num_classes)`."""
        if tuple(x.shape[1:3]) != self.image_size:
            raise ValueError(
                f"this LeNet was built for {self.image_size[0]}x{self.image_size[1]} inputs "
                f"(image_size); got shape {tuple(x.shape)}"
            )
        x = nnx.max_pool(self.conv1_act(self.conv1(x)), (2, 2), strides=(2, 2))
        x = nnx.max_pool(self.conv2_act(self.conv2(x)), (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = self.fc1_act(self.fc1(x))
        x = self.fc2_act(self.fc2(x))
        return self.fc3(x).astype(jnp.float32)
