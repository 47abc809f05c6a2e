"""Multilayer perceptron on the flattened input (Rumelhart, Hinton & Williams, 1986)."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import (
    Activation,
    check_dropout,
    check_width,
    check_widths,
    classifier_head,
    dense_layers,
    scale_widths,
)
from lineup.models._registry import register_variant


class MLP(LineupModel):
    """Flatten → [Linear → (BatchNorm) → activation] per hidden layer → Linear to the logits.

    The features are the last hidden layer's activations; with no hidden layer the model is softmax regression
    and the features are the flattened input.

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of logits.
        hidden: units of each hidden layer, input side first.
        activation: nonlinearity after every hidden layer.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        dropout: probability of zeroing each hidden unit during training, applied to the output of every
            hidden layer (so on the input of every linear layer but the first); 0 builds no dropout layer.
        batch_norm: batch norm between each hidden linear layer and its activation (those layers then have no
            bias).
        width: multiplier of every hidden layer's units (rounded, at least 1); with it the model takes a
            ``params`` budget.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        hidden: tuple[int, ...] = (256, 128),
        activation: Activation = "relu",
        negative_slope: float = 0.01,
        dropout: float = 0.0,
        batch_norm: bool = False,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_widths("hidden", hidden)
        check_dropout(dropout)
        check_width(width)
        hidden = scale_widths(hidden, width)
        in_features = math.prod(input_shape)
        layers = dense_layers(
            in_features,
            hidden,
            activation=activation,
            negative_slope=negative_slope,
            batch_norm=batch_norm,
            dropout=dropout,
        )
        self.features = nn.Sequential(OrderedDict([("flatten", nn.Flatten()), *layers]))
        self.feature_dim = hidden[-1] if hidden else in_features
        self.head = classifier_head(self.feature_dim, num_classes, dropout=dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each hidden layer's activations (``fc1``, ``fc2``, ...); none for softmax regression (no hidden layer)."""
        return {name.removesuffix("_act"): module for name, module in self.features.named_children()
                if name.endswith("_act")}


mlp = register_variant(
    "mlp", MLP, "Multilayer perceptron on the flattened input, two ReLU hidden layers by default."
)
