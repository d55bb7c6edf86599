"""What every loader returns: a `Dataset` of three `Split`s of uint8 images.

Images stay uint8 on the host and on the device (a quarter of float32's memory, so
every dataset here fits on one accelerator); each dataset carries the pixel scaling
its seed protocol used as a jittable `Dataset.normalize`, applied inside the training
step after the batch has been gathered.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# The two scalings the seed protocols use (see each loader for which one and why).
UNIT_RANGE = (0.0, 1.0)  # x / 255
SYMMETRIC_RANGE = (-1.0, 1.0)  # 2 x / 255 - 1


class DataUnavailableError(RuntimeError):
    """A dataset is not on disk and could not be downloaded.

    The message says which file to place in which directory and the command that
    prepares the dataset once it is there.
    """


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split: `images` uint8 (N, H, W, 3) and `labels` int32 (N,), in NumPy."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3); got {self.images.dtype} {self.images.shape}")
        if self.labels.dtype != np.int32 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int32 of shape ({len(self.images)},); got {self.labels.dtype} {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> Split:
        """The examples at `indices`, in that order."""
        return Split(self.images[indices], self.labels[indices])


def scale_pixels(images: jax.Array, pixel_range: tuple[float, float]) -> jax.Array:
    """Maps uint8 pixels 0..255 linearly onto `pixel_range`, as float32. Jittable."""
    low, high = pixel_range
    return jnp.asarray(images, jnp.float32) * ((high - low) / 255.0) + low


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset with its train / validation / test splits and its pixel scaling.

    Attributes:
      name: the name `load` knows it by.
      train, validation, test: the splits (uint8 images, int32 labels).
      num_classes: labels are 0..num_classes-1.
      class_names: one human-readable name per label.
      image_shape: (H, W, 3) of every image.
      pixel_range: the interval `normalize` maps 0..255 onto: (0, 1) or (-1, 1).
    """

    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    pixel_range: tuple[float, float]

    def __post_init__(self):
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        for split_name in ("train", "validation", "test"):
            split = getattr(self, split_name)
            if split.images.shape[1:] != tuple(self.image_shape):
                raise ValueError(f"{split_name} images are {split.images.shape[1:]}, not {self.image_shape}")

    def normalize(self, images: jax.Array) -> jax.Array:
        """uint8 images -> float32 in `pixel_range`: the seed's scaling. Jittable."""
        return scale_pixels(images, self.pixel_range)

    def summary(self) -> str:
        """One line: the name, the split sizes, the image shape and the scaling."""
        return (
            f"{self.name}: train {len(self.train)}, validation {len(self.validation)}, "
            f"test {len(self.test)}; {self.num_classes} classes; images "
            f"{'x'.join(map(str, self.image_shape))} uint8, scaled to "
            f"[{self.pixel_range[0]:g}, {self.pixel_range[1]:g}]"
        )
