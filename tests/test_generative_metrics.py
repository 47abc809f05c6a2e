"""Generative metrics: the IWAE bound and the KL to a known density, Fréchet and sliced Wasserstein distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from scipy.special import logsumexp

from density_helpers import ExactDensity, train_on_elbo
from lineup import data
from lineup.analysis.generative import (
    KLEstimate,
    frechet_distance,
    frechet_distance_gaussians,
    iwae_log_likelihood,
    iwae_log_likelihoods,
    kl_to_true_density,
    sliced_wasserstein,
    wasserstein_1d,
)
from lineup.data.synthetic import GaussianMixture, xor_blobs
from lineup.models import create_model
from lineup.models.vae import VAE

pytestmark = pytest.mark.usefixtures("seeded_one_thread")  # seed 0, one torch thread (conftest.py)


# ------------------------------------------------------------------------------------------------------------
# IWAE and the KL to the true density

MIXTURE = xor_blobs(separation=3.0, spread=0.7)


def true_log_density(mixture: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """``log p(x) = log sum_y p(x, y)`` from the mixture's exact joint."""
    return logsumexp(mixture.log_joint(x), axis=1)


@pytest.fixture(scope="module")
def evaluation_points() -> tuple[torch.Tensor, np.ndarray]:
    x, _ = MIXTURE.sample(2000, seed=1)
    return torch.tensor(x, dtype=torch.float32), true_log_density(MIXTURE, x)


def train_vae(model: VAE, steps: int) -> None:
    x, _ = MIXTURE.sample(20_000, seed=0)  # (N, 1, 1, 2), a fresh sample independent of the evaluation's
    train_on_elbo(model, torch.tensor(x, dtype=torch.float32), steps, batch=256)


def kl_estimate(model: VAE, points: tuple[torch.Tensor, np.ndarray], k: int) -> KLEstimate:
    x, log_p = points
    bound = iwae_log_likelihood(model, x, k=k, generator=torch.Generator().manual_seed(0))
    return kl_to_true_density(log_p, bound.double().numpy(), k=k)


def test_kl_of_a_density_with_itself_is_zero() -> None:
    log_p = np.array([-1.0, -2.5, -0.3])
    r = kl_to_true_density(log_p, log_p, k=5)
    assert (r.value, r.standard_error, r.k, r.n) == (0.0, 0.0, 5, 3)
    # Differences 1, 2, 3: mean 2, sample std 1, standard error 1 / sqrt(3).
    r = kl_to_true_density(np.zeros(3), np.array([-1.0, -2.0, -3.0]))
    assert (r.value, r.standard_error) == (2.0, pytest.approx(1 / math.sqrt(3)))
    with pytest.raises(ValueError, match="finite"):
        kl_to_true_density(np.zeros(3), np.array([0.0, -np.inf, 0.0]))


def test_iwae_of_the_true_density_is_exact(evaluation_points: tuple[torch.Tensor, np.ndarray]) -> None:
    x = evaluation_points[0].double()
    log_p = true_log_density(MIXTURE, x.numpy())  # at the float32 points the model sees
    for k, chunk in [(1, 1), (7, 3), (50, 64)]:  # chunks that do and do not divide k
        bound = iwae_log_likelihood(ExactDensity(MIXTURE.log_density), x, k=k, chunk=chunk,
                                    generator=torch.Generator().manual_seed(0))
        np.testing.assert_allclose(bound.numpy(), log_p, rtol=0, atol=1e-10)
        assert abs(kl_to_true_density(log_p, bound.numpy(), k=k).value) < 1e-10


