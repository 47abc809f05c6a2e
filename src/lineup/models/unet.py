"""U-Net (Ronneberger, Fischer & Brox, 2015, arXiv:1505.04597) used as a classifier.

A U-Net is an encoder that halves the resolution and doubles the channels ``depth`` times, and a decoder that
undoes it, each decoder level reading the upsampled map concatenated with the encoder map of the same
resolution (the skip connection). Here the decoder's full-resolution output is averaged over all pixels into
the features and a linear layer gives the logits, so a U-Net can stand in the same line-up as a VGG or a
ResNet; an optional 1×1 convolution gives the per-pixel maps of the paper (``UNet.segment``).

Two differences from the paper: its 3×3 convolutions are unpadded, so a 572×572 tile yields a 388×388 map and
every skip is cropped; here they are padded, so each level keeps its size and the output has the input's.
And a side that is odd before a pooling loses its last row or column there; the decoder pads the upsampled
map with zeros at that edge so it lines up with its skip pixel for pixel. Inputs of any size from ``2**depth``
up work, whether divisible by ``2**depth`` or not.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import check_width, classifier_head, conv_layers, he_init, scale_widths
from lineup.models._registry import register_variant


def _double_conv(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    """(3×3 conv → [BN] → ReLU) twice: one level of the encoder or the decoder."""
    layers = conv_layers("conv1", in_channels, out_channels, batch_norm=batch_norm)
    layers += conv_layers("conv2", out_channels, out_channels, batch_norm=batch_norm)
    return nn.Sequential(OrderedDict(layers))


class UNet(LineupModel):
    """Encoder, decoder with skip connections, global average pooling of the decoder output, linear head.

    Level ``i`` (0 = full resolution) has ``64 · 2**i · width`` channels, so the default depth 4 runs
    64 → 128 → 256 → 512 → 1024 channels as in the paper. Going down is 2×2 max pooling; going up is a 2×2,
    stride-2 transposed convolution to the channels of the level below, whose output is concatenated with
    that level's encoder map and convolved twice. The features are the decoder's full-resolution map averaged
    over all pixels (``64 · width`` wide).

    Args:
        input_shape: ``(channels, height, width)`` of one example; height and width must be at least
            ``2**depth``.
        num_classes: number of logits.
        depth: number of poolings (and of upsamplings).
        width: multiplier of every level's channels (rounded, at least 1).
        batch_norm: batch norm between each convolution and its ReLU; the paper has none.
        segmentation_output: channels of a 1×1 convolution on the decoder output whose per-pixel maps
            ``segment`` returns; 0 builds none. It is not part of ``forward``, so training a classifier leaves
            it untrained.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        depth: int = 4,
        width: float = 1.0,
        batch_norm: bool = False,
        segmentation_output: int = 0,
    ) -> None:
        super().__init__()
        check_width(width)
        if depth < 1:
            raise SpecError(f"depth must be at least 1, got {depth}")
        if segmentation_output < 0:
            raise SpecError(f"segmentation_output must be 0 (none) or a number of maps, got {segmentation_output}")
        smallest = 2**depth
        if min(input_shape[1:]) < smallest:
            shape = "×".join(map(str, input_shape))
            raise SpecError(
                f"input {shape} is too small for depth {depth}: each of the {depth} poolings halves height and "
                f"width, so both must be at least {smallest}; use a smaller depth or larger inputs (resize)"
            )
        channels = scale_widths([64 * 2**i for i in range(depth + 1)], width)
        self.encoder = nn.ModuleList()
        in_channels = input_shape[0]
        for c in channels:
            self.encoder.append(_double_conv(in_channels, c, batch_norm))
            in_channels = c
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):  # from the bottom up to full resolution
            c = channels[level]
            self.upsample.append(nn.ConvTranspose2d(channels[level + 1], c, 2, stride=2))
            self.decoder.append(_double_conv(2 * c, c, batch_norm))  # upsampled map and skip, concatenated
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels[0]
        self.head = classifier_head(channels[0], num_classes)
        self.segmentation_head = nn.Conv2d(channels[0], segmentation_output, 1) if segmentation_output else None
        he_init(self)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's full-resolution map, ``(N, C, H, W)`` to ``(N, 64 · width, H, W)``."""
        skips = []
        for i, level in enumerate(self.encoder):
            if i:
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        for up, level, skip in zip(self.upsample, self.decoder, reversed(skips[:-1]), strict=True):
            x = up(x)
            # Pooling floored an odd side, dropping the last row or column; pad there so pixels line up.
            dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            x = F.pad(x, [0, dw, 0, dh])
            x = level(torch.cat([skip, x], dim=1))  # (N, 2c, h, w)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.gap(self.decode(x)).flatten(1)  # (N, C, H, W) -> (N, C)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel maps ``(N, segmentation_output, H, W)`` of the 1×1 convolution on the decoder output.

        Raises:
            RuntimeError: the model was built with ``segmentation_output = 0``.
        """
        if self.segmentation_head is None:
            raise RuntimeError("this U-Net has no segmentation head: build it with segmentation_output > 0")
        return self.segmentation_head(self.decode(x))


unet = register_variant(
    "unet", UNet, "U-Net (Ronneberger et al., 2015) as a classifier: decoder output averaged, then linear."
)
