"""Variational autoencoders (Kingma & Welling, 2013, arXiv:1312.6114).

The model is ``p(z) = N(0, I)`` and a decoder ``p(x|z)``: independent Bernoullis whose logits the decoder outputs
(inputs in [0, 1]), or a Gaussian ``N(decoder(z), sigma^2 I)``. An encoder gives the Gaussian approximate
posterior ``q(z|x) = N(mu(x), diag exp(logvar(x)))``, and the two are trained together by maximising the
evidence lower bound

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)),

whose expectation is estimated with one reparameterised draw ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``
(section 2.4 of the paper), and whose KL term has the closed form of its appendix B. The Gaussian decoder's
``sigma`` is one learned scalar by default, which makes its log-likelihood a calibrated density rather than a
squared error with an arbitrary weight (Rybkin, Daniilidis & Levine, 2020, arXiv:2006.13202); a fixed
``decoder_std`` is the usual squared-error VAE.

The per-example densities the ELBO and the importance-weighted bound are made of live here, with the model that
defines them: ``gaussian_kl``, ``log_normal`` and ``log_likelihood``. ``lineup.train.losses.elbo`` averages them
over a batch; ``lineup.analysis.generative.iwae_log_likelihood`` bounds ``log p(x)`` with them.

As for the autoencoders (``lineup.models.autoencoder``), a linear classifier head is always present, here on the
posterior mean: ``forward(x)`` returns its logits and ``forward_features(x)`` is ``mu(x)``. The model's own
objective, ``elbo`` (``lineup.train.objectives``, its ``default_objective``), trains the whole VAE along with the
head on the cross-entropy plus ``elbo_weight`` times the negative beta-ELBO (per example, averaged over the batch)
and logs the reconstruction and KL terms. ``latent_codes(x)`` is the posterior mean, which a study's latent
evaluation (``lineup.study.latent``) reads.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.models._layers import Activation, classifier_head
from lineup.models._registry import register_variant
from lineup.models.autoencoder import (
    BernoulliTargets,
    Likelihood,
    UnitRange,
    check_latent_options,
    encoder_decoder,
    stage_layers,
)

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` per latent dimension, shape ``(N, D)``.

    Kingma & Welling (2013), appendix B: ``-1/2 (1 + logvar - mu^2 - exp(logvar))`` per dimension, summed over
    dimensions for the whole KL.

    >>> gaussian_kl(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]])).tolist()  # mu^2 / 2
    [[0.0, 0.5]]
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag exp(logvar))`` summed over the last dimension, shape ``z.shape[:-1]``."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(dim=-1)


def log_likelihood(
    x: torch.Tensor, decoded: torch.Tensor, likelihood: Likelihood, log_scale: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """``log p(x|z)`` per example, shape ``(N,)``, summed over every value of an example.

    Args:
        x: inputs ``(N, ...)``; in [0, 1] for ``"bernoulli"`` (the binary cross-entropy is a log-likelihood only
            there; grey levels in between give the usual "continuous Bernoulli" approximation).
        decoded: the decoder's raw output, the same shape: logits (Bernoulli) or the mean (Gaussian).
        likelihood: ``"bernoulli"`` or ``"gaussian"``.
        log_scale: ``log sigma`` of the Gaussian, a scalar or a tensor that broadcasts to ``x``.

    >>> round(float(log_likelihood(torch.zeros(1, 2), torch.zeros(1, 2), "gaussian")), 4)  # 2 log N(0; 0, 1)
    -1.8379
    """
    if likelihood == "bernoulli":
        values = -F.binary_cross_entropy_with_logits(decoded, x, reduction="none")
    elif likelihood == "gaussian":
        log_scale = torch.as_tensor(log_scale, dtype=decoded.dtype, device=decoded.device)
        values = -0.5 * ((x - decoded) * torch.exp(-log_scale)).pow(2) - log_scale - 0.5 * _LOG_2PI
    else:
        raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli', got {likelihood!r}")
    return values.reshape(len(values), -1).sum(dim=1)


class VAE(BernoulliTargets, LineupModel):
    """Encoder → ``(mu, logvar)``; decoder from ``z``; linear classifier head on ``mu``.

    Subclasses build the two stacks (``DenseVAE``, ``ConvVAE``).

    Args:
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of logits of the head.
        encoder: ``(N, C, H, W)`` to ``(N, encoder_dim)``.
        encoder_dim: width of the encoder's output.
        decoder: ``(N, latent_dim)`` to raw ``(N, C, H, W)`` values.
        latent_dim: dimension of ``z``.
        likelihood: ``"gaussian"`` (the decoder outputs the mean) or ``"bernoulli"`` (logits; inputs in [0, 1]).
        decoder_std: ``sigma`` of the Gaussian decoder; ``None`` learns it (one scalar).
        beta: weight of the KL term in the ELBO (1 is the ELBO; Higgins et al., 2017, beta-VAE).
        elbo_weight: weight of the negative ELBO in the ``elbo`` objective; 0 never runs the decoder in training.
        supervised: whether the classification loss reaches the encoder; ``False`` makes the head a linear probe.
    """

    default_objective: ClassVar[str] = "elbo"

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
        decoder_std: float | None,
        beta: float,
        elbo_weight: float,
        supervised: bool,
    ) -> None:
        super().__init__()
        check_latent_options(latent_dim, likelihood, elbo_weight, "elbo_weight")
        if not beta >= 0:
            raise SpecError(f"beta must be >= 0, got {beta!r}")
        if decoder_std is not None and not decoder_std > 0:
            raise SpecError(f"decoder_std must be positive (or None to learn it), got {decoder_std!r}")
        self.input_shape = tuple(input_shape)
        self.likelihood = likelihood
        self.beta, self.elbo_weight, self.supervised = float(beta), float(elbo_weight), supervised
        self.latent_dim = self.feature_dim = latent_dim
        self.encoder = encoder
        self.mu = nn.Linear(encoder_dim, latent_dim)
        self.logvar = nn.Linear(encoder_dim, latent_dim)
        self.decoder = decoder
        self.head = classifier_head(latent_dim, num_classes)
        self.unit_range = UnitRange(input_shape[0]) if likelihood == "bernoulli" else None
        self.log_scale: nn.Parameter | None = None
        self._fixed_log_scale = 0.0
        if likelihood == "gaussian":
            if decoder_std is None:
                self.log_scale = nn.Parameter(torch.zeros(()))
            else:
                self._fixed_log_scale = math.log(decoder_std)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(N, latent_dim)``, of ``q(z|x)`` for inputs ``(N, C, H, W)``."""
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A draw ``z = mu + exp(logvar / 2) * eps`` of ``q(z|x)``, through which gradients reach ``mu`` and
        ``logvar``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw output ``(N, C, H, W)``: the Gaussian mean, or the Bernoulli logits."""
        return self.decoder(z)

    def decoder_log_scale(self) -> torch.Tensor | float:
        """``log sigma`` of the Gaussian decoder (learned or fixed); 0 for a Bernoulli decoder, where it is unused."""
        return self.log_scale if self.log_scale is not None else self._fixed_log_scale

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` per example, ``(N,)``, from the decoder's output ``decoded = decode(z)``; a Bernoulli
        decoder reads ``x`` mapped onto [0, 1] (``likelihood_target``)."""
        return log_likelihood(self.likelihood_target(x), decoded, self.likelihood, self.decoder_log_scale())

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``E[x | z = mu(x)]``, shape ``(N, C, H, W)``: the reconstruction from the posterior mean."""
        return self.output_mean(self.decode(self.encode(x)[0]))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, mean: bool = True) -> torch.Tensor:
        """``n`` samples ``(n, C, H, W)`` of the model: ``z ~ N(0, I)``, then ``E[x|z]`` or a draw of ``p(x|z)``.

        Args:
            n: number of samples.
            generator: the random stream, on the model's device; ``None`` uses the global one.
            mean: return ``E[x|z]`` (the usual picture of a VAE sample) rather than a draw of ``p(x|z)``.
        """
        param = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, device=param.device, dtype=param.dtype)
        decoded = self.decode(z)
        if mean:
            return self.output_mean(decoded)
        if self.unit_range is not None:  # Bernoulli
            return self.unit_range.from_unit(torch.bernoulli(torch.sigmoid(decoded), generator=generator))
        noise = torch.randn(decoded.shape, generator=generator, device=decoded.device, dtype=decoded.dtype)
        scale = torch.exp(torch.as_tensor(self.decoder_log_scale(), dtype=decoded.dtype, device=decoded.device))
        return decoded + scale * noise

    def negative_elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``-log p(x|z) + beta KL(q(z|x) || p(z))`` per example, ``(N,)``, with one draw of ``z``."""
        mu, logvar = self.encode(x)
        return self._negative_elbo(x, mu, logvar, generator)

    def _negative_elbo(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        decoded = self.decode(self.reparameterize(mu, logvar, generator))
        return -self.log_likelihood(x, decoded) + self.beta * gaussian_kl(mu, logvar).sum(dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features if self.supervised else features.detach())

    def latent_codes(self, x: torch.Tensor) -> torch.Tensor:
        """The point of the latent space ``(N, latent_dim)`` that a study's latent evaluation reads: ``mu(x)``."""
        return self.encode(x)[0]

    def representation_layers(self) -> dict[str, nn.Module]:
        """Each encoder stage's activation (``conv{i}`` or ``fc{i}``), input side first; ``mu`` is the features."""
        return stage_layers(self.encoder)


class DenseVAE(VAE):
    """Fully connected VAE: flatten → hidden layers → ``(mu, logvar)``; ``z`` → hidden layers reversed → reshape.

    Args:
        input_shape: ``(channels, height, width)`` of one example (``(1, 1, 2)`` for points of the plane).
        num_classes: number of logits of the head on ``mu``.
        latent_dim: dimension of ``z`` (2 to draw the latent space).
        hidden: units of the encoder's hidden layers, input side first; the decoder has them in reverse.
        activation: nonlinearity after every hidden layer.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        batch_norm: batch norm before every hidden activation.
        likelihood: ``"gaussian"`` (real values, e.g. normalised images or points) or ``"bernoulli"`` (inputs in
            [0, 1]).
        decoder_std: ``sigma`` of the Gaussian decoder; ``None`` learns it.
        beta: weight of the KL term (1 is the ELBO).
        elbo_weight: weight of the negative ELBO in the ``elbo`` objective.
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
        decoder_std: float | None = None,
        beta: float = 1.0,
        elbo_weight: float = 1.0,
        supervised: bool = True,
        width: float = 1.0,
    ) -> None:
        check_latent_options(latent_dim, likelihood, elbo_weight, "elbo_weight")
        encoder, encoder_dim, decoder = encoder_decoder("dense", input_shape, latent_dim, hidden, width,
                                                        activation=activation, negative_slope=negative_slope,
                                                        batch_norm=batch_norm)
        super().__init__(input_shape, num_classes, encoder, encoder_dim, decoder, latent_dim=latent_dim,
                         likelihood=likelihood, decoder_std=decoder_std, beta=beta, elbo_weight=elbo_weight,
                         supervised=supervised)


class ConvVAE(VAE):
    """Convolutional VAE: stride-2 convolutions → ``(mu, logvar)``; ``z`` → transposed convolutions to the input size.

    Args:
        input_shape: ``(channels, height, width)`` of one example; any size.
        num_classes: number of logits of the head on ``mu``.
        latent_dim: dimension of ``z``.
        channels: output channels of each encoder stage, input side first; the decoder mirrors them.
        activation: nonlinearity after every stage but the decoder's last.
        negative_slope: slope for negative inputs when ``activation`` is ``"leaky_relu"``.
        batch_norm: batch norm before every activation.
        likelihood: ``"gaussian"`` or ``"bernoulli"`` (inputs in [0, 1]).
        decoder_std: ``sigma`` of the Gaussian decoder; ``None`` learns it.
        beta: weight of the KL term (1 is the ELBO).
        elbo_weight: weight of the negative ELBO in the ``elbo`` objective.
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
        decoder_std: float | None = None,
        beta: float = 1.0,
        elbo_weight: float = 1.0,
        supervised: bool = True,
        width: float = 1.0,
    ) -> None:
        check_latent_options(latent_dim, likelihood, elbo_weight, "elbo_weight")
        encoder, encoder_dim, decoder = encoder_decoder("conv", input_shape, latent_dim, channels, width,
                                                        activation=activation, negative_slope=negative_slope,
                                                        batch_norm=batch_norm)
        super().__init__(input_shape, num_classes, encoder, encoder_dim, decoder, latent_dim=latent_dim,
                         likelihood=likelihood, decoder_std=decoder_std, beta=beta, elbo_weight=elbo_weight,
                         supervised=supervised)


vae = register_variant(
    "vae", DenseVAE,
    "Dense VAE (Kingma & Welling, 2013) with a classifier head on the posterior mean, trained on ELBO plus CE.",
)
conv_vae = register_variant(
    "conv_vae", ConvVAE,
    "Convolutional VAE with a classifier head on the posterior mean, trained on ELBO plus cross-entropy.",
)
