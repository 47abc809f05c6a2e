"""Autoencoders (Hinton & Salakhutdinov, 2006, Science 313:504): an encoder to a latent code, a decoder back.

Two families share one interface: a dense one on the flattened input and a convolutional one whose encoder
halves the resolution at every stage and whose decoder undoes it exactly, so the reconstruction has the input's
shape for any input size (``conv_plan`` says how; a 1×1×2 point of a 2-D mixture works as well as a 3×32×32
image). ``encode(x)`` gives the code, ``decode(z)`` the decoder's raw output, ``reconstruct(x)`` the
reconstruction in input space and ``forward_features(x)`` the code, which is what analyses read.

A linear classifier head on the code is always present, so that an autoencoder stands in a line-up like any
classifier: ``forward(x)`` returns its logits, in training as in evaluation. Its own objective, ``reconstruction``
(``lineup.train.objectives``, the model's ``default_objective``), trains it on the cross-entropy of those logits
plus ``reconstruction_weight · reconstruction_loss``, and logs both terms. The model then learns a supervised
autoencoder, classification plus reconstruction (Le, Patterson & White, 2018, "Supervised autoencoders",
NeurIPS). With ``supervised = False`` the head reads the code through a ``detach``: the classification loss trains
the head alone, a linear probe (Alain & Bengio, 2016, arXiv:1610.01644) on a code learned from reconstruction
alone. With ``reconstruction_weight = 0`` the decoder is never run and the model is a classifier with a bottleneck.
``latent_codes(x)`` marks a model with a latent space that a study judges by classifiers and clusterings
(``lineup.study.latent``).

The down- and up-sampling stacks (``conv_encoder``, ``conv_decoder``, ``dense_encoder``, ``dense_decoder``)
are public because the VAE (``lineup.models.vae``) and the DCGAN (``lineup.models.gan``) are built from them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import (
    Activation,
    activation_layer,
    check_width,
    check_widths,
    classifier_head,
    dense_layers,
    scale_widths,
    set_channel_range,
)
from lineup.models._registry import register_variant

Likelihood = Literal["gaussian", "bernoulli"]
"""What the decoder's raw output means: the mean of a Gaussian, or the logits of independent Bernoullis (inputs
in [0, 1])."""

LIKELIHOODS: tuple[str, ...] = get_args(Likelihood)


# ------------------------------------------------------------------------------------------------------------
# Down- and up-sampling stacks.


@dataclass(frozen=True)
class ConvPlan:
    """The spatial sizes through a stack of convolution stages.

    Stage ``i`` reads ``sizes[i]``; it halves height and width (a 4×4, stride-2 convolution with padding 1, which
    maps a side ``s`` to ``floor(s / 2)``) while both sides are at least 2, and keeps them otherwise (3×3, stride
    1, padding 1). The decoder runs the stages backwards with 4×4, stride-2 transposed convolutions, which map a
    side ``t`` to ``2 t + p``; the output padding ``p = s mod 2`` restores an odd side exactly, so the decoder
    output has the input's size with no interpolation or cropping.

    Attributes:
        sizes: ``(height, width)`` read by each stage, input side first.
        halves: whether each stage halves.
        out: ``(height, width)`` after the last stage.
    """

    sizes: tuple[tuple[int, int], ...]
    halves: tuple[bool, ...]
    out: tuple[int, int]


def conv_plan(height: int, width: int, stages: int) -> ConvPlan:
    """The sizes ``stages`` encoder stages go through from ``height × width``; see ``ConvPlan``.

    Example:
        >>> conv_plan(28, 28, 3)  # 28 -> 14 -> 7 -> 3; the decoder's 3 -> 7 uses output padding 1
        ConvPlan(sizes=((28, 28), (14, 14), (7, 7)), halves=(True, True, True), out=(3, 3))
        >>> conv_plan(1, 2, 2).halves  # a 1x2 input cannot be halved
        (False, False)
    """
    sizes, halves = [], []
    for _ in range(stages):
        sizes.append((height, width))
        halve = min(height, width) >= 2
        halves.append(halve)
        if halve:
            height, width = height // 2, width // 2
    return ConvPlan(tuple(sizes), tuple(halves), (height, width))


def _conv(in_channels: int, out_channels: int, halve: bool, *, bias: bool) -> nn.Conv2d:
    if halve:
        return nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


def conv_encoder(
    input_shape: InputShape,
    channels: Sequence[int],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    batch_norm: bool = False,
    norm_first: bool = True,
) -> tuple[nn.Sequential, int]:
    """``(N, C, H, W)`` to ``(N, D)``: ``conv{i}`` → [``conv{i}_bn``] → ``conv{i}_act`` per stage, then ``flatten``.

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        channels: output channels of each stage, input side first.
        activation: nonlinearity after every stage.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        batch_norm: batch norm before each activation (the convolution then has no bias).
        norm_first: whether the first stage has batch norm too; DCGAN's discriminator leaves it out
            (Radford et al., 2015, arXiv:1511.06434, section 3), so the input's own statistics are kept.

    Returns:
        The stack and ``D``, its flat output width.
    """
    plan = conv_plan(input_shape[1], input_shape[2], len(channels))
    layers: list[tuple[str, nn.Module]] = []
    in_channels = input_shape[0]
    for i, (out_channels, halve) in enumerate(zip(channels, plan.halves, strict=True), start=1):
        norm = batch_norm and (norm_first or i > 1)
        layers.append((f"conv{i}", _conv(in_channels, out_channels, halve, bias=not norm)))
        if norm:
            layers.append((f"conv{i}_bn", nn.BatchNorm2d(out_channels)))
        layers.append((f"conv{i}_act", activation_layer(activation, negative_slope=negative_slope)))
        in_channels = out_channels
    layers.append(("flatten", nn.Flatten()))
    return nn.Sequential(OrderedDict(layers)), in_channels * math.prod(plan.out)


def conv_decoder(
    latent_dim: int,
    output_shape: InputShape,
    channels: Sequence[int],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``(N, latent_dim)`` to raw ``(N, C, H, W)`` values: the mirror image of ``conv_encoder`` with ``channels``.

    A linear map projects the code to the encoder's last feature map (``project`` → ``unflatten`` →
    [``project_bn``] → ``project_act``, the "project and reshape" of DCGAN's generator); then stage ``i`` (counted
    from the code) maps the channels of encoder stage ``n - i + 1`` back to those of stage ``n - i``,
    ``deconv{i}`` → [``deconv{i}_bn``] → ``deconv{i}_act``; the last stage, ``out``, maps to the input channels with
    neither norm nor activation, so the output can be a mean or logits.
    """
    plan = conv_plan(output_shape[1], output_shape[2], len(channels))
    widths = [output_shape[0], *channels]  # widths[i] = channels into encoder stage i + 1
    layers: list[tuple[str, nn.Module]] = [
        ("project", nn.Linear(latent_dim, widths[-1] * math.prod(plan.out), bias=not batch_norm)),
        ("unflatten", nn.Unflatten(1, (widths[-1], *plan.out))),
    ]
    if batch_norm:
        layers.append(("project_bn", nn.BatchNorm2d(widths[-1])))
    layers.append(("project_act", activation_layer(activation, negative_slope=negative_slope)))
    n = len(channels)
    for i, stage in enumerate(reversed(range(n)), start=1):  # encoder stage indices n-1 .. 0
        last = stage == 0
        in_channels, out_channels = widths[stage + 1], widths[stage]
        h, w = plan.sizes[stage]
        if plan.halves[stage]:
            conv: nn.Module = nn.ConvTranspose2d(
                in_channels, out_channels, 4, stride=2, padding=1, output_padding=(h % 2, w % 2),
                bias=last or not batch_norm,
            )
        else:
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=last or not batch_norm)
        if last:
            layers.append(("out", conv))
            break
        layers.append((f"deconv{i}", conv))
        if batch_norm:
            layers.append((f"deconv{i}_bn", nn.BatchNorm2d(out_channels)))
        layers.append((f"deconv{i}_act", activation_layer(activation, negative_slope=negative_slope)))
    return nn.Sequential(OrderedDict(layers))


