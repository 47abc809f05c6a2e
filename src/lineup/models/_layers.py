"""Building blocks and option checks shared by the model families, so each family file holds only its idea."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import nn

from lineup.errors import SpecError

Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
Pooling = Literal["max", "avg"]

ACTIVATIONS: tuple[str, ...] = get_args(Activation)
POOLINGS: tuple[str, ...] = get_args(Pooling)


def activation_layer(name: str, *, negative_slope: float = 0.01) -> nn.Module:
    """The nonlinearity called ``name``; ``negative_slope`` is used by ``"leaky_relu"`` only."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise SpecError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {name!r}")


def pooling_layer(name: str) -> nn.Module:
    """A 2×2, stride-2 pooling that halves height and width (rounding down)."""
    if name == "max":
        return nn.MaxPool2d(2)
    if name == "avg":
        return nn.AvgPool2d(2)
    raise SpecError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, got {name!r}")


def check_dropout(p: float) -> None:
    """Dropout probabilities live in [0, 1); at 1 every unit is dropped and nothing is learned."""
    if not 0.0 <= p < 1.0:
        raise SpecError(f"dropout must be in [0, 1), got {p!r}")


def check_widths(option: str, widths: Sequence[int], *, allow_empty: bool = True) -> None:
    """Layer widths (units or channels) must be positive."""
    if not widths and not allow_empty:
        raise SpecError(f"{option} needs at least one layer, got {tuple(widths)!r}")
    if any(w < 1 for w in widths):
        raise SpecError(f"{option} must be positive widths, got {tuple(widths)!r}")


def check_width(width: float) -> None:
    """A width multiplier scales layer widths; zero or negative widths build nothing."""
    if not width > 0:
        raise SpecError(f"width must be a positive multiplier, got {width!r}")


def scale_widths(widths: Sequence[int], width: float) -> tuple[int, ...]:
    """``widths`` times the multiplier ``width``, rounded half up, and never below 1.

    Example:
        >>> scale_widths((64, 128, 6), 0.25)
        (16, 32, 2)
    """
    return tuple(max(1, math.floor(w * width + 0.5)) for w in widths)


def conv_layers(
    name: str, in_channels: int, out_channels: int, *, batch_norm: bool, kernel_size: int = 3
) -> list[tuple[str, nn.Module]]:
    """Named ``{name}`` → [``{name}_bn``] → ``{name}_act``: a stride-1 convolution padded to keep the size, ReLU.

    As in ``dense_layers``, batch norm sits before the activation and the convolution then has no bias.
    """
    layers: list[tuple[str, nn.Module]] = [
        (name, nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm))
    ]
    if batch_norm:
        layers.append((f"{name}_bn", nn.BatchNorm2d(out_channels)))
    layers.append((f"{name}_act", nn.ReLU()))
    return layers


def he_init(model: nn.Module) -> None:
    """He-normal weights for every convolution, zero biases; batch norms start as the identity.

    He et al. (2015, arXiv:1502.01852) derive the ``std = sqrt(2 / fan_in)`` that keeps the variance of ReLU
    activations constant with depth; PyTorch's default (uniform, a third of that variance) lets the signal of
    a deep plain network such as VGG-19 without batch norm fade before it reaches the head.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def halvings(height: int, width: int, stages: int) -> int:
    """How many of ``stages`` 2×2 poolings run under the rule "pool only while both sides are at least 2".

    Example:
        >>> halvings(28, 28, 5)  # 28 -> 14 -> 7 -> 3 -> 1, and no fifth pooling of a 1x1 map
        4
    """
    done = 0
    while done < stages and min(height, width) >= 2:
        height, width, done = height // 2, width // 2, done + 1
    return done


def dense_layers(
    in_features: int,
    widths: Sequence[int],
    *,
    activation: str,
    negative_slope: float,
    batch_norm: bool,
    dropout: float,
) -> list[tuple[str, nn.Module]]:
    """Named hidden fully connected layers: ``fc{i}`` → [``fc{i}_bn``] → ``fc{i}_act`` for each width.

    Dropout (Srivastava et al., 2014) goes on the output of every hidden layer that feeds another hidden layer
    (``fc{i}_drop``); the last hidden layer's output is dropped by ``classifier_head``, so that the features a
    model returns are never the randomly masked ones. With ``dropout == 0`` no dropout layer is built.

    Batch norm (Ioffe & Szegedy, 2015) sits between the linear map and the activation, and the linear map then
    has no bias because the norm's learned shift makes it redundant.
    """
    layers: list[tuple[str, nn.Module]] = []
    for i, width in enumerate(widths, start=1):
        if dropout and i > 1:
            layers.append((f"fc{i - 1}_drop", nn.Dropout(dropout)))
        layers.append((f"fc{i}", nn.Linear(in_features, width, bias=not batch_norm)))
        if batch_norm:
            layers.append((f"fc{i}_bn", nn.BatchNorm1d(width)))
        layers.append((f"fc{i}_act", activation_layer(activation, negative_slope=negative_slope)))
        in_features = width
    return layers


def classifier_head(in_features: int, num_outputs: int, *, dropout: float = 0.0) -> nn.Sequential:
    """[``drop``] → ``fc``: the linear layer from features to logits, with dropout on its input if asked."""
    layers: list[tuple[str, nn.Module]] = [("drop", nn.Dropout(dropout))] if dropout else []
    layers.append(("fc", nn.Linear(in_features, num_outputs)))
    return nn.Sequential(OrderedDict(layers))


@torch.no_grad()
def set_channel_range(low_buffer: torch.Tensor, high_buffer: torch.Tensor, low: Sequence[float],
                      high: Sequence[float]) -> None:
    """Copy a per-channel value range ``[low, high]`` into a model's two range buffers, after checking that it has
    one ``low < high`` per channel (a GAN's output range, a Bernoulli decoder's [0, 1] among the inputs)."""
    lo, hi = torch.as_tensor(low, dtype=low_buffer.dtype), torch.as_tensor(high, dtype=high_buffer.dtype)
    if lo.shape != low_buffer.shape or hi.shape != lo.shape or not bool((hi > lo).all()):
        raise ValueError(f"need one low < high per channel ({low_buffer.numel()}), got {low} and {high}")
    low_buffer.copy_(lo)
    high_buffer.copy_(hi)