def test_bounds_at_several_k_are_read_off_prefixes_of_one_set_of_draws(
    evaluation_points: tuple[torch.Tensor, np.ndarray],
) -> None:
    """With one draw per chunk, the stream of draws is the same whatever the ``k``, so the bound at each ``k`` of
    ``iwae_log_likelihoods`` is exactly ``iwae_log_likelihood`` at that ``k`` alone: the first ``k`` draws."""
    model = create_model("vae", (1, 1, 2), 2, latent_dim=2, hidden=(16, 16))
    x = evaluation_points[0][:200]
    bounds = iwae_log_likelihoods(model, x, ks=(30, 1, 7), chunk=1, generator=torch.Generator().manual_seed(5))
    assert sorted(bounds) == [1, 7, 30]
    for k, bound in bounds.items():
        alone = iwae_log_likelihood(model, x, k=k, chunk=1, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(bound, alone, rtol=0, atol=0)
    # Chunks end at every k, so with chunks of 8 the bound at k = 7 is still the first 7 draws of its own stream.
    at_7 = iwae_log_likelihoods(model, x, ks=(7, 30), chunk=8, generator=torch.Generator().manual_seed(6))[7]
    alone = iwae_log_likelihood(model, x, k=7, chunk=8, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(at_7, alone, rtol=0, atol=0)
    # Larger chunks give other draws but the same bound in distribution: the k = 30 means agree within noise.
    chunked = iwae_log_likelihoods(model, x, ks=(1, 7, 30), chunk=8, generator=torch.Generator().manual_seed(6))[30]
    d = (chunked - bounds[30]).double().numpy()
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d))
    with pytest.raises(ValueError, match="positive"):
        iwae_log_likelihoods(model, x, ks=(0, 10))


def test_iwae_with_one_sample_is_the_elbo_in_expectation(evaluation_points: tuple[torch.Tensor, np.ndarray]) -> None:
    model = create_model("vae", (1, 1, 2), 2, latent_dim=2, hidden=(32, 32))
    train_vae(model, 100)
    x, _ = evaluation_points
    model.train()
    l1 = iwae_log_likelihood(model, x, k=1, generator=torch.Generator().manual_seed(3))
    assert model.training  # its mode is restored
    with torch.no_grad():
        negative_elbo = model.eval().negative_elbo(x, torch.Generator().manual_seed(4))
    # E[log p(x|z) + log p(z) - log q(z|x)] = E[log p(x|z)] - KL: the same mean, estimated with independent draws.
    d = (l1 + negative_elbo).double().numpy()
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d))


def test_kl_to_the_true_density_falls_with_training_and_with_more_importance_samples(
    evaluation_points: tuple[torch.Tensor, np.ndarray],
) -> None:
    """A dense VAE with a Gaussian decoder, trained for 300 steps on XOR blobs (four Gaussians of the plane)."""
    model = create_model("vae", (1, 1, 2), 2, latent_dim=2, hidden=(32, 32))
    before = kl_estimate(model, evaluation_points, k=10)
    train_vae(model, 300)
    after = {k: kl_estimate(model, evaluation_points, k=k) for k in (1, 5, 50)}
    # Measured: 1.13 nats before; after, 0.373, 0.355 and 0.355 for k = 1, 5, 50 (standard errors about 0.016).
    assert after[50].value < 0.6 * before.value
    for r in (before, *after.values()):
        assert np.isfinite(r.value) and r.value > -3 * r.standard_error  # an upper bound on a KL, so not below 0
    # The same points and the same draws for every k: the bound tightens (weakly, within the noise of the draws).
    assert after[1].value >= after[5].value - 0.005 and after[5].value >= after[50].value - 0.005
    assert after[1].value > after[50].value


# ------------------------------------------------------------------------------------------------------------
# Fréchet distance


def test_frechet_distance_of_gaussians_in_closed_form() -> None:
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2 = 2^2 + (2 - 1)^2
    assert frechet_distance_gaussians(np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[1.0]])) == (
        pytest.approx(5.0)
    )
    # Commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2 = 3 + (1 + 0 + 4)
    fd = frechet_distance_gaussians(np.zeros(3), np.diag([1.0, 4.0, 9.0]), np.ones(3), np.diag([4.0, 4.0, 1.0]))
    assert fd == pytest.approx(8.0)


