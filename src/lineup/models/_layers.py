"""Building blocks and option checks shared by the model families, so each family file holds only its idea."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, get_args

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
