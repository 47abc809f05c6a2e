"""gapnet: an all-convolutional network whose features are a global average of its last feature maps.

Global average pooling instead of fully connected layers comes from "Network in Network" (Lin, Chen and Yan,
2014, arXiv:1312.4400); it keeps the parameter count low and makes the features one value per channel.
"""

from __future__ import annotations

import torch
from torch import nn

from lineup import LineupModel, register_model


class GapNet(LineupModel):
    """3x3 conv blocks (conv, batch norm, ReLU, 2x2 max pool but after the last), global average pool, linear.

    Args:
        input_shape: ``(C, H, W)`` of one example.
        num_classes: number of classes.
        channels: output channels of each conv block, before ``width``.
        batch_norm: batch norm after each convolution.
        width: multiplies every channel count; lineup's ``params = N`` option chooses it for a parameter budget.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, *, channels: tuple[int, ...] = (16, 32, 64),
                 batch_norm: bool = True, width: float = 1.0) -> None:
        super().__init__()
        widths = [max(1, round(c * width)) for c in channels]
        blocks: list[nn.Module] = []
        cin = input_shape[0]
        for i, cout in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU())
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = cin
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))  # (N, C, H, W) -> (N, C): the global average pool

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        return {f"block{i + 1}": block for i, block in enumerate(self.blocks)}


@register_model
def gapnet(input_shape: tuple[int, int, int], num_classes: int, *, channels: tuple[int, ...] = (16, 32, 64),
           batch_norm: bool = True, width: float = 1.0) -> GapNet:
    """All-convolutional net with global average pooling (Lin et al., 2014): few parameters, one feature per channel."""
    return GapNet(input_shape, num_classes, channels=channels, batch_norm=batch_norm, width=width)
