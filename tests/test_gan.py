"""DCGAN networks for any image size, the GAN and WGAN losses, weight clipping, the gradient penalty, one step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lineup.models.gan import Discriminator, Generator
from lineup.train.losses import (
    clip_parameters_,
    gan_discriminator_loss,
    gan_generator_loss,
    gan_step,
    gradient_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_step,
)

pytestmark = pytest.mark.usefixtures("seeded_one_thread")  # seed 0, one torch thread (conftest.py)


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def changed(model: nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


# ------------------------------------------------------------------------------------------------------------
# Networks


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 40, 40), (3, 32, 32), (1, 7, 9)], ids=str)
def test_generator_makes_images_of_the_requested_size_that_the_discriminator_scores(shape: tuple) -> None:
    g = Generator(shape, latent_dim=8, channels=(4, 8))
    d = Discriminator(shape, channels=(4, 8))
    x = g.sample(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, *shape) and x.abs().max() <= 1  # tanh output
    assert d(x).shape == (5,)
    assert d.forward_features(x).shape == (5, d.feature_dim)


def test_dcgan_layout_and_initialisation() -> None:
    g, d = Generator((1, 28, 28)), Discriminator((1, 28, 28))
    # 28 = 7 · 2 · 2: project to 128×7×7, then 7 -> 14 -> 28.
    assert g.net.unflatten.unflattened_size == (128, 7, 7)
    assert [type(m).__name__ for m in g.net if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))] == [
        "ConvTranspose2d", "ConvTranspose2d"
    ]
    # Batch norm after the projection and the first transposed convolution, none on the output (Radford et al.).
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 2
    # The discriminator has none on its first stage and LeakyReLU(0.2) throughout.
    assert [name for name, _ in d.features.named_children()] == [
        "conv1", "conv1_act", "conv2", "conv2_bn", "conv2_act", "flatten"
    ]
    assert {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Linear))])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05) and abs(weights.mean().item()) < 1e-3


# ------------------------------------------------------------------------------------------------------------
# Losses


def test_gan_losses_by_hand() -> None:
    # At logits 0 the discriminator says 1/2 to everything: -log 1/2 - log 1/2 = 2 log 2, and -log 1/2 for G.
    zeros = torch.zeros(4)
    assert float(gan_discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2))
    assert float(gan_generator_loss(zeros)) == pytest.approx(math.log(2))
    # Non-saturating: where D rejects a fake confidently (logit -10) the generator's gradient stays near -1,
    # where log(1 - D) would give -sigmoid(-10), about -4.5e-5.
    logit = torch.tensor([-10.0], requires_grad=True)
    gan_generator_loss(logit).backward()
    assert logit.grad.item() == pytest.approx(-1.0, abs=1e-4)


def test_wasserstein_losses_by_hand() -> None:
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, 0.0])
    assert float(wgan_critic_loss(real, fake)) == pytest.approx(0.5 - 3.0)
    assert float(wgan_generator_loss(fake)) == pytest.approx(-0.5)


class LinearCritic(nn.Module):
    """``f(x) = w . flatten(x)``: its gradient is ``w`` everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def test_gradient_penalty_is_zero_for_unit_gradients_and_the_squared_excess_otherwise() -> None:
    real, fake = torch.randn(8, 1, 2, 2), torch.randn(8, 1, 2, 2)
    unit = torch.tensor([0.5, -0.5, 0.5, 0.5])  # norm 1
    assert gradient_penalty(LinearCritic(unit), real, fake).item() == pytest.approx(0.0, abs=1e-10)
    # Norm 2 and 0.5: (2 - 1)^2 = 1 and (0.5 - 1)^2 = 0.25 at every interpolated point.
    assert gradient_penalty(LinearCritic(2 * unit), real, fake).item() == pytest.approx(1.0)
    assert gradient_penalty(LinearCritic(0.5 * unit), real, fake).item() == pytest.approx(0.25)
    # Differentiable in the critic's parameters: d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = w at |w| = 2.
    critic = LinearCritic(2 * unit)
    gradient_penalty(critic, real, fake).backward()
    torch.testing.assert_close(critic.w.grad, 2 * unit)


