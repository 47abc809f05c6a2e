"""Deterministic stratified splits of a labelled set."""

from __future__ import annotations

import math

import numpy as np
import torch


def stratified_split(
    y: np.ndarray,
    *,
    val_fraction: float | None = None,
    val_size: int | None = None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..N-1`` into a training and a validation part with the class proportions of ``y``.

    The validation size is exact; each class contributes its proportional share, rounded by largest
    remainder (ties to the lower label) so that the shares add up to that size. Within each class the
    examples are drawn by a permutation from ``numpy.random.default_rng(seed)``, so the split is a pure
    function of ``(y, size, seed)``.

    Args:
        y: ``(N,)`` integer labels.
        val_fraction: share of the examples in the validation part, in ``[0, 1]``, rounded half up to an
            integer count; give this or ``val_size``.
        val_size: exact number of validation examples, in ``[0, N]``.
        seed: selects the examples.

    Returns:
        ``(train_idx, val_idx)``: disjoint, sorted int64 positions that together cover ``0..N-1``.

    Example:
        >>> y = np.array([0] * 6 + [1] * 4)
        >>> train, val = stratified_split(y, val_size=5, seed=0)
        >>> np.bincount(y[val]).tolist()  # 6 * 5/10 = 3 and 4 * 5/10 = 2
        [3, 2]
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be 1-D integer labels, got shape {y.shape} of {y.dtype}")
    n = len(y)
    if (val_fraction is None) == (val_size is None):
        raise ValueError("give exactly one of val_fraction and val_size")
    if val_fraction is not None:
        if not 0.0 <= val_fraction <= 1.0:
            raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
        val_size = math.floor(val_fraction * n + 0.5)
    assert val_size is not None
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size must be in [0, {n}], got {val_size}")

    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    shares = _largest_remainder(counts, val_size)
    rng = np.random.default_rng(seed)
    val_parts = [rng.permutation(np.flatnonzero(inverse == k))[:share] for k, share in enumerate(shares)]
    is_val = np.zeros(n, dtype=bool)
    if val_parts:
        is_val[np.concatenate(val_parts)] = True
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def _largest_remainder(counts: np.ndarray, size: int) -> np.ndarray:
    """Integer shares of ``size`` proportional to ``counts`` that sum to exactly ``size``."""
    total = int(counts.sum())
    if total == 0:
        return counts.astype(np.int64)
    # Integer arithmetic: a float quota such as 6000 * 0.1 can land a hair below its integer value.
    numer = counts.astype(np.int64) * size
    shares, remainders = numer // total, numer % total
    missing = size - int(shares.sum())
    shares[np.argsort(-remainders, kind="stable")[:missing]] += 1
    return shares


def fixed_rows(n: int, k: int) -> torch.Tensor:
    """A fixed, sorted random subset of ``k`` of ``n`` positions (all of them when ``n <= k``): the same for every
    run of a study, so that measurements on a subset of a split compare across runs.

    >>> fixed_rows(3, 5).tolist()
    [0, 1, 2]
    >>> len(fixed_rows(100, 10)), bool((fixed_rows(100, 10).diff() > 0).all())
    (10, True)
    """
    if n <= k:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k].sort().values
