"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998) in the form most courses and frameworks use today.

The 1998 network read 32×32 images, used scaled tanh units, trainable subsampling layers, a partially
connected second convolution and RBF output units. The common modern form keeps its shape and replaces the
rest: the first convolution is padded so a 28×28 MNIST digit stays 28×28 (what the 1998 paper got by padding
digits to 32×32), pooling is plain max or average pooling, the second convolution sees every channel and the
output is a linear layer to logits. For 10 classes on 1×28×28 inputs it has 61,706 parameters.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import (
    Activation,
    Pooling,
    activation_layer,
    check_dropout,
    check_width,
    check_widths,
    classifier_head,
    dense_layers,
    pooling_layer,
    scale_widths,
)
from lineup.models._registry import register_variant


class LeNet(LineupModel):
    """conv → act → pool → conv → act → pool → flatten → fc → act → fc → act → fc, for any input size.

    Each convolution stage is conv → (BatchNorm) → activation → 2×2 pooling. The first convolution is padded
    by ``kernel // 2`` so it keeps height and width (for odd kernels); the later ones are unpadded ("valid"),
    which is what shrinks 14×14 to 10×10 in LeNet-5. The features are the last hidden fc layer's activations
    (84-d by default).

    Args:
        input_shape: ``(channels, height, width)`` of one example; must be large enough for the kernels and
            poolings (12×12 with the defaults).
        num_classes: number of logits.
        activation: nonlinearity after every conv and hidden fc layer.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        pooling: ``"max"`` or ``"avg"`` 2×2 pooling after each convolution.
        batch_norm: batch norm after each conv and hidden fc layer, before the activation (those layers then
            have no bias, as the norm's shift replaces it).
        dropout: probability of zeroing each unit of the hidden fc layers' outputs during training, i.e. on
            the input of every fc layer after the first; convolutions and the flattened conv output get none.
            0 builds no dropout layer.
        kernel_size: side of the square kernel of every convolution.
        first_kernel_size: side of the first convolution's kernel, overriding ``kernel_size`` there
            (e.g. 3 for a smaller first kernel); None uses ``kernel_size``.
        channels: output channels of each convolution stage, input side first; (12, 32) doubles the filters.
        fc: units of each hidden fully connected layer, input side first.
        width: multiplier of ``channels`` and ``fc`` (rounded, at least 1); with it the model takes a
            ``params`` budget.
    """

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        activation: Activation = "relu",
        negative_slope: float = 0.01,
        pooling: Pooling = "max",
        batch_norm: bool = False,
        dropout: float = 0.0,
        kernel_size: int = 5,
        first_kernel_size: int | None = None,
        channels: tuple[int, ...] = (6, 16),
        fc: tuple[int, ...] = (120, 84),
        width: float = 1.0,
    ) -> None:
        super().__init__()
        check_widths("channels", channels, allow_empty=False)
        check_widths("fc", fc)
        check_dropout(dropout)
        check_width(width)
        channels, fc = scale_widths(channels, width), scale_widths(fc, width)
        first = kernel_size if first_kernel_size is None else first_kernel_size
        kernels = [first] + [kernel_size] * (len(channels) - 1)
        if any(k < 1 for k in kernels):
            raise SpecError(
                f"kernel sizes must be positive, got kernel_size={kernel_size}, first={kernels[0]}"
            )
        paddings = [kernels[0] // 2] + [0] * (len(channels) - 1)
        _check_input_size(input_shape, kernels, paddings)

        layers: list[tuple[str, nn.Module]] = []
        in_channels = input_shape[0]
        for i, (out_channels, k, p) in enumerate(zip(channels, kernels, paddings, strict=True), start=1):
            layers.append(
                (f"conv{i}", nn.Conv2d(in_channels, out_channels, k, padding=p, bias=not batch_norm))
            )
            if batch_norm:
                layers.append((f"conv{i}_bn", nn.BatchNorm2d(out_channels)))
            layers.append((f"conv{i}_act", activation_layer(activation, negative_slope=negative_slope)))
            layers.append((f"pool{i}", pooling_layer(pooling)))
            in_channels = out_channels
        layers.append(("flatten", nn.Flatten()))
        flat_dim = _output_width(nn.Sequential(OrderedDict(layers)), input_shape)
        layers += dense_layers(
            flat_dim,
            fc,
            activation=activation,
            negative_slope=negative_slope,
            batch_norm=batch_norm,
            dropout=dropout,
        )
        self.features = nn.Sequential(OrderedDict(layers))
        self.feature_dim = fc[-1] if fc else flat_dim
        self.head = classifier_head(self.feature_dim, num_classes, dropout=dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each conv block after its pooling (``conv1``, ``conv2``, ...), then each hidden fc layer's activations
        (``fc1``, ``fc2``, ...); the last of these is what ``forward_features`` returns."""
        layers: dict[str, nn.Module] = {}
        for name, module in self.features.named_children():
            if name.startswith("pool"):
                layers[f"conv{name[4:]}"] = module
            elif name.startswith("fc") and name.endswith("_act"):
                layers[name.removesuffix("_act")] = module
        return layers


def _output_width(trunk: nn.Module, input_shape: InputShape) -> int:
    """Width of ``trunk``'s flat output, from a dry run on one zero example.

    A dry run cannot disagree with the layers the way a hand-written size formula can when a layer changes. It
    runs in eval mode so batch norm layers neither fail on a batch of one nor update their running statistics.
    """
    trunk.eval()
    with torch.no_grad():
        width = trunk(torch.zeros(1, *input_shape)).shape[1]
    trunk.train()
    return int(width)


def _check_input_size(input_shape: InputShape, kernels: list[int], paddings: list[int]) -> None:
    """Fail with the smallest workable size when some conv or pooling would get an empty feature map."""
    # Walk back from a 1×1 output: a 2×2 pooling needs twice its output size, a conv its output size
    # + kernel - 1 - 2·padding. Both maps are monotone, so this is the smallest side that works.
    smallest = 1
    for k, p in reversed(list(zip(kernels, paddings, strict=True))):
        smallest = max(1, 2 * smallest + k - 1 - 2 * p)
    _, height, width = input_shape
    if min(height, width) < smallest:
        shape = "×".join(map(str, input_shape))
        raise SpecError(
            f"input {shape} is too small: with kernels {kernels} and a 2×2 pooling after each convolution, "
            f"height and width must be at least {smallest}; use larger inputs (pad or resize), a smaller "
            "kernel_size or fewer entries in channels"
        )


# Variants: LeNet with some defaults changed. Any option can still be set per run in a study file.
lenet5 = register_variant(
    "lenet5", LeNet, "LeNet-5 (LeCun et al., 1998) in its modern form: ReLU and max pooling."
)
lenet5_classic = register_variant(
    "lenet5_classic",
    LeNet,
    "LeNet-5 closer to 1998: tanh units and average pooling.",
    activation="tanh",
    pooling="avg",
)
lenet5_bn = register_variant(
    "lenet5_bn",
    LeNet,
    "LeNet-5 with batch norm (Ioffe & Szegedy, 2015) before every hidden activation.",
    batch_norm=True,
)
lenet5_dropout = register_variant(
    "lenet5_dropout",
    LeNet,
    "LeNet-5 with dropout 0.5 (Srivastava et al., 2014) on the hidden fc layers.",
    dropout=0.5,
)
