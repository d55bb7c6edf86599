"""Stratified splits drawn with a fixed seed, through scikit-learn.

Every split here is a partition of example indices: disjoint, covering, and with
each class in the same proportion in every part (up to one example per class, from
rounding). The same labels and seed give the same partition on every machine,
since `train_test_split` draws from NumPy's seeded `RandomState`.

Indices come back sorted, so a part keeps the source's order: the order carries no
information, the training loop draws its own permutation every epoch.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

# The seed of every split `load` draws unless told otherwise. It is *not* the
# training seed: runs that differ in their training seed must see the same split.
SPLIT_SEED = 0

# The share of a train split carved off as validation where a dataset has none
# (CIFAR 50000 -> 45000 / 5000, STL-10 5000 -> 4500 / 500, Tiny ImageNet 100000 ->
# 90000 / 10000).
VALIDATION_FRACTION = 0.1

# The seed protocol's Caltech-101 split, also used for digits.
TRAIN_VALIDATION_TEST_FRACTIONS = (0.7, 0.15, 0.15)


def stratified_split(labels: np.ndarray, held_out_fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits example indices into (kept, held_out), stratified by `labels`.

    `held_out` has ceil(held_out_fraction * N) examples (scikit-learn's rounding),
    `kept` the rest. Raises ValueError (from scikit-learn) when a class has fewer
    than two examples or the held-out part is smaller than the number of classes,
    since then no split can hold every class in both parts.
    """
    labels = np.asarray(labels)
    kept, held_out = train_test_split(
        np.arange(len(labels)),
        test_size=held_out_fraction,
        random_state=seed,
        shuffle=True,
        stratify=labels,
    )
    return np.sort(kept), np.sort(held_out)


def train_validation_test_split(
    labels: np.ndarray,
    fractions: tuple[float, float, float] = TRAIN_VALIDATION_TEST_FRACTIONS,
    *,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits example indices into stratified (train, validation, test) parts.

    Drawn in two stratified steps: validation + test are held out of the whole,
    then split between themselves. With the default 70/15/15:
    N = 8677 (Caltech-101 without clutter) -> 6073 / 1302 / 1302;
    N = 1797 (digits) -> 1257 / 270 / 270.
    """
    train_fraction, validation_fraction, test_fraction = fractions
    if not np.isclose(train_fraction + validation_fraction + test_fraction, 1.0):
        raise ValueError(f"fractions must add up to 1; got {fractions}")
    labels = np.asarray(labels)
    held_out_fraction = validation_fraction + test_fraction
    train, held_out = stratified_split(labels, held_out_fraction, seed=seed)
    validation_in_held, test_in_held = stratified_split(labels[held_out], test_fraction / held_out_fraction, seed=seed)
    return train, held_out[validation_in_held], held_out[test_in_held]
