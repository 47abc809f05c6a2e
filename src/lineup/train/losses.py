"""Losses of generative and metric learning, and one training step of a GAN.

- ``elbo``: the VAE's evidence lower bound (Kingma & Welling, 2013, arXiv:1312.6114), and ``posterior_collapse``,
  which says which latent dimensions a trained VAE still uses.
- GAN losses: the non-saturating loss of Goodfellow et al. (2014, arXiv:1406.2661), the Wasserstein critic and
  generator losses with weight clipping (Arjovsky, Chintala & Bottou, 2017, arXiv:1701.07875) and the gradient
  penalty (Gulrajani et al., 2017, arXiv:1704.00028); ``gan_step`` and ``wgan_step`` run one full step
  (``gan_update`` and ``wgan_update`` are the same steps with their logs left as tensors on the device).
- ``triplet_loss`` with random or batch-hard mining (Schroff et al., 2015, arXiv:1503.03832; Hermans, Beyer &
  Leibe, 2017, arXiv:1703.07737).

All losses are batch means of per-example terms, so they do not change scale with the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lineup.models.autoencoder import Likelihood
from lineup.models.contrastive import Mining
from lineup.models.vae import gaussian_kl, log_likelihood

# ------------------------------------------------------------------------------------------------------------
# VAE


class ELBO(NamedTuple):
    """The negative ELBO of a batch and its two terms, each a scalar tensor averaged over the examples.

    Attributes:
        loss: ``reconstruction + beta * kl``, what is minimised.
        reconstruction: ``-log p(x|z)`` in nats per example (all values of an example summed).
        kl: ``KL(q(z|x) || p(z))`` in nats per example (all latent dimensions summed).
    """

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def elbo(
    x: torch.Tensor,
    decoded: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
    likelihood: Likelihood = "gaussian",
    *,
    log_scale: torch.Tensor | float = 0.0,
) -> ELBO:
    """The negative evidence lower bound ``-E_q[log p(x|z)] + beta KL(q(z|x) || N(0, I))``, averaged over the batch.

    The expectation is estimated by the one draw of ``z`` that ``decoded`` was computed from (reparameterised, so
    the estimate is differentiable; Kingma & Welling, 2013, section 2.4); the KL is exact (their appendix B).
    With ``beta = 1`` the loss is the negative ELBO, an upper bound on ``-log p(x)`` in expectation; other values
    give the beta-VAE (Higgins et al., 2017).

    Args:
        x: inputs ``(N, ...)``; in [0, 1] for a Bernoulli decoder.
        decoded: the decoder's raw output for ``z ~ q(z|x)``, shaped like ``x``: Bernoulli logits or Gaussian means.
        mu: ``(N, D)`` posterior means.
        logvar: ``(N, D)`` posterior log-variances.
        beta: weight of the KL term.
        likelihood: ``"gaussian"`` or ``"bernoulli"``.
        log_scale: ``log sigma`` of a Gaussian decoder (e.g. ``VAE.decoder_log_scale()``).

    Example:
        >>> x = torch.zeros(1, 2)  # a Gaussian decoder that predicts x exactly, and q(z|x) = p(z)
        >>> r = elbo(x, x, torch.zeros(1, 3), torch.zeros(1, 3))
        >>> round(float(r.reconstruction), 4), float(r.kl)  # -2 log N(0; 0, 1) = log(2 pi)
        (1.8379, 0.0)
    """
    if x.shape != decoded.shape:
        raise ValueError(f"x and decoded must have the same shape, got {tuple(x.shape)} and {tuple(decoded.shape)}")
    if mu.shape != logvar.shape or mu.ndim != 2 or len(mu) != len(x):
        raise ValueError(f"mu and logvar must both be (N, D) with N = {len(x)}, got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    reconstruction = -log_likelihood(x, decoded, likelihood, log_scale).mean()
    kl = gaussian_kl(mu, logvar).sum(dim=1).mean()
    return ELBO(reconstruction + beta * kl, reconstruction, kl)


@dataclass(frozen=True)
class PosteriorCollapse:
    """Which latent dimensions carry information about the input.

    Attributes:
        kl_per_dim: ``(D,)`` KL of each dimension of ``q(z|x)`` from the prior, averaged over the examples, nats.
        active: ``(D,)`` whether each dimension's KL is at least the threshold.
        threshold: the threshold, nats.
    """

    kl_per_dim: torch.Tensor
    active: torch.Tensor
    threshold: float

    @property
    def num_active(self) -> int:
        return int(self.active.sum())

    @property
    def collapsed(self) -> bool:
        """Every dimension is inactive: ``q(z|x)`` is the prior for every ``x`` and the decoder ignores ``z``."""
        return self.num_active == 0


@torch.no_grad()
def posterior_collapse(mu: torch.Tensor, logvar: torch.Tensor, *, threshold: float = 0.01) -> PosteriorCollapse:
    """Per-dimension KL of the approximate posterior from the prior, averaged over data, and which dimensions live.

    A dimension whose posterior equals the prior ``N(0, 1)`` for every input has KL 0 and tells the decoder
    nothing: the posterior has collapsed there (Bowman et al., 2016, arXiv:1511.06349). The average KL per
    dimension is the rate that dimension spends; below ``threshold`` (0.01 nats by default, the same cut-off
    Burda et al., 2015, arXiv:1509.00519, use for their "active units" statistic) it is counted inactive, and
    the VAE has collapsed when every dimension is.

    Args:
        mu: ``(N, D)`` posterior means of a sample of inputs (``model.encode(x)[0]``).
        logvar: ``(N, D)`` their posterior log-variances.
        threshold: the smallest average KL, in nats, of an active dimension.
    """
    if mu.shape != logvar.shape or mu.ndim != 2 or len(mu) == 0:
        raise ValueError(f"mu and logvar must both be (N, D) with N >= 1, got {tuple(mu.shape)}, {tuple(logvar.shape)}")
    kl = gaussian_kl(mu.double(), logvar.double()).mean(dim=0)
    return PosteriorCollapse(kl, kl >= threshold, float(threshold))


# ------------------------------------------------------------------------------------------------------------
# GAN

Critic = Callable[[torch.Tensor], torch.Tensor]
"""Images ``(N, ...)`` to one score per example ``(N,)``."""


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-log D(x) - log(1 - D(G(z)))`` averaged: the discriminator's cross-entropy, real = 1, fake = 0.

    With ``D = sigmoid(logit)``, ``-log D = softplus(-logit)`` and ``-log(1 - D) = softplus(logit)``, which never
    overflow (Goodfellow et al., 2014, equation 1).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))`` averaged.

    Goodfellow et al. (2014, section 3) replace minimising ``log(1 - D(G(z)))``, whose gradient vanishes while
    the discriminator rejects the generator's samples confidently (early in training), by maximising
    ``log D(G(z))``, which has the same fixed point and strong gradients there.
    """
    return F.softplus(-fake_logits).mean()


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """``E[f(G(z))] - E[f(x)]``: minimising it makes the critic ``f`` estimate the Wasserstein-1 distance
    ``max_{|f|_L <= 1} E[f(x)] - E[f(G(z))]`` (Arjovsky et al., 2017, equation 3), with the Lipschitz bound enforced
    by ``clip_parameters_`` or ``gradient_penalty``."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``-E[f(G(z))]``: the generator lowers the critic's Wasserstein estimate (Arjovsky et al., 2017, Algorithm 1)."""
    return -fake_scores.mean()


