"""Transforms of a loaded split: label noise, for the label-noise seed protocol.

The seed study (docs/seed-experiments.md) trained with a given fraction of the
training labels replaced by uniformly random ones and compared activations at
0, 8, 16, 32 and 64% noise. Only a training split is meant to be transformed: the
validation and test labels stay clean, so accuracy measures the true classes.

    noisy_train = with_label_noise(dataset.train, 0.16, dataset.num_classes, seed=0)
    dataset = dataclasses.replace(dataset, train=noisy_train)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from winact_jax.data.dataset import Split
from winact_jax.windows import _is_int


def _check_fraction(fraction) -> float:
    if (
        not isinstance(fraction, numbers.Real)
        or isinstance(fraction, bool)
        or not math.isfinite(fraction)
        or not 0 <= fraction < 1
    ):
        raise ValueError(f"label-noise fraction must be a number in [0, 1); got {fraction!r}")
    return float(fraction)


def _check_int(name: str, value, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def noisy_label_count(num_examples: int, fraction: float) -> int:
    """How many labels `with_label_noise` replaces: round(fraction * num_examples).

    Python's `round` (halves go to the even integer), so 16% of 3500 is 560 and
    8% of 1257 is 101 (100.56 rounded).

    >>> noisy_label_count(3500, 0.16), noisy_label_count(1257, 0.08), noisy_label_count(10, 0.25)
    (560, 101, 2)
    """
    return round(_check_fraction(fraction) * _check_int("num_examples", num_examples, 0))


def noisy_label_indices(num_examples: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted indices whose labels `with_label_noise` replaces, for this seed.

    The first `noisy_label_count(num_examples, fraction)` entries of a permutation
    drawn by NumPy's `default_rng(seed)` (the same on every machine): a uniform
    draw without replacement, and nested over fractions, so for one seed the
    examples corrupted at 8% are among those corrupted at 16%.
    """
    count = noisy_label_count(num_examples, fraction)
    return np.sort(_order(num_examples, seed)[:count])


def _order(num_examples: int, seed: int) -> np.ndarray:
    """The seed's permutation of the examples; corruption takes a prefix of it."""
    return np.random.default_rng(_check_int("seed", seed, 0)).permutation(num_examples)


def with_label_noise(split: Split, fraction: float, num_classes: int, seed: int) -> Split:
    """`split` with `round(fraction * N)` of its labels replaced by uniformly random ones.

    The examples to corrupt are drawn without replacement (`noisy_label_indices`,
    nested over fractions for one seed); each gets a label drawn uniformly from *all* `num_classes` classes, its own
    included, as the seed protocol states it ("replaced with uniformly random
    labels"). So about `1 / num_classes` of the replaced labels come out correct
    by chance: at fraction f, the expected share of wrong labels is
    f * (1 - 1 / num_classes), e.g. 14.4% wrong at 16% noise with 10 classes.

    The images are shared with `split`, not copied; the labels are a new array.
    Fraction 0 returns an equal split. The draw depends only on `(len(split),
    fraction, num_classes, seed)`: deterministic per seed, the same on every
    machine; pass the run's training seed so each seed sees its own noise.

    Args:
      split: the training split to corrupt (leave validation and test clean).
      fraction: the share of labels to replace, in [0, 1).
      num_classes: labels are drawn from 0..num_classes-1; at least 2.
      seed: a non-negative integer.

    Raises:
      ValueError: `fraction` outside [0, 1), `num_classes` below 2 or below a
        label of `split`, or a negative `seed`.

    >>> labels = np.zeros(10, np.int32)
    >>> noisy = with_label_noise(Split(np.zeros((10, 1, 1, 3), np.uint8), labels), 0.5, 10, seed=0)
    >>> len(noisy), int((noisy.labels != labels).sum()) <= 5
    (10, True)
    """
    fraction = _check_fraction(fraction)
    num_classes = _check_int("num_classes", num_classes, 2)
    if len(split) and int(split.labels.max()) >= num_classes:
        raise ValueError(
            f"num_classes must exceed every label; got num_classes={num_classes} for a split "
            f"whose largest label is {int(split.labels.max())}"
        )
    count = noisy_label_count(len(split), fraction)
    order = _order(len(split), seed)
    # One random class per position of the permutation, from a second stream: the
    # example at position k gets the same new label at every fraction that
    # corrupts it, so noise levels are nested labels and all.
    random_labels = np.random.default_rng([seed, 1]).integers(0, num_classes, size=len(split), dtype=np.int32)
    labels = split.labels.copy()
    labels[order[:count]] = random_labels[:count]
    return Split(split.images, labels)
