"""Mini-batches sliced from tensors held in memory.

It is several times faster to keep a whole dataset as one uint8 tensor and normalise each batch on the
fly than to build per-sample tensors in Python through a Dataset/DataLoader (see benchmarks/).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lineup.data._types import Normalization, Split


def epoch_order(n: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` examples for one epoch, a pure function of ``(seed, epoch)``.

    Deriving the order from the epoch number rather than from a running generator makes a run that resumes
    at any step of any epoch see exactly the batches an uninterrupted run sees.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def iter_batches(
    split: Split,
    norm: Normalization,
    *,
    batch_size: int,
    device: torch.device,
    order: torch.Tensor | None = None,
    start: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches: ``x`` float32 ``(B, C, H, W)`` normalised on ``device``, ``y`` int64 ``(B,)``.

    Args:
        split: the examples; their storage may already live on ``device``.
        norm: normalisation applied per batch.
        batch_size: examples per batch; the last batch may be smaller.
        device: where the batches go.
        order: a permutation of the examples (``None``: in stored order).
        start: index of the first batch to yield, to resume inside an epoch.
    """
    n = len(split)
    if order is not None and order.device != split.x.device:
        order = order.to(split.x.device)  # once per epoch, not once per batch: data held on a GPU stays there
    for lo in range(start * batch_size, n, batch_size):
        if order is None:
            xb, yb = split.x[lo : lo + batch_size], split.y[lo : lo + batch_size]
        else:
            rows = order[lo : lo + batch_size]
            xb, yb = split.x[rows], split.y[rows]
        yield norm.apply(xb.to(device, non_blocking=True)), yb.to(device, non_blocking=True)


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
