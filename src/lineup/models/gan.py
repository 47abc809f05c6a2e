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

``GAN`` puts the two networks behind the interface every lineup model keeps, so a study trains and evaluates it
like any other model: ``forward_features(x)`` is the discriminator's (or critic's) last feature map, and
``forward(x)`` the logits of a linear head on those features, detached, so the labels train the head alone: a
linear probe of what the discriminator learned, in the manner of Radford et al.'s section 5.1, whose accuracy the
report can show honestly. Its own objective, ``gan`` (``lineup.train.objectives``, ``lineup.train.adversarial``),
owns the optimisation step: the adversarial updates of both networks and one cross-entropy update of the head,
each with its own optimiser. Registered as ``dcgan`` (non-saturating loss), ``wgan`` (Wasserstein loss, weight
clipping) and ``wgan_gp`` (Wasserstein loss, gradient penalty); ``loss`` switches any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import check_widths, set_channel_range
from lineup.models._registry import register_variant
from lineup.models.autoencoder import conv_decoder, conv_encoder, stage_layers


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
        score_bias: a bias on the score; a Wasserstein critic needs none, since a constant shift of ``f`` cancels
            in ``E[f(x)] - E[f(G(z))]`` and would never get a gradient.
    """

    def __init__(
        self,
        input_shape: InputShape,
        *,
        channels: Sequence[int] = (64, 128),
        batch_norm: bool = True,
        negative_slope: float = 0.2,
        score_bias: bool = True,
    ) -> None:
        super().__init__()
        check_widths("channels", channels, allow_empty=False)
        self.features, width = conv_encoder(input_shape, channels, activation="leaky_relu",
                                            negative_slope=negative_slope, batch_norm=batch_norm, norm_first=False)
        self.feature_dim = width
        self.score = nn.Linear(width, 1, bias=score_bias)
        dcgan_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened last feature map, ``(N, feature_dim)``: what Radford et al. fed a linear SVM (section 5.1)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x)).squeeze(1)


AdversarialLoss = Literal["gan", "wgan", "wgan-gp"]

#: The papers' settings per loss, used where an option is left at ``None``: critic (discriminator) steps per
#: generator step, weight clipping, gradient penalty weight, batch norm in the critic, and Adam's betas.
PAPER_DEFAULTS: dict[str, dict[str, object]] = {
    # Radford et al. (2015), section 4: Adam, lr 2e-4, beta1 0.5; one discriminator step per generator step.
    "gan": {"n_critic": 1, "clip": None, "gp_weight": 0.0, "critic_batch_norm": True, "betas": (0.5, 0.999)},
    # Arjovsky et al. (2017), Algorithm 1: n_critic 5, c = 0.01, RMSProp lr 5e-5 (betas unused there).
    "wgan": {"n_critic": 5, "clip": 0.01, "gp_weight": 0.0, "critic_batch_norm": True, "betas": (0.5, 0.999)},
    # Gulrajani et al. (2017), Algorithm 1: n_critic 5, lambda 10, no batch norm in the critic, Adam betas (0, 0.9).
    "wgan-gp": {"n_critic": 5, "clip": None, "gp_weight": 10.0, "critic_batch_norm": False, "betas": (0.0, 0.9)},
}


class GAN(LineupModel):
    """DCGAN generator and discriminator (or Wasserstein critic), with a linear probe of the discriminator's
    features as the classifier head.

    Images the generator draws are mapped from its tanh range ``[-1, 1]`` onto the value range of the model's
    inputs (``set_input_range``; the study sets it to the range of the normalised training images), so that the
    discriminator compares real and generated images on one scale.

    Args:
        input_shape: ``(channels, height, width)`` of the images; any size.
        num_classes: number of logits of the probe.
        loss: ``"gan"`` (non-saturating, Goodfellow et al., 2014), ``"wgan"`` (Wasserstein with weight clipping,
            Arjovsky et al., 2017) or ``"wgan-gp"`` (Wasserstein with gradient penalty, Gulrajani et al., 2017).
        latent_dim: dimension of the generator's noise.
        channels: channels of the discriminator's stride-2 stages, image side first; the generator mirrors them.
        n_critic: discriminator (critic) steps per generator step; each takes its own slice of the training batch,
            so the batch size is ``n_critic`` times a critic step's. ``None``: 1 for ``gan``, 5 for the WGANs.
        clip: weight clipping bound of the critic (``wgan`` only); ``None``: 0.01 for ``wgan``.
        gp_weight: weight ``lambda`` of the gradient penalty (``wgan-gp`` only); ``None``: 10 for ``wgan-gp``.
        critic_batch_norm: batch norm in the discriminator's stages but the first; ``None``: yes, except for
            ``wgan-gp``, whose per-example penalty batch norm would couple.
        betas: Adam's ``(beta1, beta2)`` for both networks when the study's optimizer is Adam or AdamW; ``None``:
            ``(0.5, 0.999)``, or ``(0.0, 0.9)`` for ``wgan-gp``.
    """

    default_objective: ClassVar[str] = "gan"
    input_low: torch.Tensor
    input_high: torch.Tensor

    def __init__(
        self,
        input_shape: InputShape,
        num_classes: int,
        *,
        loss: AdversarialLoss = "gan",
        latent_dim: int = 100,
        channels: tuple[int, ...] = (64, 128),
        n_critic: int | None = None,
        clip: float | None = None,
        gp_weight: float | None = None,
        critic_batch_norm: bool | None = None,
        betas: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if loss not in PAPER_DEFAULTS:
            raise SpecError(f"loss must be one of {', '.join(map(repr, PAPER_DEFAULTS))}, got {loss!r}")
        paper = PAPER_DEFAULTS[loss]
        if clip is not None and loss != "wgan":
            raise SpecError(f"clip bounds a WGAN critic's weights; remove it for loss = {loss!r}, or use loss = 'wgan'")
        if gp_weight is not None and gp_weight != 0 and loss != "wgan-gp":
            raise SpecError(f"gp_weight weights the gradient penalty of loss = 'wgan-gp'; remove it for "
                            f"loss = {loss!r}")
        if loss == "wgan-gp" and critic_batch_norm:
            raise SpecError("the gradient penalty is defined per example, which batch norm in the critic would couple "
                            "(Gulrajani et al., 2017, section 4): set critic_batch_norm = false for loss = 'wgan-gp'")
        self.loss = loss
        self.n_critic = int(paper["n_critic"] if n_critic is None else n_critic)  # type: ignore[call-overload]
        self.clip = paper["clip"] if clip is None else float(clip)
        self.gp_weight = float(paper["gp_weight"] if gp_weight is None else gp_weight)  # type: ignore[arg-type]
        self.betas: tuple[float, ...] = tuple(paper["betas"] if betas is None else betas)  # type: ignore[arg-type]
        if self.n_critic < 1:
            raise SpecError(f"n_critic must be at least 1, got {n_critic}")
        if loss == "wgan" and not self.clip > 0:  # type: ignore[operator]
            raise SpecError(f"clip must be positive (0.01 in the paper), got {clip}")
        if loss == "wgan-gp" and not self.gp_weight > 0:
            raise SpecError(f"gp_weight must be positive (10 in the paper), got {gp_weight}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise SpecError(f"betas must be two values in [0, 1), got {betas}")
        norm = bool(paper["critic_batch_norm"] if critic_batch_norm is None else critic_batch_norm)
        self.input_shape = tuple(input_shape)
        self.latent_dim = latent_dim
        self.generator = Generator(input_shape, latent_dim=latent_dim, channels=channels)
        self.discriminator = Discriminator(input_shape, channels=channels, batch_norm=norm, score_bias=loss == "gan")
        self.feature_dim = self.discriminator.feature_dim
        self.head = nn.Linear(self.feature_dim, num_classes)
        # The range [low, high] per channel that the generator's [-1, 1] is mapped onto; buffers, so that a
        # checkpoint and the final weights carry it.
        self.register_buffer("input_low", torch.full((input_shape[0],), -1.0))
        self.register_buffer("input_high", torch.full((input_shape[0],), 1.0))

    @torch.no_grad()
    def set_input_range(self, low: Sequence[float], high: Sequence[float]) -> None:
        """Draw images whose values per channel span ``[low, high]``: the range of the model's real inputs."""
        set_channel_range(self.input_low, self.input_high, low, high)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in the range of the model's inputs from noise ``(N, latent_dim)``."""
        low, high = self.input_low.view(1, -1, 1, 1), self.input_high.view(1, -1, 1, 1)
        return low + (self.generator(z) + 1.0) * 0.5 * (high - low)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images from fresh noise ``z ~ N(0, I)``, with gradients (the generator's own step needs them)."""
        param = self.input_low
        z = torch.randn(n, self.latent_dim, generator=generator, device=param.device, dtype=param.dtype)
        return self.generate(z)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.detach())  # a linear probe: the labels never reach the discriminator

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each stride-2 stage of the discriminator (``conv1``, ``conv2`` ...), image side first."""
        return stage_layers(self.discriminator.features)


dcgan = register_variant(
    "dcgan", GAN,
    "DCGAN (Radford et al., 2015); its head is a linear probe of the discriminator's features.",
)
wgan = register_variant(
    "wgan", GAN,
    "Wasserstein GAN with weight clipping (Arjovsky et al., 2017) on DCGAN networks; linear probe of the critic.",
    loss="wgan",
)
wgan_gp = register_variant(
    "wgan_gp", GAN,
    "WGAN with gradient penalty (Gulrajani et al., 2017) on DCGAN networks; linear probe of the critic.",
    loss="wgan-gp",
)
