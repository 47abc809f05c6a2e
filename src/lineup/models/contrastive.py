"""A small CNN encoder for metric learning: embeddings on the unit sphere, a linear head for fine-tuning.

Trained with a triplet loss (``lineup.train.losses.triplet_loss``; Schroff, Kalenichenko & Philbin, 2015,
arXiv:1503.03832; Hermans, Beyer & Leibe, 2017, arXiv:1703.07737), the embedding places examples of one class
close together and those of different classes at least a margin apart. L2-normalising it, as FaceNet does, bounds
the distances to [0, 2], so a margin means the same thing throughout training instead of being beaten by
scaling every embedding up. ``forward_features`` returns the normalised embedding, the representation analyses
read; ``forward`` returns the logits of a linear layer on it, the head a classifier fine-tuned from the embedding
uses (and the one the registry's contract asks for).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import check_width, check_widths, classifier_head, conv_layers, halvings, scale_widths
from lineup.models._registry import register_variant


class ContrastiveEncoder(LineupModel):
    """[3×3 conv → (BN) → ReLU → 2×2 max pool] per stage → global average pool → linear → L2 normalisation.

    A stage pools only while both sides are at least 2 (``halvings``), so any input size works; the global
    average makes the embedding's width independent of it.

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of logits of the fine-tuning head.
        embedding_dim: dimension of the embedding.
        channels: output channels of each stage, input side first.
        batch_norm: batch norm before every ReLU.
        width: multiplier of ``channels`` (not of ``embedding_dim``); with it the model takes ``params``.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        embedding_dim: int = 64,
        channels: tuple[int, ...] = (32, 64, 128),
        batch_norm: bool = True,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_widths("channels", channels, allow_empty=False)
        check_width(width)
        if embedding_dim < 1:
            raise SpecError(f"embedding_dim must be at least 1, got {embedding_dim}")
        channels = scale_widths(channels, width)
        pools = halvings(input_shape[1], input_shape[2], len(channels))
        layers: list[tuple[str, nn.Module]] = []
        in_channels = input_shape[0]
        for i, c in enumerate(channels, start=1):
            layers += conv_layers(f"conv{i}", in_channels, c, batch_norm=batch_norm)
            if i <= pools:
                layers.append((f"pool{i}", nn.MaxPool2d(2)))
            in_channels = c
        layers += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        self.trunk = nn.Sequential(OrderedDict(layers))
        self.embed = nn.Linear(in_channels, embedding_dim)
        self.feature_dim = embedding_dim
        self.head = classifier_head(embedding_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unit-norm embedding ``(N, embedding_dim)``."""
        return F.normalize(self.embed(self.trunk(x)), dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each stage's activation (``conv1``, ``conv2`` ...), input side first; the embedding is the features."""
        return {name.removesuffix("_act"): m for name, m in self.trunk.named_children() if name.endswith("_act")}


contrastive_encoder = register_variant(
    "contrastive_encoder", ContrastiveEncoder,
    "Small CNN with an L2-normalised embedding for triplet training and a linear head for fine-tuning.",
)
