"""Training objectives: how a model's outputs become a loss and class probabilities.

The engine calls only these functions, so it never needs to know which model it trains.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from lineup._registry import Registry


class Objective(Protocol):
    name: str

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch (scalar tensor)."""
        ...

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Summed loss of a batch, for exact averages over a split."""
        ...

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K)``."""
        ...


_objectives: Registry = Registry("objective")


@_objectives.register(name="cross_entropy")
class CrossEntropy:
    """Softmax cross-entropy on ``(B, K)`` logits."""

    name = "cross_entropy"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y)

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y, reduction="sum")

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(dim=1)


@_objectives.register(name="binary_cross_entropy")
class BinaryCrossEntropy:
    """Logistic loss on ``(B, 1)`` logits of class 1 (labels 0/1)."""

    name = "binary_cross_entropy"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs.squeeze(1), y.to(outputs.dtype))

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs.squeeze(1), y.to(outputs.dtype), reduction="sum")

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        p1 = torch.sigmoid(outputs.squeeze(1))
        return torch.stack([1 - p1, p1], dim=1)


def create_objective(name: str) -> Objective:
    """The objective registered as ``name``."""
    return _objectives.get(name)()  # type: ignore[no-any-return]


def list_objectives() -> list[str]:
    return _objectives.names()
