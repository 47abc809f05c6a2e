"""A small CNN encoder for metric learning: embeddings on the unit sphere, a linear head for fine-tuning.

Trained with a triplet loss (``lineup.train.losses.triplet_loss``; Schroff, Kalenichenko & Philbin, 2015,
arXiv:1503.03832; Hermans, Beyer & Leibe, 2017, arXiv:1703.07737), the embedding places examples of one class
close together and those of different classes at least a margin apart. L2-normalising it, as FaceNet does, bounds
the distances to [0, 2], so a margin means the same thing throughout training instead of being beaten by
scaling every embedding up. ``forward_features`` returns the normalised embedding, the representation analyses
read; ``forward`` returns the logits of a linear layer on it, the head a classifier fine-tuned from the embedding
uses (and the one the registry's contract asks for). The head reads the embedding times ``logit_scale``: on the
unit sphere the logits of a linear layer with small weights are all close, and cross-entropy then trains slowly and
stops short (Wang et al., 2017, NormFace, arXiv:1704.06369, who scale by 16 or more).

The ``triplet`` objective (``lineup.train.objectives.Triplet``) trains the embedding with this model's ``margin``
and ``mining``; under cross-entropy the same network is an ordinary classifier, trained from scratch or, with
``init_from`` in a study, fine-tuned from a triplet-trained run (``load_pretrained``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import check_width, check_widths, classifier_head, conv_layers, halvings, scale_widths
from lineup.models._registry import register_variant

Mining = Literal["batch_hard", "random"]
"""How a triplet is chosen for each anchor of a batch (``lineup.train.losses.mine_triplets``)."""


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
        margin: the triplet loss's margin, in distances between unit-norm embeddings (they lie in [0, 2]); read
            by the ``triplet`` objective only.
        mining: ``"batch_hard"`` (the farthest positive and closest negative of each anchor in the batch) or
            ``"random"``; read by the ``triplet`` objective only.
        logit_scale: the factor the head multiplies the unit-norm embedding by before its linear layer.
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
        margin: float = 0.2,
        mining: Mining = "batch_hard",
        logit_scale: float = 16.0,
    ) -> None:
        super().__init__()
        check_widths("channels", channels, allow_empty=False)
        check_width(width)
        if embedding_dim < 1:
            raise SpecError(f"embedding_dim must be at least 1, got {embedding_dim}")
        if not 0 < margin < 2:
            raise SpecError(f"margin must lie in (0, 2), the range of distances between unit-norm embeddings, "
                            f"got {margin}")
        if mining not in get_args(Mining):
            raise SpecError(f"mining must be one of {', '.join(map(repr, get_args(Mining)))}, got {mining!r}")
        if not logit_scale > 0:
            raise SpecError(f"logit_scale must be positive, got {logit_scale}")
        self.margin, self.mining, self.logit_scale = float(margin), mining, float(logit_scale)
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
        return self.head(self.logit_scale * features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each stage's activation (``conv1``, ``conv2`` ...), input side first; the embedding is the features."""
        return {name.removesuffix("_act"): m for name, m in self.trunk.named_children() if name.endswith("_act")}

    def load_pretrained(self, source: dict[str, torch.Tensor], source_name: str) -> list[str]:
        """Start every weight (trunk, embedding and head) from another ``ContrastiveEncoder``'s ``state_dict``.

        Fine-tuning a triplet-trained encoder with a classification head: the head is copied too (under the
        ``triplet`` objective it was fitted to the moving embedding, a better start than a fresh one), and every
        weight keeps training. Returns the names of the tensors copied.

        Raises:
            SpecError: the source is not an encoder of the same architecture (naming the first tensor missing
                from it or of another shape).
        """
        own = self.state_dict()
        for key, tensor in own.items():
            if key not in source:
                raise SpecError(f"{source_name!r} has no tensor {key!r}: only a contrastive_encoder with the same "
                                "channels, embedding_dim and batch_norm can start this one")
            if source[key].shape != tensor.shape:
                raise SpecError(f"{source_name!r}'s {key} is {tuple(source[key].shape)}, this model's is "
                                f"{tuple(tensor.shape)}: give both entries the same channels, embedding_dim, "
                                "width and classes")
        self.load_state_dict({k: source[k] for k in own})
        return list(own)


contrastive_encoder = register_variant(
    "contrastive_encoder", ContrastiveEncoder,
    "Small CNN with an L2-normalised embedding for triplet training and a linear head for fine-tuning.",
)
