"""Tasks derived from a labelled set: class subsets and stratified subsamples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lineup.data.splits import stratified_split


def select_classes(
    x: np.ndarray, y: np.ndarray, classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the examples of ``classes`` and relabel them ``0..k-1`` in the order given.

    Args:
        x: ``(N, ...)`` inputs.
        y: ``(N,)`` integer labels.
        classes: the labels to keep, distinct; ``classes[i]`` becomes label ``i``.

    Returns:
        ``(x_kept, y_kept, kept_index)``: the kept inputs, their new int64 labels and their int64 positions
        in ``x`` (ascending, so the examples keep their order).

    Example:
        >>> x = np.arange(5)
        >>> select_classes(x, np.array([0, 7, 2, 7, 1]), [7, 2])[1:]
        (array([0, 1, 0]), array([1, 2, 3]))
    """
    y = np.asarray(y)
    wanted = np.asarray(list(classes), dtype=np.int64)
    if wanted.size == 0:
        raise ValueError("classes is empty: keep at least one class")
    if len(np.unique(wanted)) != len(wanted):
        raise ValueError(f"classes must be distinct, got {wanted.tolist()}")
    present = np.unique(y)
    absent = [int(c) for c in wanted if c not in present]
    if absent:
        raise ValueError(f"classes {absent} do not occur; labels present: {present.tolist()}")
    kept = np.flatnonzero(np.isin(y, wanted)).astype(np.int64)
    relabel = np.full(int(present.max()) + 1, -1, dtype=np.int64)
    relabel[wanted] = np.arange(len(wanted))
    return x[kept], relabel[y[kept]], kept


def stratified_subsample(y: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Sorted int64 positions of ``n`` examples drawn with the class proportions of ``y``.

    This is the validation side of ``stratified_split(y, val_size=n, seed=seed)``: the total is exactly
    ``n`` and the choice is a pure function of ``(y, n, seed)``.
    """
    return stratified_split(y, val_size=n, seed=seed)[1]
