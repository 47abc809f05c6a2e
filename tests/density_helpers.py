"""Shared by the tests of VAEs and of their densities: a training loop on the ELBO alone, and a "model" that is a
given density exactly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lineup.models.vae import VAE


def train_on_elbo(model: VAE, x: torch.Tensor, steps: int, *, batch: int) -> None:
    """``steps`` Adam steps (lr 3e-3) on the negative ELBO of random batches of ``x``, drawn from a stream seeded 0."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(x), (batch,), generator=order)
        loss = model.negative_elbo(x[i]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


class ExactDensity(torch.nn.Module):
    """A "model" that is a given density: ``q(z|x) = p(z)`` and ``p(x|z) = p(x)`` whatever ``z``.

    Every importance weight is then ``p(x) p(z) / q(z|x) = p(x)``, so the IWAE bound is exact for any k.

    Args:
        log_density: ``log p(x)`` of ``(N, ...)`` float64 inputs, ``(N,)``.
    """

    likelihood = "gaussian"  # a density of real values, as lineup.study.known.has_density asks
    latent_dim = 1

    def __init__(self, log_density: Callable[[np.ndarray], np.ndarray]) -> None:
        super().__init__()
        self.log_density = log_density

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(len(x), 1, dtype=torch.float64)
        return zeros, zeros

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.log_density(x.double().numpy()))
