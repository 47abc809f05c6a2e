"""VGG (Simonyan & Zisserman, 2015, arXiv:1409.1556): stacks of 3×3 convolutions in five stages.

VGG-11, -13, -16 and -19 (the paper's configurations A, B, D and E) differ only in how many convolutions each
stage holds; every stage ends in 2×2 max pooling and doubles the channels up to 512. Two changes make the
network fit the 28–64 px images lineup trains on:

* **Pooling adapts to the input.** A stage is followed by its pooling only while both sides of the map are at
  least 2 (``_layers.halvings``), so a 28×28 input is pooled four times (28 → 14 → 7 → 3 → 1) and its fifth
  stage runs on the 1×1 map, where a padded 3×3 kernel sees only its centre. No input size is too small.
* **The head is global average pooling and a linear classifier**, not the paper's three fully connected layers
  (4096, 4096, 1000) on a 7×7×512 map, which hold 124M of VGG-16's 138M parameters at 224 px. At 28–64 px the
  last map is 1×1 or 2×2, so that head would be almost all of the model and compare classifiers rather than
  feature extractors. Averaging the last map as Network in Network does (Lin, Chen & Yan, 2014,
  arXiv:1312.4400) keeps the parameters in the convolutions; ``fc`` adds hidden layers back when wanted.

Batch norm (Ioffe & Szegedy, 2015) is optional, as in torchvision's ``vgg*_bn`` models; weights are He-normal
(He et al., 2015), which lets even VGG-19 without batch norm train from scratch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import (
    check_dropout,
    check_width,
    check_widths,
    classifier_head,
    conv_layers,
    dense_layers,
    halvings,
    he_init,
    scale_widths,
)
from lineup.models._registry import register_variant


class VGG(LineupModel):
    """Stages of 3×3 conv → (BatchNorm) → ReLU, each followed by 2×2 max pooling, then global average pooling.

    The features are the pooled output of the last stage (``channels[-1] × width`` wide); the head is
    ``fc``'s hidden layers, if any, and a linear layer to the logits.

    Args:
        input_shape: ``(channels, height, width)`` of one example; any size works (see the module docstring).
        num_classes: number of logits.
        layers: convolutions in each stage, input side first; (2, 2, 3, 3, 3) is VGG-16.
        channels: output channels of each stage at ``width`` 1, one entry per stage.
        width: multiplier of every stage's channels and every hidden fc layer's units (rounded, at least 1).
        batch_norm: batch norm between each convolution and its ReLU (the convolutions then have no bias).
        fc: units of hidden fully connected layers between the pooled features and the logits; the paper's
            head would be (4096, 4096) on a 7×7 map.
        dropout: probability of zeroing each input of the head's linear layers during training (the paper
            uses 0.5 in its fully connected layers); 0 builds no dropout layer.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        layers: tuple[int, ...] = (2, 2, 3, 3, 3),
        channels: tuple[int, ...] = (64, 128, 256, 512, 512),
        width: float = 1.0,
        batch_norm: bool = False,
        fc: tuple[int, ...] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_widths("layers", layers, allow_empty=False)
        check_widths("channels", channels, allow_empty=False)
        check_widths("fc", fc)
        check_width(width)
        check_dropout(dropout)
        if len(layers) != len(channels):
            raise SpecError(
                f"layers and channels must have one entry per stage, got {len(layers)} and {len(channels)}"
            )
        pools = halvings(input_shape[1], input_shape[2], len(layers))
        trunk: list[tuple[str, nn.Module]] = []
        in_channels = input_shape[0]
        for stage, (n_convs, out_channels) in enumerate(zip(layers, scale_widths(channels, width), strict=True)):
            for j in range(n_convs):
                trunk += conv_layers(f"conv{stage + 1}_{j + 1}", in_channels, out_channels, batch_norm=batch_norm)
                in_channels = out_channels
            if stage < pools:
                trunk.append((f"pool{stage + 1}", nn.MaxPool2d(2)))
        trunk += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]  # (N, C, h, w) -> (N, C)
        self.features = nn.Sequential(OrderedDict(trunk))
        self.feature_dim = in_channels
        hidden = scale_widths(fc, width)
        head = dense_layers(
            in_channels, hidden, activation="relu", negative_slope=0.01, batch_norm=False, dropout=dropout
        )
        last = hidden[-1] if hidden else in_channels
        self.head = nn.Sequential(
            OrderedDict([*head, *classifier_head(last, num_classes, dropout=dropout).named_children()])
        )
        he_init(self.features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each stage's output, after its pooling where it pools (``stage1`` ... ``stage5``)."""
        stages: dict[str, nn.Module] = {}
        for name, module in self.features.named_children():
            if name.startswith(("conv", "pool")):  # conv{s}_{j}[_bn|_act] and pool{s}: stage s ends at its last
                stages[f"stage{name[4:].split('_')[0]}"] = module
        return stages


# The paper's configurations (its Table 1): convolutions per stage; the channels are the default's.
vgg11 = register_variant(
    "vgg11", VGG, "VGG-11 (Simonyan & Zisserman, 2015; configuration A): 1, 1, 2, 2, 2 convs per stage.",
    layers=(1, 1, 2, 2, 2),
)
vgg13 = register_variant(
    "vgg13", VGG, "VGG-13 (Simonyan & Zisserman, 2015; configuration B): 2 convs in each of 5 stages.",
    layers=(2, 2, 2, 2, 2),
)
vgg16 = register_variant(
    "vgg16", VGG, "VGG-16 (Simonyan & Zisserman, 2015; configuration D): 2, 2, 3, 3, 3 convs per stage."
)
vgg19 = register_variant(
    "vgg19", VGG, "VGG-19 (Simonyan & Zisserman, 2015; configuration E): 2, 2, 4, 4, 4 convs per stage.",
    layers=(2, 2, 4, 4, 4),
)
