"""Datasets as tensors: ``load`` turns a catalog name and options into train, validation and test splits."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lineup._lazy import lazy_submodules
from lineup.data import custom, synthetic
from lineup.data._types import DataBundle, Normalization, Split
from lineup.data.catalog import list_datasets as _catalog_datasets
from lineup.data.catalog import load_raw
from lineup.data.custom import DatasetTensors, register_dataset
from lineup.data.distortions import Distortions
from lineup.data.splits import stratified_split
from lineup.data.tasks import select_classes, stratified_subsample
from lineup.data.transform import channel_stats, transform_from_options
from lineup.errors import SpecError

__all__ = ["DataBundle", "DatasetTensors", "Normalization", "Split", "list_datasets", "load", "register_dataset"]


def list_datasets() -> list[str]:
    """The names of all datasets, sorted: the catalog's and the synthetic ones."""
    return sorted([*_catalog_datasets(), *synthetic.list_datasets()])


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
    test_split: Mapping[str, Any] | None = None,
) -> DataBundle:
    """Load a catalog dataset and derive the splits a run trains, selects and tests on.

    The derivation, in this order:

    1. keep ``classes`` (in the training and the test split), relabelled ``0..k-1`` in the order given;
       with ``test_split``, pool what is kept of both (in the order of their indices) and hold out a stratified
       ``fraction`` of it as the test split instead of the dataset's own: scikit-learn's
       ``train_test_split(..., test_size=fraction, stratify=y, random_state=seed)`` of the pooled examples;
       then the ``imbalance`` distortion, if asked for, drops examples until its class has its share;
    2. hold out ``val_fraction`` of the training split as the validation split (stratified, ``split_seed``);
    3. subsample what remains for training to ``train_size`` examples (stratified, ``split_seed``);
    4. subsample the test split to ``test_size`` examples (stratified, ``split_seed``);
    5. resize and convert the kept images (``resize`` and ``channels`` in ``options``), then apply the other
       distortions (see ``lineup.data.distortions``).

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
        options: ``resize`` ([height, width] or one int) and ``channels`` (1 or 3), which every image dataset
            takes (see ``lineup.data.transform``), and the dataset's own settings (only ``image-folder`` has
            any).
        distortions: controlled distortions of the splits, the ``[data.distortions]`` table: ``imbalance``,
            ``label_noise``, ``input_noise``, ``affine``, ``erasing``, ``blur``.
        test_split: ``{"fraction": f, "seed": s}``: a test split drawn anew, for datasets read from files. How
            much a result depends on which examples were held out is then measured by varying ``seed`` (one
            data setting per seed). An example's index stays its position in the source when the source numbers
            its training and test examples apart (the rows of one CSV file); otherwise examples of the test file
            are numbered after those of the training file.

    Returns:
        The splits as uint8 ``(N, C, H, W)`` and int64 ``(N,)`` tensors, each with the positions of its
        examples in the source's train or test file; ``version`` identifies the source data and the
        derivation, transforms and distortions included.

    Raises:
        SpecError: an option that does not fit this dataset (unknown class, more examples than there are).
        UnknownNameError: no dataset of that name.
        DataError: the data is missing and cannot be downloaded, or is corrupt.
    """
    if synthetic.is_synthetic(dataset):  # drawn from a known distribution, not read from files
        _refuse_test_split(dataset, test_split, "is drawn from a known distribution: its test sample is set by "
                           "its own options (n_test) and test_size")
        return synthetic.load_synthetic(dataset, options=options, classes=classes, train_size=train_size,
                                        val_fraction=val_fraction, test_size=test_size, split_seed=split_seed,
                                        distortions=distortions)
    transform, own_options = transform_from_options(options)
    distort = Distortions.parse(distortions)  # both validated before any file is read
    if custom.gives_floats(dataset, own_options):  # a dataset registered in code whose inputs are not images
        _refuse_test_split(dataset, test_split, "gives float inputs from its own code: split them there")
        return custom.load_floats(dataset, options=own_options, classes=classes, train_size=train_size,
                                  val_fraction=val_fraction, test_size=test_size, split_seed=split_seed,
                                  image_settings=bool(transform), distortions=bool(distort))
    raw = load_raw(dataset, root, download=download, options=own_options)
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
    pooled = None
    if test_split is not None:
        fraction, seed = _test_split_options(test_split)
        offset = _test_index_offset(raw.train_index, raw.test_index)
        pooled = _Pooled(raw.train_x, raw.test_x, np.concatenate([raw.train_index, raw.test_index + offset]))
        rows = np.concatenate([train_rows, test_rows + len(raw.train_y)])  # rows of train, then test file
        y_all = np.concatenate([train_y, test_y])
        # In the order of the examples' indices (a CSV file's row order), which a user's own draw would follow.
        order = np.argsort(pooled.index[rows], kind="stable")
        rows, y_all = rows[order], y_all[order]
        # Stratified by the source's labels, not the kept classes' new ones, whose order the study chose.
        keep, held = _draw_test_split(y_all if classes is None else np.asarray(classes)[y_all], fraction, seed)
        train_rows, train_y, test_rows, test_y = rows[keep], y_all[keep], rows[held], y_all[held]
        notes.append(
            f"test split drawn anew: a stratified {fraction:.3g} ({len(held):,}) of the {len(y_all):,} examples of "
            f"the training and test files (seed {seed}), as scikit-learn's train_test_split draws it with that "
            "random_state, instead of the dataset's own test split"
            + (f"; test-file examples are numbered from {offset:,}" if offset else "")
        )
    if distort:
        distort.check_classes(class_names)
        train_rows, train_y, note = distort.rebalance(train_rows, train_y, split="train", class_names=class_names,
                                                      seed=split_seed)
        test_rows, test_y, test_note = distort.rebalance(test_rows, test_y, split="test", class_names=class_names,
                                                         seed=split_seed)
        notes += note + test_note

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

    if pooled is None:
        splits = {
            "train": _split(raw.train_x, train_y, raw.train_index, train_rows),
            "val": _split(raw.train_x, val_y, raw.train_index, val_rows),
            "test": _split(raw.test_x, test_y, raw.test_index, test_rows),
        }
    else:
        splits = {name: pooled.split(y, rows) for name, y, rows in
                  (("train", train_y, train_rows), ("val", val_y, val_rows), ("test", test_y, test_rows))}
    normalization = Normalization(mean=raw.mean, std=raw.std)
    if transform:
        before = tuple(raw.train_x.shape[1:])
        splits = {name: Split(transform.apply(s.x), s.y, s.index) for name, s in splits.items()}
        normalization = Normalization(*channel_stats(splits["train"].x))
        notes.append(transform.describe(before, tuple(splits["train"].x.shape[1:])))
    if distort:
        splits, lines = distort.apply(splits, num_classes=len(class_names), seed=split_seed)
        notes += lines

    settings = {
        "classes": classes,
        "val_fraction": val_fraction,
        "train_size": train_size,
        "test_size": test_size,
        "split_seed": split_seed,
    }
    # Present only when used, so that the versions of plain data (and the results stored under them) stay.
    if own_options:
        settings["options"] = own_options
    if transform:
        settings["transform"] = transform.to_dict()
    if distort:
        settings["distortions"] = distort.to_dict()
    if test_split is not None:
        settings["test_split"] = {"fraction": fraction, "seed": seed}
    # The rows themselves are hashed too, so a change in how splits are drawn can never reuse stored results;
    # so are transformed or distorted tensors, which float arithmetic on another machine might change.
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for rows in (train_rows, val_rows, test_rows):
        h.update(rows.astype("<i8").tobytes())
    if transform or distort:
        for s in splits.values():
            h.update(s.x.numpy().tobytes())
            h.update(s.y.numpy().astype("<i8").tobytes())
    return DataBundle(
        name=dataset,
        **splits,
        classes=class_names,
        input_shape=tuple(int(d) for d in splits["train"].x.shape[1:]),  # type: ignore[arg-type]
        normalization=normalization,
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


@dataclass(frozen=True)
class _Pooled:
    """The training and test files of a source as one sequence of rows: the training file's, then the test file's."""

    train_x: np.ndarray
    test_x: np.ndarray
    index: np.ndarray  # (rows of both,) each row's example index

    def split(self, y: np.ndarray, rows: np.ndarray) -> Split:
        n = len(self.train_x)
        from_test = rows >= n
        x = np.empty((len(rows), *self.train_x.shape[1:]), dtype=self.train_x.dtype)
        x[~from_test] = self.train_x[rows[~from_test]]
        x[from_test] = self.test_x[rows[from_test] - n]
        return Split(x=torch.from_numpy(x), y=torch.from_numpy(np.array(y, dtype=np.int64)),
                     index=torch.from_numpy(self.index[rows]))


def _refuse_test_split(dataset: str, test_split: Mapping[str, Any] | None, why: str) -> None:
    if test_split is not None:
        raise SpecError(f"test_split draws a test split anew from a dataset's image files, and {dataset} {why}; "
                        "remove test_split", key="data.test_split")


def _draw_test_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions ``(kept, held out)`` of scikit-learn's stratified ``train_test_split`` of ``y`` (the
    source's labels).

    The draw is scikit-learn's own (``train_test_split(..., test_size=fraction, stratify=y, random_state=seed)``,
    which holds out ``ceil(fraction N)`` examples), so a split lineup draws is the one a user draws beside it from
    the same examples in the same order, and a figure published for such a split can be checked on that split.
    """
    from sklearn.model_selection import train_test_split

    n, classes = len(y), len(np.unique(y))
    held_size = math.ceil(fraction * n)
    if held_size < classes or n - held_size < classes:
        raise SpecError(f"test_split fraction {fraction:g} of {n:,} examples holds out {held_size:,}, and each of the "
                        f"two splits needs one example of each of the {classes} classes; use a fraction nearer 0.5",
                        key="data.test_split.fraction")
    try:
        keep, held = train_test_split(np.arange(n), test_size=fraction, stratify=y, random_state=seed)
    except ValueError as e:  # e.g. a class with a single example, which no stratified split can put on both sides
        raise SpecError(f"test_split cannot draw a stratified split of these {n:,} examples: {e}",
                        key="data.test_split") from e
    return np.sort(keep), np.sort(held)


def _test_split_options(options: Mapping[str, Any]) -> tuple[float, int]:
    unknown = sorted(set(options) - {"fraction", "seed"})
    if unknown:
        raise SpecError(f"test_split takes fraction and seed, not {', '.join(unknown)}", key="data.test_split")
    fraction, seed = options.get("fraction", 0.2), options.get("seed", 0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 0.9:
        raise SpecError(f"test_split fraction must be a number in (0, 0.9], got {fraction!r}",
                        key="data.test_split.fraction")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise SpecError(f"test_split seed must be an integer in [0, 2**32), got {seed!r}", key="data.test_split.seed")
    return float(fraction), seed


def _test_index_offset(train_index: np.ndarray, test_index: np.ndarray) -> int:
    """0 when the source numbers its training and test examples apart, else the first number after the training
    file's, so that every example of the pooled splits keeps a distinct index."""
    if not np.intersect1d(train_index, test_index).size:
        return 0
    return int(train_index.max()) + 1 if len(train_index) else 0


def _check_size(option: str, size: int, available: int, what: str) -> None:
    if not 1 <= size <= available:
        raise SpecError(f"{option} must be in 1..{available:,} (the {what}), got {size:,}")


__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.data.<submodule> without importing it first
