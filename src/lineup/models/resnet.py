"""Residual networks (He, Zhang, Ren & Sun, 2016, arXiv:1512.03385) for small images: ResNet-18/34 and ResNet-9.

ResNet-18 and -34 are the paper's ImageNet networks (BasicBlock stages of [2, 2, 2, 2] and [3, 4, 6, 3] blocks,
64 → 128 → 256 → 512 channels) with the **small-input stem** of its CIFAR experiments (§4.2) and of most
CIFAR code since: one 3×3, stride-1 convolution instead of the 7×7, stride-2 convolution and 3×3 max pooling,
which would shrink a 32×32 image to 8×8 before the first block. Stages 2–4 halve the map with a stride-2
convolution, so a 32×32 input reaches the head at 4×4 and a 28×28 one at 4×4 (28 → 14 → 7 → 4).

ResNet-9 is the network with which David Page (Myrtle.ai) trained CIFAR-10 to 94% accuracy faster than any
DAWNBench entry before it ("How to train your ResNet", 2018), and the ancestor of Keller Jordan's airbench
networks (arXiv:2404.00498). It is defined here as Page's, with the changes noted in ``ResNet9``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import (
    check_width,
    check_widths,
    classifier_head,
    conv_layers,
    halvings,
    he_init,
    scale_widths,
)
from lineup.models._registry import register_variant


class BasicBlock(nn.Module):
    """relu(bn(conv3×3(relu(bn(conv3×3(x))))) + shortcut(x)), the two-layer block of ResNet-18/34.

    The shortcut is the identity, or a 1×1 convolution with batch norm where the block changes the channels
    or the resolution (the paper's option B).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(LineupModel):
    """Small-input stem (3×3 conv → BN → ReLU), BasicBlock stages, global average pooling, linear head.

    The first stage keeps the resolution; each later stage starts with a stride-2 block. The features are
    the globally averaged output of the last stage (``channels[-1] × width`` wide).

    Args:
        input_shape: ``(channels, height, width)`` of one example; any size works, since a stride-2 3×3
            convolution maps a 1×1 map to 1×1.
        num_classes: number of logits.
        layers: BasicBlocks in each stage; (2, 2, 2, 2) is ResNet-18, (3, 4, 6, 3) ResNet-34.
        channels: output channels of each stage at ``width`` 1; the stem has the first stage's.
        width: multiplier of every stage's channels (rounded, at least 1).
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        channels: tuple[int, ...] = (64, 128, 256, 512),
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_widths("layers", layers, allow_empty=False)
        check_widths("channels", channels, allow_empty=False)
        check_width(width)
        if len(layers) != len(channels):
            raise SpecError(
                f"layers and channels must have one entry per stage, got {len(layers)} and {len(channels)}"
            )
        widths = scale_widths(channels, width)
        trunk: list[tuple[str, nn.Module]] = [
            ("stem", nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False)),
            ("stem_bn", nn.BatchNorm2d(widths[0])),
            ("stem_act", nn.ReLU()),
        ]
        in_channels = widths[0]
        for stage, (blocks, out_channels) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if stage == 0 else 2
            stage_blocks = []
            for b in range(blocks):
                stage_blocks.append(BasicBlock(in_channels, out_channels, stride if b == 0 else 1))
                in_channels = out_channels
            trunk.append((f"layer{stage + 1}", nn.Sequential(*stage_blocks)))
        trunk += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]  # (N, C, h, w) -> (N, C)
        self.features = nn.Sequential(OrderedDict(trunk))
        self.feature_dim = in_channels
        self.head = classifier_head(in_channels, num_classes)
        he_init(self.features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """The stem's activations (``stem``), then each stage of blocks (``layer1`` ... ``layer4``)."""
        return {"stem" if name == "stem_act" else name: module for name, module in self.features.named_children()
                if name == "stem_act" or name.startswith("layer")}


class Residual(nn.Module):
    """``x + f(x)``: the residual connection of ResNet-9, with no activation after the sum."""

    def __init__(self, *branch: tuple[str, nn.Module]) -> None:
        super().__init__()
        self.branch = nn.Sequential(OrderedDict(branch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class ResNet9(LineupModel):
    """Page's DAWNBench ResNet-9: a prep layer, three layers that double the channels and pool, two residuals.

    Every convolution is 3×3, stride 1, padded, followed by batch norm and ReLU (conv-BN-ReLU below):

    ====== =============================================================================
    prep   conv-BN-ReLU, C → 64
    layer1 conv-BN-ReLU 64 → 128, 2×2 max pool, then x + (conv-BN-ReLU, conv-BN-ReLU)(x)
    layer2 conv-BN-ReLU 128 → 256, 2×2 max pool
    layer3 conv-BN-ReLU 256 → 512, 2×2 max pool, then x + (conv-BN-ReLU, conv-BN-ReLU)(x)
    pool   global max pooling → the 512-d features
    head   linear 512 → num_classes
    ====== =============================================================================

    Eight convolutions and the linear layer make the nine. Two changes from Page's network: a 2×2 pooling is
    skipped once a side is below 2 (as in ``VGG``) so any input size works, and the final pooling is global
    rather than a fixed 4×4 window (the same thing on 32×32 inputs); his logit scale of 0.125 and bias-free
    classifier belong to his training schedule and are left out, as every lineup model is trained the same way.

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of logits.
        width: multiplier of the channels 64, 128, 256, 512 (rounded, at least 1).
    """

    def __init__(self, input_shape: InputShape, num_classes: int, *, width: float = 1.0) -> None:
        super().__init__()
        check_width(width)
        c0, c1, c2, c3 = scale_widths((64, 128, 256, 512), width)
        pools = halvings(input_shape[1], input_shape[2], 3)

        def pool(i: int) -> list[tuple[str, nn.Module]]:
            return [(f"pool{i}", nn.MaxPool2d(2))] if i <= pools else []

        trunk = [
            *conv_layers("prep", input_shape[0], c0, batch_norm=True),
            *conv_layers("conv1", c0, c1, batch_norm=True),
            *pool(1),
            ("res1", Residual(*conv_layers("a", c1, c1, batch_norm=True), *conv_layers("b", c1, c1, batch_norm=True))),
            *conv_layers("conv2", c1, c2, batch_norm=True),
            *pool(2),
            *conv_layers("conv3", c2, c3, batch_norm=True),
            *pool(3),
            ("res3", Residual(*conv_layers("a", c3, c3, batch_norm=True), *conv_layers("b", c3, c3, batch_norm=True))),
            ("global_pool", nn.AdaptiveMaxPool2d(1)),
            ("flatten", nn.Flatten()),  # (N, C, 1, 1) -> (N, C)
        ]
        self.features = nn.Sequential(OrderedDict(trunk))
        self.feature_dim = c3
        self.head = classifier_head(c3, num_classes)
        he_init(self.features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """The prep layer (``prep``), then each of the three layers after its pooling and residual
        (``layer1`` ... ``layer3``); the features are ``layer3`` max-pooled over all positions."""
        f = dict(self.features.named_children())
        return {"prep": f["prep_act"], "layer1": f["res1"], "layer2": f.get("pool2", f["conv2_act"]),
                "layer3": f["res3"]}


resnet9 = register_variant(
    "resnet9", ResNet9, "ResNet-9 of DAWNBench (Page, 2018): prep conv, 3 pooling layers, 2 residual blocks."
)
resnet18 = register_variant(
    "resnet18", ResNet, "ResNet-18 (He et al., 2016) with a 3x3 small-input stem: BasicBlocks [2, 2, 2, 2]."
)
resnet34 = register_variant(
    "resnet34",
    ResNet,
    "ResNet-34 (He et al., 2016) with a 3x3 small-input stem: BasicBlocks [3, 4, 6, 3].",
    layers=(3, 4, 6, 3),
)