@torch.no_grad()
def clip_parameters_(module: nn.Module, clip: float) -> None:
    """Clamp every parameter of ``module`` to ``[-clip, clip]`` in place.

    Arjovsky et al. (2017, Algorithm 1, ``c = 0.01``) clip the critic's weights after each of its updates so that
    the critic stays in a compact set of functions, all ``K``-Lipschitz for some ``K``: a crude way to bound the
    Lipschitz constant, which the gradient penalty replaces.
    """
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip}")
    for p in module.parameters():
        p.clamp_(-clip, clip)


def gradient_penalty(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, *, rng: torch.Generator | None = None
) -> torch.Tensor:
    """``E[(||grad f(x_hat)||_2 - 1)^2]`` at random points ``x_hat`` between real and generated examples.

    Gulrajani et al. (2017, equation 3 and Algorithm 1): ``x_hat = eps x + (1 - eps) x_tilde`` with one
    ``eps ~ U[0, 1]`` per pair. The optimal critic has gradient norm 1 almost everywhere on such lines, so the
    penalty pulls the critic towards the 1-Lipschitz functions the Wasserstein dual is taken over. The result is
    differentiable with respect to the critic's parameters (``create_graph``); weight it by ``lambda`` (10 in the
    paper) in the critic's loss.

    Args:
        critic: images ``(N, ...)`` to scores ``(N,)``; without batch norm, which would couple the examples.
        real: ``(N, ...)`` real examples.
        fake: ``(N, ...)`` generated examples (detached from the generator).
        rng: the random stream of ``eps``, on the examples' device.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    shape = (len(real),) + (1,) * (real.ndim - 1)
    eps = torch.rand(shape, generator=rng, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    # The 1e-12 keeps the norm differentiable where a gradient is exactly 0 (sqrt'(0) is infinite).
    norm = torch.sqrt(grad.reshape(len(grad), -1).pow(2).sum(dim=1) + 1e-12)
    return (norm - 1).pow(2).mean()


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """``module``'s parameters out of autograd for a while: the generator's backward goes through the
    discriminator without writing into its gradients, which keep those of the discriminator's own update."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _batches(real: torch.Tensor | Sequence[torch.Tensor], n: int) -> list[torch.Tensor]:
    batches = [real] * n if isinstance(real, torch.Tensor) else list(real)
    if n < 1 or len(batches) != n:
        raise ValueError(f"need n_critic >= 1 and one real batch or n_critic of them, got n_critic={n} and "
                         f"{len(batches)} batches")
    return batches


