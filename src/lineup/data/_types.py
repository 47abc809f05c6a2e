"""The data contract: what every dataset hands to the engine."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch


@dataclass(frozen=True)
class Split:
    """One split held in memory.

    Attributes:
        x: inputs, ``(N, C, H, W)``; uint8 for image datasets (normalised per batch, see ``Normalization``)
            or float32 for synthetic data.
        y: class labels, ``(N,)`` int64 in ``[0, num_classes)``.
        index: ``(N,)`` int64 position of each example in its source file, so results can point back at it.
    """

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        n = self.x.shape[0]
        if self.y.shape != (n,) or self.index.shape != (n,):
            raise ValueError(f"x, y and index disagree on N: {n}, {tuple(self.y.shape)}, {tuple(self.index.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, rows: torch.Tensor) -> Split:
        """The examples at positions ``rows`` (a 1-D int64 tensor)."""
        return Split(self.x[rows], self.y[rows], self.index[rows])

    @staticmethod
    def concat(a: Split, b: Split) -> Split:
        return Split(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), torch.cat([a.index, b.index]))


@dataclass(frozen=True)
class Normalization:
    """How stored inputs become model inputs: ``(x * scale - mean) / std`` per channel.

    ``scale`` is 1/255 for uint8 images and 1 for data already stored as float.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0 / 255.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 model input from a stored batch ``x`` of shape ``(B, C, H, W)``."""
        mean, std = _channel_stats(self.mean, self.std, x.shape[1], x.device)
        return (x.to(torch.float32) * self.scale - mean) / std

    def log_det_jacobian(self, shape: tuple[int, ...]) -> float:
        """``log |det d x' / d x|`` of ``apply`` on one input of ``shape = (C, H, W)``, where
        ``x' = (x * scale - mean) / std`` per channel: for densities ``p`` of stored inputs and ``p'`` of model
        inputs, ``log p(x) = log p'(x') + log |det d x' / d x|``."""
        c, values_per_channel = shape[0], math.prod(shape[1:])
        std = self.std if len(self.std) == c else self.std * c  # one std given for every channel
        return values_per_channel * sum(math.log(self.scale / s) for s in std)


@lru_cache(maxsize=64)
def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...], c: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, C, 1, 1)`` mean and std on ``device``, made once: building them from Python floats for every batch is
    a blocking host-to-device copy per step on a GPU."""
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(1, c, 1, 1),
            torch.tensor(std, dtype=torch.float32, device=device).view(1, c, 1, 1))


@dataclass(frozen=True)
class DataBundle:
    """Train, validation and test splits of one dataset, with what the report needs to know about them.

    Attributes:
        name: the dataset's catalog name, e.g. ``"fashion-mnist"``.
        train, val, test: the three splits; ``test`` is never used for training or model selection.
        classes: class names, index = label.
        input_shape: ``(C, H, W)``.
        normalization: applied to every batch on the fly.
        version: content identifier of the source files and the derivation (subset, split seed ...);
            part of every run's hash, so changed data never reuses stored results.
        notes: human-readable facts for the report, e.g. "training subset: 12,000 of 60,000 images".
        distribution: for synthetic data whose distribution is known, an object with ``posterior(x)``,
            ``bayes_predict(x)`` and ``bayes_risk()``; ``None`` for real data.
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    input_shape: tuple[int, int, int]
    normalization: Normalization
    version: str
    notes: list[str] = field(default_factory=list)
    distribution: Any = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)
