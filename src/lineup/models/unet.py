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

With ``encoder = "resnet"`` the encoder is instead the trunk of a ResNet-18/34 (``lineup.models.resnet.ResNet``,
small-input stem and BasicBlock stages whose first block has stride 2) and the decoder reads each stage's
output as its skip, as in the residual U-Nets of segmentation work. Built with the same ``depth + 1`` stages,
``blocks`` and ``width`` as a study's ResNet entry, its encoder can start from that entry's trained weights
(``init_from`` in the study file; ``load_pretrained`` below).
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
        encoder: ``"plain"``, the paper's double convolutions and max pooling; or ``"resnet"``, the stem and
            ``depth + 1`` BasicBlock stages of a ResNet (always with batch norm, as the ResNet has), whose
            stride-2 blocks replace the pooling; any input size then works.
        blocks: BasicBlocks per stage of the ``"resnet"`` encoder (2: ResNet-18's stages).
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
        encoder: str = "plain",
        blocks: int = 2,
    ) -> None:
        super().__init__()
        check_width(width)
        if depth < 1:
            raise SpecError(f"depth must be at least 1, got {depth}")
        if segmentation_output < 0:
            raise SpecError(f"segmentation_output must be 0 (none) or a number of maps, got {segmentation_output}")
        if encoder not in ("plain", "resnet"):
            raise SpecError(f"encoder must be 'plain' or 'resnet', got {encoder!r}")
        if blocks < 1:
            raise SpecError(f"blocks must be at least 1, got {blocks}")
        self.residual_encoder = encoder == "resnet"
        smallest = 1 if self.residual_encoder else 2**depth
        if min(input_shape[1:]) < smallest:
            shape = "×".join(map(str, input_shape))
            raise SpecError(
                f"input {shape} is too small for depth {depth}: each of the {depth} poolings halves height and "
                f"width, so both must be at least {smallest}; use a smaller depth or larger inputs (resize)"
            )
        channels = scale_widths([64 * 2**i for i in range(depth + 1)], width)
        self.encoder = nn.ModuleList()
        in_channels = input_shape[0]
        if self.residual_encoder:
            self.encoder.extend(_resnet_levels(in_channels, channels, blocks))
        else:
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
            if i and not self.residual_encoder:  # the ResNet's stride-2 blocks halve the map themselves
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        for up, level, skip in zip(self.upsample, self.decoder, reversed(skips[:-1]), strict=True):
            x = up(x)
            # Pooling floored an odd side, dropping the last row or column; pad there so pixels line up. (A
            # stride-2 convolution rounds up instead: the negative padding crops the extra row or column.)
            dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            x = F.pad(x, [0, dw, 0, dh])
            x = level(torch.cat([skip, x], dim=1))  # (N, 2c, h, w)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.gap(self.decode(x)).flatten(1)  # (N, C, H, W) -> (N, C)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each encoder level going down (``enc0`` at full resolution ... ``enc{depth}``, the bottleneck), then
        each decoder level going up (``dec{depth-1}`` ... ``dec0``, whose average is the features)."""
        layers: dict[str, nn.Module] = {f"enc{i}": level for i, level in enumerate(self.encoder)}
        depth = len(self.decoder)
        layers.update({f"dec{depth - 1 - j}": level for j, level in enumerate(self.decoder)})
        return layers

    def load_pretrained(self, source: dict[str, torch.Tensor], source_name: str) -> list[str]:
        """Start the encoder from the trained trunk of a ResNet-18/34 (``source``: its ``state_dict``).

        The ResNet's stem and first stage become encoder level 0 and its stage ``k`` level ``k - 1``; the
        decoder and the head keep their fresh initialisation. Returns the names of the tensors copied.

        Raises:
            SpecError: this U-Net's encoder is not a ResNet's, or its stages, blocks or widths differ from the
                source's, naming the first tensor that does not fit.
        """
        if not self.residual_encoder:
            raise SpecError(f"only a U-Net with encoder = \"resnet\" can start from {source_name!r}'s weights")
        own = self.state_dict()
        mapped: dict[str, torch.Tensor] = {}
        for key, tensor in source.items():
            if not key.startswith("features."):
                continue  # the ResNet's head
            part = key.removeprefix("features.")
            top = part.split(".", 1)[0]
            if top.startswith("layer") and top[5:].isdigit():
                level = max(int(top[5:]) - 1, 0)
            elif top.startswith("stem"):
                level = 0
            else:
                continue
            target = f"encoder.{level}.{part}"
            if target not in own or own[target].shape != tensor.shape:
                got = "missing" if target not in own else f"shaped {tuple(own[target].shape)}"
                raise SpecError(
                    f"{source_name!r}'s {key} {tuple(tensor.shape)} does not fit this U-Net's encoder ({target} "
                    f"{got}): give the U-Net depth = (the ResNet's stages - 1), the same blocks per stage and the "
                    "same width")
            mapped[target] = tensor
        missing = [k for k in own if k.startswith("encoder.") and k not in mapped]
        if missing:
            raise SpecError(f"{source_name!r} has no weights for this U-Net's {missing[0]}: give the U-Net "
                            "depth = (the ResNet's stages - 1) and the same blocks per stage")
        self.load_state_dict(mapped, strict=False)
        return sorted(mapped)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel maps ``(N, segmentation_output, H, W)`` of the 1×1 convolution on the decoder output.

        Raises:
            RuntimeError: the model was built with ``segmentation_output = 0``.
        """
        if self.segmentation_head is None:
            raise RuntimeError("this U-Net has no segmentation head: build it with segmentation_output > 0")
        return self.segmentation_head(self.decode(x))


def _resnet_levels(in_channels: int, channels: list[int], blocks: int) -> list[nn.Module]:
    """The trunk of ``ResNet`` cut at each stage: level 0 is the stem and the first stage, level k stage k + 1,
    with the ResNet's module names so that its weights load by name."""
    from lineup.models.resnet import BasicBlock

    levels: list[nn.Module] = []
    for i, c in enumerate(channels):
        stage = nn.Sequential(*(BasicBlock(in_channels if b == 0 else c, c, 2 if i and b == 0 else 1)
                                for b in range(blocks)))
        named: list[tuple[str, nn.Module]] = []
        if i == 0:
            named += [("stem", nn.Conv2d(in_channels, c, 3, padding=1, bias=False)), ("stem_bn", nn.BatchNorm2d(c)),
                      ("stem_act", nn.ReLU())]
            stage = nn.Sequential(*(BasicBlock(c, c, 1) for _ in range(blocks)))
        named.append((f"layer{i + 1}", stage))
        levels.append(nn.Sequential(OrderedDict(named)))
        in_channels = c
    return levels


unet = register_variant(
    "unet", UNet, "U-Net (Ronneberger et al., 2015) as a classifier: decoder output averaged, then linear."
)