def gan_update(
    generator: nn.Module,
    discriminator: nn.Module,
    generator_optimizer: torch.optim.Optimizer,
    discriminator_optimizer: torch.optim.Optimizer,
    real: torch.Tensor | Sequence[torch.Tensor],
    *,
    n_discriminator: int = 1,
    rng: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``gan_step`` with its logs as detached scalar tensors, which a training loop can keep on the device.

    With ``n_discriminator = k`` the discriminator takes ``k`` steps, each on fresh noise, before the generator's
    one (Goodfellow et al., 2014, Algorithm 1); ``real`` is then one batch for all of them or ``k`` batches. After
    the call every parameter holds the gradient of its own last update (the discriminator's parameters are out of
    autograd during the generator's backward).
    """
    batches = _batches(real, n_discriminator)
    for batch in batches:
        fake = generator.sample(len(batch), rng)  # type: ignore[operator]
        discriminator_optimizer.zero_grad(set_to_none=True)
        real_logits, fake_logits = discriminator(batch), discriminator(fake.detach())
        d_loss = gan_discriminator_loss(real_logits, fake_logits)
        d_loss.backward()
        discriminator_optimizer.step()

    generator_optimizer.zero_grad(set_to_none=True)
    with _frozen(discriminator):
        g_loss = gan_generator_loss(discriminator(fake))
        g_loss.backward()
    generator_optimizer.step()
    return {
        "discriminator_loss": d_loss.detach(),
        "generator_loss": g_loss.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
    }


def gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    generator_optimizer: torch.optim.Optimizer,
    discriminator_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    *,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One step of the non-saturating GAN: a discriminator update, then a generator update.

    ``generator`` must have ``sample(n, generator)`` (``lineup.models.gan.Generator``); ``discriminator`` maps
    images to logits ``(N,)``. Both updates see the same generated batch; the generator's loss is computed after
    the discriminator's update (Goodfellow et al., 2014, Algorithm 1 with ``k = 1``).

    Args:
        generator: the generator.
        discriminator: the discriminator.
        generator_optimizer: over the generator's parameters.
        discriminator_optimizer: over the discriminator's parameters.
        real: a batch of real examples ``(N, C, H, W)``, on the models' device.
        rng: the random stream of the noise; ``None`` uses the global one.

    Returns:
        ``discriminator_loss`` and ``generator_loss`` (nats), and ``d_real`` and ``d_fake``, the discriminator's
        mean probability that real and generated examples are real, before its update.
    """
    logs = gan_update(generator, discriminator, generator_optimizer, discriminator_optimizer, real, rng=rng)
    return {k: v.item() for k, v in logs.items()}


def wgan_update(
    generator: nn.Module,
    critic: nn.Module,
    generator_optimizer: torch.optim.Optimizer,
    critic_optimizer: torch.optim.Optimizer,
    real: torch.Tensor | Sequence[torch.Tensor],
    *,
    n_critic: int = 5,
    clip: float | None = 0.01,
    gp_weight: float = 0.0,
    rng: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``wgan_step`` with its logs as detached scalar tensors, which a training loop can keep on the device.

    After the call every parameter holds the gradient of its own last update (the critic's parameters are out of
    autograd during the generator's backward).
    """
    batches = _batches(real, n_critic)
    if clip is None and gp_weight == 0:
        raise ValueError("a WGAN critic needs a Lipschitz constraint: give clip or gp_weight > 0")
    penalty = torch.zeros((), device=batches[0].device)
    for batch in batches:
        with torch.no_grad():
            fake = generator.sample(len(batch), rng)  # type: ignore[operator]
        critic_optimizer.zero_grad(set_to_none=True)
        real_scores, fake_scores = critic(batch), critic(fake)
        c_loss = wgan_critic_loss(real_scores, fake_scores)
        wasserstein = -c_loss.detach()
        if gp_weight > 0:
            penalty = gradient_penalty(critic, batch, fake, rng=rng)
            c_loss = c_loss + gp_weight * penalty
        c_loss.backward()
        critic_optimizer.step()
        if clip is not None:
            clip_parameters_(critic, clip)

    generator_optimizer.zero_grad(set_to_none=True)
    with _frozen(critic):
        g_loss = wgan_generator_loss(critic(generator.sample(len(batches[-1]), rng)))  # type: ignore[operator]
        g_loss.backward()
    generator_optimizer.step()
    return {
        "critic_loss": c_loss.detach(),
        "gradient_penalty": penalty.detach(),
        "wasserstein": wasserstein,
        "generator_loss": g_loss.detach(),
    }


def wgan_step(
    generator: nn.Module,
    critic: nn.Module,
    generator_optimizer: torch.optim.Optimizer,
    critic_optimizer: torch.optim.Optimizer,
    real: torch.Tensor | Sequence[torch.Tensor],
    *,
    n_critic: int = 5,
    clip: float | None = 0.01,
    gp_weight: float = 0.0,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One generator step of a Wasserstein GAN, after ``n_critic`` critic steps.

    With ``clip = 0.01`` and ``gp_weight = 0`` this is Arjovsky et al.'s Algorithm 1 (RMSProp, learning rate
    5e-5 in the paper); with ``clip = None`` and ``gp_weight = 10`` it is Gulrajani et al.'s Algorithm 1 (WGAN-GP,
    Adam with betas (0, 0.9), a critic without batch norm). Each critic step draws fresh noise; the parameters are
    clipped after each critic update.

    Args:
        generator: has ``sample(n, generator)``.
        critic: images to scores ``(N,)``.
        generator_optimizer: over the generator's parameters.
        critic_optimizer: over the critic's parameters.
        real: one batch that every critic step uses, or ``n_critic`` batches, one per critic step.
        n_critic: critic steps per generator step.
        clip: clip the critic's parameters to ``[-clip, clip]`` after each of its steps; ``None`` does not.
        gp_weight: weight ``lambda`` of the gradient penalty; 0 computes none.
        rng: the random stream of the noise and of the penalty's interpolation.

    Returns:
        ``critic_loss`` (with the penalty) and ``gradient_penalty`` (unweighted) of the last critic step,
        ``wasserstein``, the critic's estimate ``E[f(x)] - E[f(G(z))]`` at that step before its update, and
        ``generator_loss``.
    """
    logs = wgan_update(generator, critic, generator_optimizer, critic_optimizer, real, n_critic=n_critic, clip=clip,
                       gp_weight=gp_weight, rng=rng)
    return {k: v.item() for k, v in logs.items()}


# ------------------------------------------------------------------------------------------------------------
# Triplets


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(N, N)`` between the rows of ``(N, D)`` embeddings.

    Computed from the differences rather than ``|a|^2 + |b|^2 - 2 a.b``, which cancels badly for close points;
    the square root is taken of at least 1e-12 so that its gradient stays finite at the zero diagonal.
    """
    diff = embeddings[:, None, :] - embeddings[None, :, :]  # (N, N, D)
    return torch.sqrt(diff.pow(2).sum(dim=-1).clamp_min(1e-12))


def mine_triplets(
    distances: torch.Tensor, labels: torch.Tensor, *, mining: Mining = "batch_hard",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One triplet ``(anchor, positive, negative)`` per example that has a positive and a negative in the batch.

    ``"batch_hard"`` takes the farthest positive and the closest negative of each anchor (Hermans et al., 2017,
    section 2); ``"random"`` takes a positive and a negative uniformly at random. A positive is another example
    of the anchor's class, a negative an example of another class.

    Args:
        distances: ``(N, N)`` distances between the embeddings.
        labels: ``(N,)`` integer classes.
        mining: ``"batch_hard"`` or ``"random"``.
        generator: the random stream of ``"random"`` mining.

    Returns:
        Index tensors ``(A,)`` of anchors, positives and negatives; ``A`` is 0 when no example has both.
    """
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~eye, ~same
    anchors = torch.nonzero(positive.any(dim=1) & negative.any(dim=1)).squeeze(1)
    positive, negative = positive[anchors], negative[anchors]
    if mining == "batch_hard":
        d = distances[anchors].detach()
        pos = torch.where(positive, d, torch.full_like(d, -torch.inf)).argmax(dim=1)
        neg = torch.where(negative, d, torch.full_like(d, torch.inf)).argmin(dim=1)
    elif mining == "random":
        # Uniform keys, masked to -1 where not allowed: the argmax is a uniform choice among the allowed ones.
        keys = torch.rand(positive.shape, generator=generator, device=labels.device)
        pos = torch.where(positive, keys, -1.0).argmax(dim=1)
        keys = torch.rand(negative.shape, generator=generator, device=labels.device)
        neg = torch.where(negative, keys, -1.0).argmax(dim=1)
    else:
        raise ValueError(f"mining must be 'batch_hard' or 'random', got {mining!r}")
    return anchors, pos, neg


def triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = 0.2,
    mining: Mining = "batch_hard",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Triplet margin loss ``mean max(0, d(a, p) - d(a, n) + margin)`` over one mined triplet per anchor.

    FaceNet's loss (Schroff et al., 2015, equation 2, with distances rather than squared distances, as Hermans
    et al., 2017, found to train more stably) asks each anchor to be closer to a positive than to a negative by
    ``margin``. Random triplets are soon all satisfied and stop teaching anything; batch-hard mining takes, for
    each anchor, the farthest positive and the closest negative in the batch (Hermans et al., equation 5), the
    triplets still violated. Anchors without a positive or a negative in the batch are left out; a batch with
    none gives 0, connected to ``embeddings`` so that ``backward`` still works.

    Args:
        embeddings: ``(N, D)`` embeddings (unit-norm for ``ContrastiveEncoder``; 0.2 suits that scale).
        labels: ``(N,)`` integer classes.
        margin: the margin, in the embeddings' distance units.
        mining: ``"batch_hard"`` or ``"random"``.
        generator: the random stream of ``"random"`` mining.

    Example:
        >>> e = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
        >>> # Points 0 and 1 (class 0) are 1 apart and at least 3 from point 2 (class 1), which has no positive:
        >>> # (max(0, 1 - 3 + 1) + max(0, 1 - sqrt(10) + 1)) / 2 = 0
        >>> triplet_loss(e, torch.tensor([0, 0, 1]), margin=1.0).item()
        0.0
    """
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise ValueError(f"embeddings must be (N, D) and labels (N,), got {tuple(embeddings.shape)} and "
                         f"{tuple(labels.shape)}")
    distances = pairwise_distances(embeddings)
    anchors, pos, neg = mine_triplets(distances, labels, mining=mining, generator=generator)
    if len(anchors) == 0:
        return embeddings.sum() * 0.0
    d = distances[anchors]
    d_ap = d.gather(1, pos[:, None]).squeeze(1)
    d_an = d.gather(1, neg[:, None]).squeeze(1)
    return F.relu(d_ap - d_an + margin).mean()