def dense_encoder(
    input_shape: InputShape,
    hidden: Sequence[int],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    batch_norm: bool = False,
) -> tuple[nn.Sequential, int]:
    """``(N, C, H, W)`` to ``(N, D)``: ``flatten``, then ``fc{i}`` → [``fc{i}_bn``] → ``fc{i}_act`` per width.

    Returns:
        The stack and ``D``, the last hidden width (the flattened input's width without hidden layers).
    """
    layers = dense_layers(math.prod(input_shape), hidden, activation=activation, negative_slope=negative_slope,
                          batch_norm=batch_norm, dropout=0.0)
    width = hidden[-1] if hidden else math.prod(input_shape)
    return nn.Sequential(OrderedDict([("flatten", nn.Flatten()), *layers])), width


def dense_decoder(
    latent_dim: int,
    output_shape: InputShape,
    hidden: Sequence[int],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``(N, latent_dim)`` to raw ``(N, C, H, W)`` values: the hidden widths in reverse order, then ``out``.

    ``hidden`` is given input side first, as for ``dense_encoder``, so the same tuple builds mirror images.
    """
    widths = list(reversed(hidden))
    layers = dense_layers(latent_dim, widths, activation=activation, negative_slope=negative_slope,
                          batch_norm=batch_norm, dropout=0.0)
    layers.append(("out", nn.Linear(widths[-1] if widths else latent_dim, math.prod(output_shape))))
    layers.append(("unflatten", nn.Unflatten(1, tuple(output_shape))))
    return nn.Sequential(OrderedDict(layers))


def check_latent_options(latent_dim: int, likelihood: str, weight: float, weight_name: str) -> None:
    """Options every latent-variable model here takes."""
    if latent_dim < 1:
        raise SpecError(f"latent_dim must be at least 1, got {latent_dim}")
    if likelihood not in LIKELIHOODS:
        raise SpecError(f"likelihood must be one of {', '.join(map(repr, LIKELIHOODS))}, got {likelihood!r}")
    if not weight >= 0:
        raise SpecError(f"{weight_name} must be >= 0, got {weight!r}")


class UnitRange(nn.Module):
    """Where a Bernoulli decoder's [0, 1] lies among the model's (normalised) inputs.

    A Bernoulli log-likelihood is one only for targets in [0, 1], but a study feeds models normalised images, whose
    values run from ``-mean / std`` to ``(1 - mean) / std``; binary cross-entropy against such targets is unbounded
    below, and training diverges. The study therefore tells the model the range of its inputs
    (``set_input_range``, as it does a GAN's generator); the likelihood reads the targets mapped onto [0, 1]
    (``to_unit``) and the model's outputs are mapped back (``from_unit``). Until it is told, the range is [0, 1]:
    inputs already in [0, 1] are read as they are. A Gaussian decoder needs none of this.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        # buffers, so that checkpoints and final weights carry the range
        self.register_buffer("low", torch.zeros(channels))
        self.register_buffer("high", torch.ones(channels))

    def set(self, low: Sequence[float], high: Sequence[float]) -> None:
        set_channel_range(self.low, self.high, low, high)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``(N, C, H, W)`` mapped onto [0, 1], channel by channel."""
        low, high = self.low.view(1, -1, 1, 1), self.high.view(1, -1, 1, 1)
        return ((x - low) / (high - low)).clamp(0.0, 1.0)

    def from_unit(self, p: torch.Tensor) -> torch.Tensor:
        """Values in [0, 1] ``(N, C, H, W)`` mapped back onto the inputs' range."""
        low, high = self.low.view(1, -1, 1, 1), self.high.view(1, -1, 1, 1)
        return low + p * (high - low)


class BernoulliTargets:
    """What an autoencoder or VAE with ``likelihood`` and an optional ``unit_range`` (``UnitRange``) gets: the
    targets its likelihood reads, and its outputs in input space."""

    likelihood: str
    unit_range: UnitRange | None

    def set_input_range(self, low: Sequence[float], high: Sequence[float]) -> None:
        """The per-channel range of the model's real inputs (the study sets it before training)."""
        if self.unit_range is not None:
            self.unit_range.set(low, high)

    def likelihood_target(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as the likelihood reads it: in [0, 1] for a Bernoulli decoder, unchanged for a Gaussian one."""
        return self.unit_range.to_unit(x) if self.unit_range is not None else x

    def output_mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """The mean in input space from the decoder's raw output: the sigmoid of Bernoulli logits mapped onto the
        inputs' range, or the Gaussian mean."""
        return self.unit_range.from_unit(torch.sigmoid(decoded)) if self.unit_range is not None else decoded


def stage_layers(encoder: nn.Sequential) -> dict[str, nn.Module]:
    """Each stage's activation in an encoder stack (``conv1``, ``conv2`` ... or ``fc1``, ``fc2`` ...)."""
    return {name.removesuffix("_act"): m for name, m in encoder.named_children() if name.endswith("_act")}


# ------------------------------------------------------------------------------------------------------------
# Models.


class Autoencoder(BernoulliTargets, LineupModel):
    """Encoder → linear map to the code; decoder from the code; linear classifier head on the code.

    Subclasses build the two stacks (``DenseAutoencoder``, ``ConvAutoencoder``); the ``reconstruction`` objective
    trains head, encoder and decoder together (see the module docstring).

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of logits of the head.
        encoder: ``(N, C, H, W)`` to ``(N, encoder_dim)``.
        encoder_dim: width of the encoder's output.
        decoder: ``(N, latent_dim)`` to raw ``(N, C, H, W)`` values.
        latent_dim: width of the code.
        likelihood: ``"gaussian"``: the decoder outputs the reconstruction and the loss is the mean squared error;
            ``"bernoulli"``: it outputs logits and the loss is the binary cross-entropy against inputs mapped onto
            [0, 1].
        reconstruction_weight: weight of the reconstruction loss in the ``reconstruction`` objective; 0 never runs
            the decoder in training.
        supervised: whether the classification loss reaches the encoder; ``False`` makes the head a linear probe.
    """

    default_objective: ClassVar[str] = "reconstruction"

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        encoder: nn.Sequential,
        encoder_dim: int,
        decoder: nn.Sequential,
        *,
        latent_dim: int,
        likelihood: Likelihood,
        reconstruction_weight: float,
        supervised: bool,
    ) -> None:
        super().__init__()
        check_latent_options(latent_dim, likelihood, reconstruction_weight, "reconstruction_weight")
        self.input_shape = tuple(input_shape)
        self.likelihood = likelihood
        self.reconstruction_weight = float(reconstruction_weight)
        self.supervised = supervised
        self.latent_dim = self.feature_dim = latent_dim
        self.encoder = encoder
        self.code = nn.Linear(encoder_dim, latent_dim)
        self.decoder = decoder
        self.head = classifier_head(latent_dim, num_classes)
        self.unit_range = UnitRange(input_shape[0]) if likelihood == "bernoulli" else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``(N, latent_dim)`` of inputs ``(N, C, H, W)``."""
        return self.code(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output ``(N, C, H, W)`` for codes ``(N, latent_dim)``: a mean, or logits."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))`` in input space, shape ``(N, C, H, W)``."""
        return self.output_mean(self.decode(self.encode(x)))

    def reconstruction_loss(self, x: torch.Tensor, decoded: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over all values and examples of the squared error (Gaussian) or binary cross-entropy (Bernoulli).

        A mean per value rather than a sum per example keeps the term on the scale of a cross-entropy whatever
        the input size, so that ``reconstruction_weight = 1`` balances the two for 8×8 digits and 64×64 images
        alike.

        Args:
            x: inputs ``(N, C, H, W)``, mapped onto [0, 1] for a Bernoulli decoder (``likelihood_target``).
            decoded: ``decode(encode(x))`` if already computed.
        """
        if decoded is None:
            decoded = self.decode(self.encode(x))
        if self.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(decoded, self.likelihood_target(x))
        return F.mse_loss(decoded, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features if self.supervised else features.detach())

    def latent_codes(self, x: torch.Tensor) -> torch.Tensor:
        """The point of the latent space ``(N, latent_dim)`` that a study's latent evaluation reads: the code."""
        return self.encode(x)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each encoder stage's activation (``conv{i}`` or ``fc{i}``), input side first; the code is the features."""
        return stage_layers(self.encoder)


def encoder_decoder(kind: str, input_shape: InputShape, latent_dim: int, widths: tuple[int, ...], width: float, *,
                    activation: Activation, negative_slope: float, batch_norm: bool
                    ) -> tuple[nn.Module, int, nn.Module]:
    """The mirrored encoder and decoder of a dense (``widths``: hidden units) or convolutional (``widths``:
    channels per stage) latent model, widths scaled by ``width``: ``(encoder, its output width, decoder)``."""
    name = "hidden" if kind == "dense" else "channels"
    check_widths(name, widths, allow_empty=kind == "dense")
    check_width(width)
    widths = tuple(scale_widths(widths, width))
    encode, decode = (dense_encoder, dense_decoder) if kind == "dense" else (conv_encoder, conv_decoder)
    encoder, encoder_dim = encode(input_shape, widths, activation=activation, negative_slope=negative_slope,
                                  batch_norm=batch_norm)
    decoder = decode(latent_dim, input_shape, widths, activation=activation, negative_slope=negative_slope,
                     batch_norm=batch_norm)
    return encoder, encoder_dim, decoder


class DenseAutoencoder(Autoencoder):
    """Fully connected autoencoder: flatten → hidden layers → code → hidden layers reversed → reshape.

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of logits of the head on the code.
        latent_dim: width of the code (2 to draw it on the plane).
        hidden: units of the encoder's hidden layers, input side first; the decoder has them in reverse.
        activation: nonlinearity after every hidden layer.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        batch_norm: batch norm before every hidden activation.
        likelihood: ``"gaussian"`` (squared error) or ``"bernoulli"`` (cross-entropy on inputs mapped onto [0, 1],
            see ``UnitRange``).
        reconstruction_weight: weight of the reconstruction loss in the ``reconstruction`` objective.
        supervised: whether the classification loss trains the encoder (``False``: a linear probe).
        width: multiplier of the hidden widths (not of ``latent_dim``); with it the model takes ``params``.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        latent_dim: int = 16,
        hidden: tuple[int, ...] = (256, 128),
        activation: Activation = "relu",
        negative_slope: float = 0.01,
        batch_norm: bool = False,
        likelihood: Likelihood = "gaussian",
        reconstruction_weight: float = 1.0,
        supervised: bool = True,
        width: float = 1.0,
    ) -> None:
        check_latent_options(latent_dim, likelihood, reconstruction_weight, "reconstruction_weight")
        encoder, encoder_dim, decoder = encoder_decoder("dense", input_shape, latent_dim, hidden, width,
                                                        activation=activation, negative_slope=negative_slope,
                                                        batch_norm=batch_norm)
        super().__init__(input_shape, num_classes, encoder, encoder_dim, decoder, latent_dim=latent_dim,
                         likelihood=likelihood, reconstruction_weight=reconstruction_weight, supervised=supervised)


class ConvAutoencoder(Autoencoder):
    """Convolutional autoencoder: stride-2 convolutions → code → transposed convolutions back to the input size.

    Args:
        input_shape: ``(channels, height, width)`` of one example; any size (stages stop halving at 1 pixel).
        num_classes: number of logits of the head on the code.
        latent_dim: width of the code (2 to draw it on the plane).
        channels: output channels of each encoder stage, input side first; the decoder mirrors them.
        activation: nonlinearity after every stage but the decoder's last.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        batch_norm: batch norm before every activation.
        likelihood: ``"gaussian"`` (squared error) or ``"bernoulli"`` (cross-entropy on inputs mapped onto [0, 1],
            see ``UnitRange``).
        reconstruction_weight: weight of the reconstruction loss in the ``reconstruction`` objective.
        supervised: whether the classification loss trains the encoder (``False``: a linear probe).
        width: multiplier of ``channels`` (not of ``latent_dim``); with it the model takes ``params``.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        latent_dim: int = 16,
        channels: tuple[int, ...] = (32, 64),
        activation: Activation = "relu",
        negative_slope: float = 0.01,
        batch_norm: bool = False,
        likelihood: Likelihood = "gaussian",
        reconstruction_weight: float = 1.0,
        supervised: bool = True,
        width: float = 1.0,
    ) -> None:
        check_latent_options(latent_dim, likelihood, reconstruction_weight, "reconstruction_weight")
        encoder, encoder_dim, decoder = encoder_decoder("conv", input_shape, latent_dim, channels, width,
                                                        activation=activation, negative_slope=negative_slope,
                                                        batch_norm=batch_norm)
        super().__init__(input_shape, num_classes, encoder, encoder_dim, decoder, latent_dim=latent_dim,
                         likelihood=likelihood, reconstruction_weight=reconstruction_weight, supervised=supervised)


autoencoder = register_variant(
    "autoencoder", DenseAutoencoder,
    "Dense autoencoder with a classifier head on its code, trained on reconstruction plus cross-entropy.",
)
conv_autoencoder = register_variant(
    "conv_autoencoder", ConvAutoencoder,
    "Convolutional autoencoder with a classifier head on its code, trained on reconstruction plus cross-entropy.",
)