def test_frechet_distance_of_gaussians_matches_scipy_sqrtm_for_non_commuting_covariances() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    root = scipy.linalg.sqrtm(cov1 @ cov2)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * np.real(root))
    assert frechet_distance_gaussians(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_gaussians(mu1, cov1, mu1, cov1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_samples_approaches_that_of_their_gaussians() -> None:
    rng = np.random.default_rng(0)
    cov1 = np.array([[2.0, 0.5], [0.5, 1.0]])
    cov2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    a = rng.multivariate_normal([0.0, 0.0], cov1, size=100_000)
    b = rng.multivariate_normal([1.0, 0.0], cov2, size=80_000)
    expected = frechet_distance_gaussians(np.zeros(2), cov1, np.array([1.0, 0.0]), cov2)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=0.03)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1] (lineup's fixed split): 1,438 training and 359 test images."""
    bundle = data.load("digits", val_fraction=0.0)
    return bundle.train.x.numpy() / 255.0, bundle.test.x.numpy() / 255.0


NOISE = (0.05, 0.1, 0.2, 0.4)


def noisy(x: np.ndarray, std: float) -> np.ndarray:
    """``x`` plus ``std`` times one fixed draw of noise, so the noise levels differ only in scale."""
    return x + std * np.random.default_rng(0).standard_normal(x.shape)


def test_frechet_distance_on_digits_is_zero_for_the_same_images_and_grows_with_noise(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    """Two fixed feature maps stand in for the trained classifier a study would use: a PCA of the training
    images and a randomly initialised (seeded) convolutional encoder."""
    train, test = digits
    mean, components = train.reshape(len(train), -1).mean(0), np.linalg.svd(
        train.reshape(len(train), -1) - train.reshape(len(train), -1).mean(0), full_matrices=False
    )[2][:16]

    def pca(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) - mean) @ components.T  # (N, 16)

    torch.manual_seed(0)
    cnn = create_model("conv_autoencoder", (1, 8, 8), 10, latent_dim=32).eval()

    def random_cnn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return cnn.forward_features(torch.tensor(x, dtype=torch.float32)).double().numpy()

    for features in (pca, random_cnn):
        clean = features(test)
        assert frechet_distance(clean, clean) < 1e-8
        distances = [frechet_distance(clean, features(noisy(test, s))) for s in NOISE]
        assert distances[0] > 1e-6 and all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


# ------------------------------------------------------------------------------------------------------------
# Wasserstein distances


def test_one_dimensional_wasserstein_matches_scipy_for_unequal_sizes() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=37), rng.exponential(size=53)
    assert float(wasserstein_1d(a, b, p=1)) == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-12)
    # Columns are independent problems.
    both = wasserstein_1d(np.stack([a[:30], a[:30] + 1], axis=1), np.stack([b[:20], b[:20]], axis=1), p=1)
    assert both[0] == pytest.approx(scipy.stats.wasserstein_distance(a[:30], b[:20]), rel=1e-12)
    assert both[1] == pytest.approx(scipy.stats.wasserstein_distance(a[:30] + 1, b[:20]), rel=1e-12)
    # A sample and the same sample twice over are the same distribution (the unequal-size path).
    assert float(wasserstein_1d(a, np.concatenate([a, a]), p=2)) == pytest.approx(0.0, abs=1e-12)


def test_two_wasserstein_between_gaussians_in_closed_form() -> None:
    # W2(N(m1, s1^2), N(m2, s2^2))^2 = (m1 - m2)^2 + (s1 - s2)^2 = 1.5^2 + 1^2
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 2.0, size=100_000)
    b = rng.normal(-1.0, 1.0, size=80_000)
    assert float(wasserstein_1d(a, b, p=2)) == pytest.approx(math.sqrt(1.5**2 + 1.0), abs=0.02)


def test_sliced_wasserstein_of_a_shifted_sample_in_closed_form() -> None:
    # Shifting every point by delta shifts each projection by theta.delta exactly, so
    # SW2^2 = E[(theta.delta)^2] = |delta|^2 / D over directions uniform on the sphere.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 64))
    delta = np.full(64, 0.5)  # |delta| = 4, D = 64: SW2 = 4 / 8 = 0.5
    assert sliced_wasserstein(a, a + delta, n_projections=4000, rng=0) == pytest.approx(0.5, rel=0.05)


def test_sliced_wasserstein_on_digits_is_zero_for_the_same_images_and_grows_with_noise(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    train, test = digits
    assert sliced_wasserstein(test, test, rng=0) == 0.0
    distances = [sliced_wasserstein(test, noisy(test, s), rng=0) for s in NOISE]
    assert distances[0] > 0 and all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances
    # Two samples of one distribution (training and test digits, unequal sizes) differ by their sampling noise
    # only: less than the test images and their noisy copies at the larger noise levels.
    assert 0 < sliced_wasserstein(train, test, rng=0) < distances[2]
