"""Random augmentation of training batches, and learning-rate schedules: both pure functions of the step.

Each batch's random draws come from a generator seeded by ``(seed, step)``, and the learning rate of a step is
computed from the step alone, so a run resumed from a checkpoint draws and steps exactly as one that never
stopped, and the global random state (initialisation, dropout) is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Learning-rate schedules: the factor applied to the base learning rate at step ``t`` of ``total``.
SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """``constant``: 1. ``cosine``: 0.5 · (1 + cos(π · step / total)), from 1 at the first step towards 0 at
    the last (Loshchilov & Hutter, arXiv:1608.03983, without restarts).

    >>> lr_factor("cosine", 0, 100), lr_factor("cosine", 50, 100)
    (1.0, 0.5)
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class Augmentation:
    """Random mirror and shift of each training image, drawn anew every step.

    Args:
        hflip: mirror each image left-right with probability 1/2.
        shift: move each image by a whole number of pixels drawn uniformly in ``[-shift, shift]`` on each axis,
            filling the uncovered border with ``fill`` (random crop of a zero-padded image, as in the CIFAR
            experiments of He et al., arXiv:1512.03385, where shift is 4).
        fill: per-channel value of the border, in the batch's normalised units (black pixels: -mean/std).
    """

    hflip: bool = False
    shift: int = 0
    fill: tuple[float, ...] = (0.0,)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.hflip:
            mirror = torch.rand(n, generator=generator, device=generator.device) < 0.5
            x = torch.where(mirror.to(x.device)[:, None, None, None], x.flip(3), x)
        if self.shift:
            s = self.shift
            fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).expand(c)
            padded = F.pad(x - fill[:, None, None], (s, s, s, s)) + fill[:, None, None]  # (N, C, H+2s, W+2s)
            dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=generator, device=generator.device).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (N, 1, H, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (N, 1, 1, W)
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chan = torch.arange(c, device=x.device)[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        return x


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, step)`` alone."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
