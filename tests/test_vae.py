"""VAE: the ELBO's terms against torch.distributions, sampling, the ``elbo`` objective, posterior collapse."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from density_helpers import train_on_elbo
from lineup.data.synthetic import xor_blobs
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.models.vae import VAE, gaussian_kl, log_likelihood, log_normal
from lineup.train import create_objective
from lineup.train.losses import elbo, posterior_collapse
from lineup.train.objectives import batch_loss

pytestmark = pytest.mark.usefixtures("seeded_one_thread")  # seed 0, one torch thread (conftest.py)


# ------------------------------------------------------------------------------------------------------------
# The densities, against torch.distributions


def test_kl_matches_torch_distributions_per_dimension() -> None:
    mu, logvar = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    expected = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)
    # By hand: mu = 1, var = e: (1 + e - 1 - 1) / 2 = (e - 1) / 2
    assert float(gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[1.0]]))) == pytest.approx((math.e - 1) / 2)


def test_log_densities_match_torch_distributions() -> None:
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.5, dtype=torch.float64))
    out = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    bernoulli = D.Bernoulli(logits=out).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(log_likelihood(x, out, "bernoulli"), bernoulli)
    log_scale = torch.tensor(-0.3, dtype=torch.float64)
    gaussian = D.Normal(out, log_scale.exp()).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(log_likelihood(x, out, "gaussian", log_scale), gaussian)
    z, mu, logvar = (torch.randn(2, 6, 4, dtype=torch.float64) for _ in range(3))
    expected = D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z)
    torch.testing.assert_close(log_normal(z, mu, logvar), expected)


def test_elbo_is_the_batch_mean_of_reconstruction_plus_beta_kl() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logits = torch.zeros(2, 2)  # p = 1/2 for every value: -log p(x|z) = 2 log 2 per example
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # KL: mu^2 / 2 = 0.5 for the first example, 0 for the second
    logvar = torch.zeros(2, 2)
    r = elbo(x, logits, mu, logvar, beta=3.0, likelihood="bernoulli")
    assert float(r.reconstruction) == pytest.approx(2 * math.log(2))
    assert float(r.kl) == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert float(r.loss) == pytest.approx(2 * math.log(2) + 3 * 0.25)
    with pytest.raises(ValueError, match="same shape"):
        elbo(x, logits[:, :1], mu, logvar)


# ------------------------------------------------------------------------------------------------------------
# The model


@pytest.mark.parametrize(
    ("name", "shape"), [("vae", (1, 1, 2)), ("vae", (1, 28, 28)), ("conv_vae", (1, 28, 28)), ("conv_vae", (3, 7, 9))]
)
def test_shapes_for_any_latent_size(name: str, shape: tuple[int, int, int]) -> None:
    for latent_dim in (1, 2, 9):
        model = create_model(name, shape, 3, latent_dim=latent_dim, width=0.25).eval()
        x = torch.randn(4, *shape)
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (4, latent_dim)
        torch.testing.assert_close(model.forward_features(x), mu)
        assert model.decode(mu).shape == model.reconstruct(x).shape == x.shape
        assert model.sample(5).shape == (5, *shape)
        assert model(x).shape == (4, 3)


def test_sample_is_reproducible_from_a_generator() -> None:
    model = create_model("conv_vae", (1, 12, 12), 2, latent_dim=2, likelihood="bernoulli").eval()
    a = model.sample(3, torch.Generator().manual_seed(1))
    b = model.sample(3, torch.Generator().manual_seed(1))
    c = model.sample(3, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert ((a > 0) & (a < 1)).all()  # Bernoulli means
    draws = model.sample(3, torch.Generator().manual_seed(1), mean=False)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    # A Gaussian decoder's draws are its means (the same z from the same seed) plus noise of its std.
    gaussian = create_model("vae", (1, 1, 2), 2, decoder_std=0.5).eval()
    means = gaussian.sample(10_000, torch.Generator().manual_seed(3))
    draws = gaussian.sample(10_000, torch.Generator().manual_seed(3), mean=False)
    assert (draws - means).std().item() == pytest.approx(0.5, rel=0.03)  # standard error about 0.5%


def test_reparameterised_draws_have_the_posterior_moments_and_carry_gradients() -> None:
    model = create_model("vae", (1, 1, 2), 2, latent_dim=2)
    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0)]], requires_grad=True)
    z = model.reparameterize(mu.expand(20_000, 2), logvar.expand(20_000, 2), torch.Generator().manual_seed(0))
    # Standard errors of the mean are 1/sqrt(20,000) = 0.007 and 0.014; of the std about half that.
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.05, rtol=0)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    torch.testing.assert_close(mu.grad, torch.tensor([[20_000.0, 20_000.0]]))  # dz/dmu = 1 for every draw


def test_decoder_scale_is_learned_fixed_or_absent() -> None:
    learned = create_model("vae", (1, 1, 2), 2)
    assert isinstance(learned.log_scale, nn.Parameter) and learned.log_scale.item() == 0.0
    fixed = create_model("vae", (1, 1, 2), 2, decoder_std=0.5)
    assert fixed.log_scale is None and fixed.decoder_log_scale() == pytest.approx(math.log(0.5))
    assert create_model("vae", (1, 1, 2), 2, likelihood="bernoulli").log_scale is None


@pytest.mark.parametrize("name", ["vae", "conv_vae"])
def test_objective_is_classification_plus_weighted_negative_elbo(name: str) -> None:
    model = create_model(name, (1, 10, 10), 3, latent_dim=4, width=0.25, beta=2.0, elbo_weight=0.5)
    assert model.default_objective == "elbo"
    x, y = torch.randn(6, 1, 10, 10), torch.randint(0, 3, (6,))

    torch.manual_seed(7)  # the same reparameterisation noise in both computations
    r = batch_loss(create_objective("elbo"), model, x, y)
    r.loss.backward()
    through_objective = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    torch.manual_seed(7)
    mu, logvar = model.encode(x)
    decoded = model.decode(model.reparameterize(mu, logvar))
    terms = elbo(x, decoded, mu, logvar, beta=2.0, likelihood="gaussian", log_scale=model.log_scale)
    ce = F.cross_entropy(model.head(mu), y)
    (ce + 0.5 * terms.loss).backward()
    torch.testing.assert_close(r.loss, (ce + 0.5 * terms.loss).detach())  # the logged loss is what is minimised
    torch.testing.assert_close(r.parts["kl"], terms.kl.detach())
    torch.testing.assert_close(r.parts["reconstruction"], terms.reconstruction.detach())
    torch.testing.assert_close(r.parts["cross_entropy"], ce.detach())
    for key, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, key  # log-variance layer and decoder scale included
        torch.testing.assert_close(through_objective[key], p.grad, msg=key)


def test_evaluation_loss_is_repeatable_and_leaves_the_random_stream_alone() -> None:
    model = create_model("vae", (1, 6, 6), 2, latent_dim=3).eval()
    x, y = torch.randn(5, 1, 6, 6), torch.tensor([0, 1, 0, 1, 1])
    objective = create_objective("elbo")
    torch.manual_seed(11)
    with torch.no_grad():
        a = batch_loss(objective, model, x, y)
        after = torch.rand(1)
        b = batch_loss(objective, model, x, y)
    torch.manual_seed(11)
    assert torch.equal(torch.rand(1), after)  # no draw from the global stream
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)
    assert a.parts.keys() == {"cross_entropy", "reconstruction", "kl"}
    # In training mode the draw is from the global stream: two calls differ.
    model.train()
    assert not torch.equal(batch_loss(objective, model, x, y).parts["reconstruction"],
                           batch_loss(objective, model, x, y).parts["reconstruction"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"beta": -1.0}, "beta must be >= 0"),
        ({"decoder_std": 0.0}, "decoder_std must be positive"),
        ({"elbo_weight": -0.1}, "elbo_weight must be >= 0"),
        ({"latent_dim": 0}, "latent_dim must be at least 1"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        create_model("vae", (1, 28, 28), 10, **options)


# ------------------------------------------------------------------------------------------------------------
# Posterior collapse


def test_posterior_collapse_by_hand() -> None:
    mu = torch.tensor([[1.0, 0.0, 0.1], [-1.0, 0.0, -0.1]])
    logvar = torch.zeros(2, 3)
    r = posterior_collapse(mu, logvar)
    # Per dimension, KL = mu^2 / 2 averaged over the two examples: 0.5, 0, 0.005 (below 0.01 nats).
    torch.testing.assert_close(r.kl_per_dim, torch.tensor([0.5, 0.0, 0.005], dtype=torch.float64))
    assert r.active.tolist() == [True, False, False] and r.num_active == 1 and not r.collapsed
    assert posterior_collapse(mu, logvar, threshold=0.001).num_active == 2
    assert posterior_collapse(torch.zeros(4, 2), torch.zeros(4, 2)).collapsed


def train_vae_on_xor(beta: float, steps: int = 300) -> VAE:
    torch.manual_seed(0)
    x, _ = xor_blobs(separation=3.0, spread=0.7).sample(20_000, seed=0)
    x = torch.tensor(x, dtype=torch.float32)  # (N, 1, 1, 2)
    model = create_model("vae", (1, 1, 2), 2, latent_dim=4, hidden=(32, 32), beta=beta)
    train_on_elbo(model, x, steps, batch=128)
    return model


def test_a_heavy_kl_weight_collapses_the_posterior_and_the_elbo_does_not() -> None:
    """On points of the plane a 4-d latent space has two dimensions more than the data need: trained on the ELBO
    (beta = 1) the VAE keeps some active, with beta = 5 every dimension's information costs more than it buys."""
    x, _ = xor_blobs(separation=3.0, spread=0.7).sample(2000, seed=1)
    x = torch.tensor(x, dtype=torch.float32)
    results = {}
    for beta in (1.0, 5.0):
        model = train_vae_on_xor(beta)
        with torch.no_grad():
            results[beta] = posterior_collapse(*model.encode(x))
    # Measured: beta = 1 gives KLs of about (0.24, 0.001, 0.001, 0.29) nats, beta = 5 below 1e-4 in every dimension.
    assert 1 <= results[1.0].num_active <= 3 and not results[1.0].collapsed
    assert results[5.0].collapsed and float(results[5.0].kl_per_dim.max()) < 0.01
