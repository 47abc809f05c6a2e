"""Datasets as tensors: ``load`` turns a catalog name and options into train, validation and test splits."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lineup.data._types import DataBundle, Normalization, Split
from lineup.data.catalog import list_datasets, load_raw
from lineup.data.splits import stratified_split
from lineup.data.tasks import select_classes, stratified_subsample
from lineup.errors import SpecError

__all__ = ["DataBundle", "Normalization", "Split", "list_datasets", "load"]


def load(
    dataset: str,
    *,
    root: str | os.PathLike[str] | None = None,
    classes: Sequence[int] | None = None,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_size: int | None = None,
    split_seed: int = 0,
    download: bool = True,
    options: Mapping[str, Any] | None = None,
    distortions: Mapping[str, Any] | None = None,
) -> DataBundle:
    """Load a catalog dataset and derive the splits a run trains, selects and tests on.

    The derivation, in this order:

    1. keep ``classes`` (in the training and the test split), relabelled ``0..k-1`` in the order given;
    2. hold out ``val_fraction`` of the training split as the validation split (stratified, ``split_seed``);
    3. subsample what remains for training to ``train_size`` examples (stratified, ``split_seed``);
    4. subsample the test split to ``test_size`` examples (stratified, ``split_seed``).

    Step 3 comes after step 2 so that the validation split does not depend on ``train_size``: runs along a
    learning curve are selected and early-stopped on the same validation examples.

    Args:
        dataset: a name from ``list_datasets()``.
        root: a directory to look in before ``$LINEUP_DATA``, the user cache and the system data directories.
        classes: original labels to keep, e.g. ``[0, 1]`` for a binary task; ``None`` keeps all.
        train_size: number of training examples to keep; ``None`` keeps all that remain after step 2.
        val_fraction: share of the training split held out for validation, in ``[0, 1)``.
        test_size: number of test examples to keep; ``None`` keeps all.
        split_seed: selects the validation split and the subsets.
        download: whether missing files may be downloaded.
        options: dataset-specific settings; the file-backed datasets take none.
        distortions: controlled distortions of the splits.

    Returns:
        The splits as uint8 ``(N, C, H, W)`` and int64 ``(N,)`` tensors, each with the positions of its
        examples in the source's train or test file; ``version`` identifies the source data and the
        derivation.

    Raises:
        SpecError: an option that does not fit this dataset (unknown class, more examples than there are).
        UnknownNameError: no dataset of that name.
        DataError: the data is missing and cannot be downloaded, or is corrupt.
    """
    if options:
        raise SpecError(f"dataset {dataset!r} takes no options, got {', '.join(options)}; remove [data.options]")
    if distortions:
        raise SpecError(f"distortions are not available yet for {dataset!r}; remove [data.distortions]")
    raw = load_raw(dataset, root, download=download)
    num_classes = len(raw.classes)
    if not 0.0 <= val_fraction < 1.0:
        raise SpecError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if classes is not None:
        classes = [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad or not classes or len(set(classes)) != len(classes):
            raise SpecError(
                f"classes must be distinct labels of {dataset} in 0..{num_classes - 1} "
                f"({', '.join(raw.classes)}), got {classes}"
            )
    notes = list(raw.notes)

    # Rows index raw's arrays; the images are gathered once, at the end.
    train_rows, train_y = np.arange(len(raw.train_y)), raw.train_y
    test_rows, test_y = np.arange(len(raw.test_y)), raw.test_y
    class_names = list(raw.classes)
    if classes is not None:
        train_rows, train_y, _ = select_classes(train_rows, train_y, classes)
        test_rows, test_y, _ = select_classes(test_rows, test_y, classes)
        class_names = [raw.classes[c] for c in classes]
        notes.append(
            f"classes: {len(classes)} of {num_classes} kept ({', '.join(class_names)}), "
            f"relabelled 0..{len(classes) - 1} in that order"
        )

    fit, val = stratified_split(train_y, val_fraction=val_fraction, seed=split_seed)
    notes.append(
        f"validation split: {len(val):,} of the {len(train_y):,} training images "
        f"(val_fraction {val_fraction:g}, stratified, split seed {split_seed})"
    )
    val_rows, val_y = train_rows[val], train_y[val]
    train_rows, train_y = train_rows[fit], train_y[fit]

    if train_size is not None:
        _check_size("train_size", train_size, len(train_y), "training images left after the validation split")
        keep = stratified_subsample(train_y, train_size, seed=split_seed)
        notes.append(
            f"training subset: {train_size:,} of {len(train_y):,} images "
            f"(stratified, split seed {split_seed})"
        )
        train_rows, train_y = train_rows[keep], train_y[keep]
    if test_size is not None:
        _check_size("test_size", test_size, len(test_y), "test images")
        keep = stratified_subsample(test_y, test_size, seed=split_seed)
        notes.append(
            f"test subset: {test_size:,} of {len(test_y):,} images (stratified, split seed {split_seed})"
        )
        test_rows, test_y = test_rows[keep], test_y[keep]

    derivation = json.dumps(
        {
            "classes": classes,
            "val_fraction": val_fraction,
            "train_size": train_size,
            "test_size": test_size,
            "split_seed": split_seed,
        },
        sort_keys=True,
    ).encode()
    # The rows themselves are hashed too, so a change in how splits are drawn can never reuse stored results.
    h = hashlib.sha256(derivation)
    for rows in (train_rows, val_rows, test_rows):
        h.update(rows.astype("<i8").tobytes())
    return DataBundle(
        name=dataset,
        train=_split(raw.train_x, train_y, raw.train_index, train_rows),
        val=_split(raw.train_x, val_y, raw.train_index, val_rows),
        test=_split(raw.test_x, test_y, raw.test_index, test_rows),
        classes=class_names,
        input_shape=tuple(int(d) for d in raw.train_x.shape[1:]),  # type: ignore[arg-type]
        normalization=Normalization(mean=raw.mean, std=raw.std),
        version=f"{raw.version}+{h.hexdigest()[:12]}",
        notes=notes,
    )


def _split(x: np.ndarray, y: np.ndarray, index: np.ndarray, rows: np.ndarray) -> Split:
    # x[rows] and index[rows] gather copies, so the tensors never alias the cached, read-only source arrays.
    return Split(
        x=torch.from_numpy(x[rows]),
        y=torch.from_numpy(np.array(y, dtype=np.int64)),
        index=torch.from_numpy(index[rows]),
    )


def _check_size(option: str, size: int, available: int, what: str) -> None:
    if not 1 <= size <= available:
        raise SpecError(f"{option} must be in 1..{available:,} (the {what}), got {size:,}")