def test_gradient_penalty_is_positive_for_a_critic_of_varying_slope() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    assert gradient_penalty(critic, torch.randn(16, 1, 2, 2), torch.randn(16, 1, 2, 2)).item() > 0.01


def test_clipping_bounds_every_parameter() -> None:
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.5, 0.001], [0.0, 2.0, -3.0]]))
    clip_parameters_(model, 0.01)
    torch.testing.assert_close(model.weight, torch.tensor([[0.01, -0.01, 0.001], [0.0, 0.01, -0.01]]))
    assert model.bias.abs().max() <= 0.01


# ------------------------------------------------------------------------------------------------------------
# Steps


def tiny_gan(critic_norm: bool = True) -> tuple[Generator, Discriminator]:
    return Generator((1, 12, 12), latent_dim=8, channels=(4, 8)), Discriminator(
        (1, 12, 12), channels=(4, 8), batch_norm=critic_norm
    )


def test_gan_steps_train_both_networks() -> None:
    g, d = tiny_gan()
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))  # DCGAN's settings
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(8, 1, 12, 12) * 2 - 1
    g_before, d_before = snapshot(g), snapshot(d)
    rng = torch.Generator().manual_seed(0)
    logs = [gan_step(g, d, g_opt, d_opt, real, rng=rng) for _ in range(3)]
    assert changed(g, g_before) and changed(d, d_before)
    assert set(logs[0]) == {"discriminator_loss", "generator_loss", "d_real", "d_fake"}
    assert all(math.isfinite(v) for log in logs for v in log.values())
    assert all(0 < log["d_real"] < 1 and 0 < log["d_fake"] < 1 for log in logs)


def test_wgan_step_with_clipping_keeps_the_critic_within_bounds() -> None:
    g, critic = tiny_gan()
    # DCGAN's N(0, 0.02) initialisation and batch norm scales near 1 start far outside [-0.01, 0.01].
    assert max(p.abs().max().item() for p in critic.parameters()) > 0.01
    g_opt = torch.optim.RMSprop(g.parameters(), lr=5e-5)  # the paper's optimiser and learning rate
    c_opt = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
    g_before = snapshot(g)
    real = [torch.rand(8, 1, 12, 12) * 2 - 1 for _ in range(5)]
    log = wgan_step(g, critic, g_opt, c_opt, real, n_critic=5, clip=0.01, rng=torch.Generator().manual_seed(0))
    assert all(p.abs().max().item() <= 0.01 for p in critic.parameters())
    assert changed(g, g_before)
    assert set(log) == {"critic_loss", "gradient_penalty", "wasserstein", "generator_loss"}
    assert log["gradient_penalty"] == 0.0 and log["critic_loss"] == pytest.approx(-log["wasserstein"])


def test_wgan_gp_steps_run_and_train_the_generator() -> None:
    g, critic = tiny_gan(critic_norm=False)
    g_opt = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))  # Gulrajani et al.'s settings
    c_opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.0, 0.9))
    g_before, c_before = snapshot(g), snapshot(critic)
    real = torch.rand(8, 1, 12, 12) * 2 - 1
    rng = torch.Generator().manual_seed(0)
    logs = [wgan_step(g, critic, g_opt, c_opt, real, n_critic=2, clip=None, gp_weight=10.0, rng=rng) for _ in range(2)]
    assert changed(g, g_before) and changed(critic, c_before)
    for log in logs:
        assert log["gradient_penalty"] > 0 and all(math.isfinite(v) for v in log.values())
        assert log["critic_loss"] == pytest.approx(-log["wasserstein"] + 10.0 * log["gradient_penalty"], rel=1e-5)


def test_wgan_step_refuses_an_unconstrained_critic_and_a_wrong_number_of_batches() -> None:
    g, critic = tiny_gan(critic_norm=False)
    opts = torch.optim.SGD(g.parameters(), lr=0.1), torch.optim.SGD(critic.parameters(), lr=0.1)
    real = torch.rand(4, 1, 12, 12)
    with pytest.raises(ValueError, match="Lipschitz"):
        wgan_step(g, critic, *opts, real, clip=None, gp_weight=0.0)
    with pytest.raises(ValueError, match="n_critic"):
        wgan_step(g, critic, *opts, [real, real], n_critic=3)
