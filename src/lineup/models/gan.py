"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2015, arXiv:1511.06434) for any image size.

The generator projects a noise vector to a small feature map and doubles its resolution with stride-2
transposed convolutions, batch norm and ReLU between them and a tanh at the end (images scaled to [-1, 1]); the
discriminator mirrors it with stride-2 convolutions, batch norm on every stage but the first, and LeakyReLU of
slope 0.2; all weights start from N(0, 0.02) (section 3 and 4 of the paper). Both are built from the
autoencoder's stacks (``lineup.models.autoencoder``), whose transposed convolutions restore odd sides exactly,
so one generator fits 1×28×28 (7 → 14 → 28), 1×40×40 (10 → 20 → 40) or any other ``H × W`` without a resize.

The discriminator returns one score per example: a logit for the non-saturating GAN loss, or a critic value for
the Wasserstein losses (build it with ``batch_norm = False`` for the gradient penalty, which is defined per
example and which batch norm would mix across the batch; Gulrajani et al., 2017, arXiv:1704.00028, section 4).
The losses and training steps are in ``lineup.train.losses``.

These models are not in the model registry: a GAN is two networks with two optimisers, not a classifier that
the fit loop can train.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape
from lineup.models._layers import check_widths
from lineup.models.autoencoder import conv_decoder, conv_encoder


def dcgan_init(model: nn.Module) -> None:
    """Radford et al.'s initialisation: convolution and linear weights ~ N(0, 0.02), batch norm scales ~ N(1, 0.02),
    biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """``z ~ N(0, I)`` of ``latent_dim`` values to images ``(N, C, H, W)``.

    Args:
        output_shape: ``(channels, height, width)`` of the images.
        latent_dim: dimension of the noise (100 in the paper).
        channels: channels of the discriminator-side stages, image side first; the generator runs them backwards,
            so ``(64, 128)`` projects to 128 channels and halves them on the way up.
        batch_norm: batch norm after the projection and every transposed convolution but the last.
        output: ``"tanh"`` for images in [-1, 1], or ``"linear"``.
    """

    def __init__(
        self,
        output_shape: InputShape,
        *,
        latent_dim: int = 100,
        channels: Sequence[int] = (64, 128),
        batch_norm: bool = True,
        output: Literal["tanh", "linear"] = "tanh",
    ) -> None:
        super().__init__()
        check_widths("channels", channels, allow_empty=False)
        if latent_dim < 1:
            raise SpecError(f"latent_dim must be at least 1, got {latent_dim}")
        if output not in ("tanh", "linear"):
            raise SpecError(f"output must be 'tanh' or 'linear', got {output!r}")
        self.output_shape = tuple(output_shape)
        self.latent_dim = latent_dim
        self.net = conv_decoder(latent_dim, output_shape, channels, activation="relu", batch_norm=batch_norm)
        self.out = nn.Tanh() if output == "tanh" else nn.Identity()
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(z))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from fresh noise (with gradients, for the generator's own step)."""
        param = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, device=param.device, dtype=param.dtype)
        return self(z)


class Discriminator(nn.Module):
    """Images ``(N, C, H, W)`` to one score per example, ``(N,)``: a logit, or a Wasserstein critic value.

    Args:
        input_shape: ``(channels, height, width)`` of the images.
        channels: output channels of each stride-2 stage, image side first.
        batch_norm: batch norm on every stage but the first (DCGAN); ``False`` for a WGAN-GP critic.
        negative_slope: slope of the LeakyReLU.
    """

    def __init__(
        self,
        input_shape: InputShape,
        *,
        channels: Sequence[int] = (64, 128),
        batch_norm: bool = True,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        check_widths("channels", channels, allow_empty=False)
        self.features, width = conv_encoder(input_shape, channels, activation="leaky_relu",
                                            negative_slope=negative_slope, batch_norm=batch_norm, norm_first=False)
        self.feature_dim = width
        self.score = nn.Linear(width, 1)
        dcgan_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened last feature map, ``(N, feature_dim)``: what Radford et al. fed a linear SVM (section 5.1)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x)).squeeze(1)
