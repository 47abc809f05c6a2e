"""The interface every lineup model shares, so training and analysis code never ask which model they hold."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

InputShape = tuple[int, int, int]
"""``(channels, height, width)`` of one example."""


class LineupModel(nn.Module):
    """Base class: a feature extractor followed by a head (the split timm's models expose).

    ``forward(x) == forward_head(forward_features(x))``. Analysis code reads any model's representation
    through ``forward_features`` and its width through ``feature_dim``, whatever the architecture.

    Attributes:
        default_objective: name of the training objective the model's outputs are meant for:
            ``"cross_entropy"`` for ``(N, num_classes)`` logits, ``"binary_cross_entropy"`` for ``(N, 1)``
            logits.
        feature_dim: width ``D`` of the ``(N, D)`` representation returned by ``forward_features``; set by
            each subclass in ``__init__``.
    """

    default_objective: ClassVar[str] = "cross_entropy"
    feature_dim: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the head reads: ``(N, C, H, W)`` inputs to ``(N, feature_dim)`` features."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from the ``(N, feature_dim)`` features of ``forward_features``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def representation_layers(self) -> dict[str, nn.Module]:
        """The intermediate layers that representation analyses compare, by short name, input side first.

        After training, lineup records the output of each of these submodules on a fixed subset of test
        examples (forward hooks during one ``forward_features`` pass, so each module must run exactly once in
        it) and the report compares them layer by layer: across seeds of the model, and across models at the
        same relative depth. An output ``(N, C, ...)`` with spatial dimensions is averaged over them into
        ``(N, C)``, one value per channel. The default declares none; a model opts in by overriding this with
        its natural stages (conv blocks, residual stages, hidden layers). ``forward_features`` is always
        recorded as well, so it need not be declared.
        """
        return {}
