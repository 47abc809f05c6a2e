"""Stratified splits and subsamples, class subsets: hand-worked counts, determinism, disjointness."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from lineup.data import splits
from lineup.data.splits import fixed_rows, stratified_split
from lineup.data.tasks import select_classes, stratified_subsample


def _labels(*counts: int) -> np.ndarray:
    """Labels 0, 1, ... with the given counts, shuffled so that no split can rely on sorted input."""
    y = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(123).permutation(y)


@pytest.mark.parametrize(
    ("counts", "size", "expected"),
    [
        # 10% of 50/30/20 is exactly 5/3/2.
        ((50, 30, 20), 10, [5, 3, 2]),
        # 4 * 3/9 = 1.33 each: floors 1/1/1, the one left over goes to the lowest label on a tie.
        ((3, 3, 3), 4, [2, 1, 1]),
        # 5 * 7/10 = 3.5, 5 * 2/10 = 1.0, 5 * 1/10 = 0.5: floors 3/1/0, remainders .5/0/.5, label 0 wins.
        ((7, 2, 1), 5, [4, 1, 0]),
        # 10% of 6,000 per class must be exactly 600 each (a float quota can land a hair below).
        ((6000,) * 10, 6000, [600] * 10),
        ((4, 6), 0, [0, 0]),
        ((4, 6), 10, [4, 6]),
    ],
)
def test_validation_counts_per_class(counts: tuple[int, ...], size: int, expected: list[int]) -> None:
    y = _labels(*counts)
    train, val = stratified_split(y, val_size=size, seed=0)
    assert np.bincount(y[val], minlength=len(counts)).tolist() == expected
    assert np.bincount(y[train], minlength=len(counts)).tolist() == [
        c - e for c, e in zip(counts, expected, strict=True)
    ]


def test_val_fraction_rounds_half_up() -> None:
    y = _labels(10, 15)  # 25 * 0.1 = 2.5 -> 3 examples; 3 * 10/25 = 1.2, 3 * 15/25 = 1.8 -> 1 and 2
    _, val = stratified_split(y, val_fraction=0.1, seed=0)
    assert np.bincount(y[val]).tolist() == [1, 2]


def test_split_is_a_disjoint_sorted_cover() -> None:
    y = _labels(40, 25, 35)
    train, val = stratified_split(y, val_fraction=0.3, seed=5)
    assert train.dtype == val.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.union1d(train, val), np.arange(len(y)))


def test_split_is_a_function_of_the_seed() -> None:
    y = _labels(40, 25, 35)
    a = stratified_split(y, val_fraction=0.2, seed=1)
    b = stratified_split(y.copy(), val_fraction=0.2, seed=1)
    c = stratified_split(y, val_fraction=0.2, seed=2)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])
    assert np.array_equal(np.bincount(y[a[1]]), np.bincount(y[c[1]]))  # same proportions, other examples


def test_labels_need_not_be_contiguous() -> None:
    y = np.array([9, 5, 9, 5, 9, 9, 5, 9])  # five 9s, three 5s
    # Label 5: 4 * 3/8 = 1.5, label 9: 4 * 5/8 = 2.5; floors 1 and 2, the tie on .5 goes to the lower label.
    _, val = stratified_split(y, val_size=4, seed=0)
    assert sorted(y[val].tolist()) == [5, 5, 9, 9]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of val_fraction and val_size"),
        ({"val_fraction": 0.1, "val_size": 1}, "exactly one of val_fraction and val_size"),
        ({"val_fraction": 1.5}, r"val_fraction must be in \[0, 1\], got 1.5"),
        ({"val_size": 11}, r"val_size must be in \[0, 10\], got 11"),
    ],
)
def test_split_rejects_bad_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stratified_split(np.zeros(10, dtype=np.int64), seed=0, **kwargs)


def test_split_rejects_non_label_input() -> None:
    with pytest.raises(ValueError, match="1-D integer labels"):
        stratified_split(np.zeros((4, 2), dtype=np.int64), val_size=1, seed=0)
    with pytest.raises(ValueError, match="1-D integer labels"):
        stratified_split(np.zeros(4), val_size=1, seed=0)


def test_stratified_subsample() -> None:
    y = _labels(60, 30, 10)
    rows = stratified_subsample(y, 20, seed=3)
    assert len(rows) == len(np.unique(rows)) == 20
    assert np.bincount(y[rows]).tolist() == [12, 6, 2]
    assert np.array_equal(rows, stratified_subsample(y, 20, seed=3))
    assert not np.array_equal(rows, stratified_subsample(y, 20, seed=4))


def test_select_classes_relabels_in_the_given_order() -> None:
    y = np.array([0, 7, 2, 7, 1, 2, 9])
    x = np.arange(7) * 10  # stands for the images: x[i] identifies example i
    x_kept, y_kept, kept = select_classes(x, y, [7, 2])
    assert kept.tolist() == [1, 2, 3, 5]
    assert x_kept.tolist() == [10, 20, 30, 50]
    assert y_kept.tolist() == [0, 1, 0, 1]  # 7 -> 0, 2 -> 1
    assert y_kept.dtype == np.int64
    assert select_classes(x, y, [2, 7])[1].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize(
    ("classes", "message"),
    [([], "classes is empty"), ([2, 2], "distinct"), ([2, 3], r"classes \[3\] do not occur")],
)
def test_select_classes_rejects_bad_lists(classes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_classes(np.arange(3), np.array([0, 1, 2]), classes)


def test_fixed_rows_are_a_sorted_subset_that_does_not_depend_on_the_global_seed() -> None:
    torch.manual_seed(1)
    a = fixed_rows(1000, 50)
    torch.manual_seed(2)
    b = fixed_rows(1000, 50)
    assert torch.equal(a, b) and len(a.unique()) == 50 and bool((a.diff() > 0).all()) and int(a.max()) < 1000
    assert torch.equal(fixed_rows(7, 7), torch.arange(7))
    assert doctest.testmod(splits).failed == 0
