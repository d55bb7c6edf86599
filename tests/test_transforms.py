"""Label noise: how many labels change, which, to what, determinism, nesting, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from winact_jax.data import Split, transforms
from winact_jax.data.transforms import noisy_label_count, noisy_label_indices, with_label_noise


def make_split(labels):
    labels = np.asarray(labels, np.int32)
    return Split(np.zeros((len(labels), 2, 2, 3), np.uint8), labels)


@pytest.mark.parametrize(
    ("num_examples", "fraction", "expected"),
    [
        (3500, 0.0, 0),
        (3500, 0.08, 280),
        (3500, 0.16, 560),
        (3500, 0.32, 1120),
        (3500, 0.64, 2240),
        (1257, 0.08, 101),
        (10, 0.25, 2),
        (10, 0.35, 4),
        (10, 0.99, 10),
        (0, 0.5, 0),
    ],
)
def test_count_is_fraction_times_n_rounded_half_to_even(num_examples, fraction, expected):
    assert noisy_label_count(num_examples, fraction) == expected
    indices = noisy_label_indices(num_examples, fraction, seed=3)
    assert len(indices) == expected and len(np.unique(indices)) == expected
    assert np.all(np.diff(indices) > 0) and (expected == 0 or indices[0] >= 0 and indices[-1] < num_examples)


def test_only_the_drawn_labels_change_and_the_rest_stay():
    labels = np.arange(1000) % 10
    split = make_split(labels)
    noisy = with_label_noise(split, 0.3, 10, seed=0)
    chosen = noisy_label_indices(1000, 0.3, seed=0)
    untouched = np.setdiff1d(np.arange(1000), chosen)
    np.testing.assert_array_equal(noisy.labels[untouched], labels[untouched])
    assert noisy.labels.dtype == np.int32 and noisy.labels.min() >= 0 and noisy.labels.max() <= 9
    # the input is left alone; the images are shared, not copied
    np.testing.assert_array_equal(split.labels, labels)
    assert noisy.images is split.images


def test_new_labels_are_uniform_over_all_classes_so_a_tenth_stay_correct():
    num_examples, fraction, classes = 200_000, 0.5, 10
    labels = np.full(num_examples, 7, np.int32)
    noisy = with_label_noise(make_split(labels), fraction, classes, seed=1)
    replaced = noisy.labels[noisy_label_indices(num_examples, fraction, seed=1)]
    counts = np.bincount(replaced, minlength=classes)
    expected = len(replaced) / classes  # 10,000 per class
    sigma = math.sqrt(expected * (1 - 1 / classes))  # binomial: 95
    assert np.all(np.abs(counts - expected) < 5 * sigma), counts
    # the original class is among the draws: about a tenth of the replaced stay 7,
    # and the share of wrong labels is fraction * (1 - 1/classes) = 45%
    wrong = np.mean(noisy.labels != labels)
    assert abs(wrong - fraction * (1 - 1 / classes)) < 5 * math.sqrt(0.45 * 0.55 / num_examples), wrong


def test_deterministic_per_seed_and_different_across_seeds():
    split = make_split(np.arange(500) % 10)
    a = with_label_noise(split, 0.2, 10, seed=5)
    b = with_label_noise(split, 0.2, 10, seed=5)
    c = with_label_noise(split, 0.2, 10, seed=6)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)
    assert not np.array_equal(noisy_label_indices(500, 0.2, 5), noisy_label_indices(500, 0.2, 6))


def test_noise_levels_are_nested_for_one_seed():
    """The examples corrupted at 8% are corrupted at 16% too, with the same new labels."""
    labels = np.arange(3500) % 10
    split = make_split(labels)
    low = noisy_label_indices(3500, 0.08, seed=2)
    high = noisy_label_indices(3500, 0.16, seed=2)
    assert set(low) <= set(high)
    noisy_low = with_label_noise(split, 0.08, 10, seed=2)
    noisy_high = with_label_noise(split, 0.16, 10, seed=2)
    np.testing.assert_array_equal(noisy_low.labels[low], noisy_high.labels[low])


def test_fraction_zero_changes_nothing():
    split = make_split(np.arange(100) % 10)
    np.testing.assert_array_equal(with_label_noise(split, 0, 10, seed=0).labels, split.labels)
    np.testing.assert_array_equal(with_label_noise(split, 0.0, 10, seed=9).labels, split.labels)


@pytest.mark.parametrize("fraction", [-0.1, 1, 1.0, 1.5, float("nan"), float("inf"), "0.1", None, True])
def test_fraction_outside_0_1_is_one_line_naming_the_value(fraction):
    with pytest.raises(ValueError) as error:
        with_label_noise(make_split([0, 1, 2]), fraction, 10, seed=0)
    message = str(error.value)
    assert "\n" not in message and "[0, 1)" in message and repr(fraction) in message


@pytest.mark.parametrize(
    ("num_classes", "seed", "match"),
    [
        (1, 0, "num_classes must be an integer >= 2; got 1"),
        (2.5, 0, "num_classes must be an integer >= 2; got 2.5"),
        (3, 0, "num_classes must exceed every label; got num_classes=3 .* largest label is 5"),
        (10, -1, "seed must be an integer >= 0; got -1"),
        (10, 1.5, "seed must be an integer >= 0; got 1.5"),
    ],
)
def test_bad_classes_or_seed(num_classes, seed, match):
    with pytest.raises(ValueError, match=match):
        with_label_noise(make_split([0, 5, 2]), 0.5, num_classes, seed=seed)


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(transforms, verbose=False)
    assert result.attempted >= 4 and result.failed == 0, result
