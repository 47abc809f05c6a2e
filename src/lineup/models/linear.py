"""Linear classifiers on the raw pixels: logistic regression (binary) and softmax regression (multiclass).

They are the baselines every other model must beat, and the models whose risk the Bayes classifier of a
Gaussian mixture with shared covariance can reach exactly (the optimal rule is linear there).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._registry import register_model


class SoftmaxRegression(LineupModel):
    """One linear layer from the flattened input to ``num_outputs`` logits; the features are the input."""

    def __init__(self, input_shape: InputShape, num_outputs: int) -> None:
        super().__init__()
        self.feature_dim = math.prod(input_shape)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(self.feature_dim, num_outputs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(x)  # (N, C, H, W) -> (N, C*H*W)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


class LogisticRegression(SoftmaxRegression):
    """Softmax regression's binary special case with a single logit, ``log p(y=1|x) / p(y=0|x)``."""

    default_objective = "binary_cross_entropy"

    def __init__(self, input_shape: InputShape) -> None:
        super().__init__(input_shape, 1)


@register_model
def logistic_regression(input_shape: InputShape, num_classes: int) -> LogisticRegression:
    """Logistic regression on the flattened input: one logit for class 1, trained with binary cross-entropy.

    Two-class softmax regression has the same decision rule with twice the weights; one logit is the textbook
    model and has a unique optimum.
    """
    if num_classes != 2:
        raise SpecError(
            f"logistic regression is binary (num_classes = 2), got num_classes = {num_classes}; "
            "use softmax_regression for more classes"
        )
    return LogisticRegression(input_shape)


@register_model
def softmax_regression(input_shape: InputShape, num_classes: int) -> SoftmaxRegression:
    """Softmax (multinomial logistic) regression on the flattened input: one linear layer to the logits."""
    return SoftmaxRegression(input_shape, num_classes)
