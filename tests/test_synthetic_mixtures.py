"""Gaussian mixtures with known answers: closed-form Bayes risks, quadrature against them and against
Monte-Carlo, posteriors against scipy's densities, seeded sampling, and distortions whose effect theory gives.

Monte-Carlo checks compare the error of the Bayes classifier on ``n`` fresh draws with ``R*``: the error count is
binomial, so its standard error is ``sqrt(R* (1 - R*) / n)`` and a correct ``R*`` lies within 3 standard errors
in all but 0.27% of seeds (the seeds are fixed, so a test either always passes or always fails).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from lineup.data.synthetic import (
    GaussianMixture,
    LabelNoise,
    bayes_risk_quadrature,
    decision_grid,
    rings,
    two_gaussian_bayes_risk,
    two_gaussians,
    xor_blobs,
)


def phi(z: float) -> float:
    """The standard normal CDF from math.erfc, independent of the scipy routines the code uses."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def monte_carlo_error(dist: object, n: int, seed: int, chunk: int = 1_000_000) -> tuple[float, float]:
    """Error of the Bayes classifier on ``n`` fresh draws, in chunks, and its binomial standard error."""
    wrong = 0
    for start in range(0, n, chunk):
        x, y = dist.sample(min(chunk, n - start), seed=(seed, start))  # type: ignore[attr-defined]
        wrong += int((dist.bayes_predict(x) != y).sum())  # type: ignore[attr-defined]
    r = wrong / n
    return r, math.sqrt(r * (1 - r) / n)


@pytest.mark.parametrize("mu", [(0.5, 0.0), (0.6, 0.8), (-1.2, 1.6), (0.05, 0.0)])
def test_symmetric_gaussians_have_risk_phi_of_minus_norm_mu(mu: tuple[float, float]) -> None:
    # N(-mu, I) against N(mu, I), equal priors: delta = 2 |mu|, R* = Phi(-|mu|).
    m = np.array(mu)
    g = GaussianMixture([0.5, 0.5], [0, 1], [1, 1], [-m, m], [np.eye(2), np.eye(2)])
    r = g.bayes_risk()
    assert r.method == "closed-form"
    assert r.value == pytest.approx(phi(-float(np.linalg.norm(m))), abs=1e-6)


def test_unequal_priors_closed_form() -> None:
    # delta = 2, priors 0.8 / 0.2, log(pi_0 / pi_1) = log 4 = 1.386294:
    # R* = 0.8 Phi(-1 - 1.386294 / 2) + 0.2 Phi(-1 + 1.386294 / 2) = 0.8 * 0.045214 + 0.2 * 0.379478 = 0.112067
    expected = 0.8 * phi(-1 - math.log(4) / 2) + 0.2 * phi(-1 + math.log(4) / 2)
    assert expected == pytest.approx(0.112067, abs=1e-6)
    assert two_gaussian_bayes_risk(2.0, (0.8, 0.2)) == pytest.approx(expected, abs=1e-12)
    g = two_gaussians(2.0, priors=[0.8, 0.2])
    assert g.bayes_risk().value == pytest.approx(expected, abs=1e-12)
    # The rule favours the likelier class, so the risk is below the equal-prior Phi(-1) = 0.158655 ...
    assert expected < phi(-1)
    # ... and the closed form is symmetric in swapping the classes.
    assert two_gaussian_bayes_risk(2.0, (0.2, 0.8)) == pytest.approx(expected, abs=1e-15)
    assert two_gaussian_bayes_risk(0.0, (0.7, 0.3)) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "dist",
    [
        two_gaussians(2.0),
        two_gaussians(2.0, priors=[0.8, 0.2]),
        two_gaussians(1.0, covariance=[[2.0, 0.5], [0.5, 1.0]]),
    ],
    ids=["equal-priors", "unequal-priors", "correlated"],
)
def test_quadrature_agrees_with_the_closed_form_within_its_bound(dist: GaussianMixture) -> None:
    exact = dist.bayes_risk()
    quad = bayes_risk_quadrature(dist)
    assert quad.method == "quadrature" and quad.error_bound is not None
    assert quad.error_bound < 1e-6  # the bound says something ...
    assert abs(quad.value - exact.value) <= quad.error_bound  # ... and holds


def test_quadrature_on_a_quadratic_boundary_in_one_dimension() -> None:
    # N(0, 1) against N(0, 4), equal priors: phi(x) = phi(x / 2) / 2 at x0^2 = 8 log(2) / 3, x0 = 1.359556.
    # Class 0 is wrong outside +/- x0, class 1 inside: R* = 0.5 * 2 Phi(-x0) + 0.5 (2 Phi(x0 / 2) - 1)
    # = 0.086985 + 0.751677 - 0.5 = 0.338663.
    x0 = math.sqrt(8 * math.log(2) / 3)
    expected = phi(-x0) + phi(x0 / 2) - 0.5
    assert expected == pytest.approx(0.338663, abs=1e-6)
    g = GaussianMixture([0.5, 0.5], [0, 1], [1, 1], [[0.0], [0.0]], [[1.0], [4.0]])
    r = g.bayes_risk()
    assert r.method == "quadrature"
    assert abs(r.value - expected) <= r.error_bound


def test_shared_covariance_reduces_to_the_closed_form_in_any_dimension() -> None:
    # Sigma = diag(1, 4, 9), mu_1 - mu_0 = (1, 2, 3): delta^2 = 1 + 4/4 + 9/9 = 3, R* = Phi(-sqrt(3) / 2) = 0.193238.
    cov = np.diag([1.0, 4.0, 9.0])
    g = GaussianMixture([0.5, 0.5], [0, 1], [1, 1], [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], [cov, cov])
    assert g.bayes_risk().method == "closed-form"
    assert g.bayes_risk().value == pytest.approx(phi(-math.sqrt(3) / 2), abs=1e-12)
    assert g.bayes_risk().value == pytest.approx(0.193238, abs=1e-6)


def test_xor_with_unequal_weights_agrees_with_monte_carlo() -> None:
    # 10,000,000 draws: standard error sqrt(0.107 * 0.893 / 1e7) = 9.8e-5, so the check resolves R* to 2.9e-4.
    # Any misweighting (priors ignored, weights not normalised per class) moves R* by more than 1e-2, 30 times
    # that.
    g = xor_blobs(separation=3.0, spread=1.0, weights=(0.8, 0.2), priors=[0.6, 0.4])
    r = g.bayes_risk()
    assert r.method == "quadrature" and r.error_bound < 1e-6
    empirical, se = monte_carlo_error(g, 10_000_000, seed=11)
    assert abs(empirical - r.value) <= 3 * se
    # Not an accident of symmetry: equal weights and priors give a different risk.
    assert abs(xor_blobs(3.0, 1.0).bayes_risk().value - r.value) > 0.01


def test_three_classes_with_full_covariances_agree_with_monte_carlo() -> None:
    cov = [[[1.0, 0.6], [0.6, 1.0]], [[0.5, -0.2], [-0.2, 1.5]], [[2.0, 0.0], [0.0, 0.3]], [[1.0, 0.0], [0.0, 1.0]]]
    g = GaussianMixture([0.5, 0.3, 0.2], [0, 1, 2, 0], [2.0, 1.0, 1.0, 1.0],
                        [[0.0, 0.0], [1.5, 0.5], [-1.0, 1.5], [2.0, -2.0]], cov)
    r = g.bayes_risk()
    assert r.method == "quadrature"
    empirical, se = monte_carlo_error(g, 1_000_000, seed=12)  # se = 4.9e-4 at R* = 0.37
    assert abs(empirical - r.value) <= 3 * se


def test_posterior_matches_scipy_densities_and_sums_to_one() -> None:
    g = GaussianMixture([0.3, 0.7], [0, 1, 1], [1.0, 3.0, 1.0], [[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]],
                        [np.eye(2), [[2.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.4]]])
    x = np.random.default_rng(0).normal(size=(50, 2)) * 2
    p0 = 0.3 * multivariate_normal([0, 0], np.eye(2)).pdf(x)
    p1 = 0.7 * (0.75 * multivariate_normal([1, 1], [[2.0, 0.3], [0.3, 0.5]]).pdf(x)
                + 0.25 * multivariate_normal([-2, 0.5], 0.4 * np.eye(2)).pdf(x))
    expected = np.stack([p0, p1], axis=1) / (p0 + p1)[:, None]
    np.testing.assert_allclose(g.posterior(x), expected, rtol=1e-10)
    np.testing.assert_array_equal(g.bayes_predict(x), expected.argmax(axis=1))
    # Far from every mean each density underflows to 0; log-sum-exp keeps the posterior a distribution.
    far = g.posterior(np.array([[1e3, -1e3], [-5e2, 4e2]]))
    assert np.isfinite(far).all()
    np.testing.assert_allclose(far.sum(axis=1), 1.0)
    # Inputs may come as the (N, 1, 1, 2) tensors of a split.
    np.testing.assert_allclose(g.posterior(x.reshape(50, 1, 1, 2)), g.posterior(x))


def test_sampling_is_seeded_and_prefix_consistent() -> None:
    g = rings(num_classes=3)
    x1, y1 = g.sample(20_000, seed=5)
    x2, y2 = g.sample(20_000, seed=5)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x3, y3 = g.sample(100, seed=5)  # a smaller sample is the start of the larger one
    np.testing.assert_array_equal(x3, x1[:100])
    np.testing.assert_array_equal(y3, y1[:100])
    x4, _ = g.sample(100, seed=6)
    assert not np.array_equal(x4, x3)
    assert x1.shape == (20_000, 1, 1, 2) and y1.dtype == np.int64


def test_sampling_draws_the_declared_covariance_and_priors() -> None:
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    g = two_gaussians(1.0, covariance=cov, priors=[0.7, 0.3])
    x, y = g.sample(200_000, seed=1)
    x = x.reshape(-1, 2)
    assert (y == 0).mean() == pytest.approx(0.7, abs=0.005)  # se 0.001
    # Means at -/+ (1/2) L e_1 = -/+ (0.707107, 0.176777); sample covariance entries have se < 0.01.
    np.testing.assert_allclose(x[y == 0].mean(axis=0), [-0.707107, -0.176777], atol=0.015)
    np.testing.assert_allclose(np.cov(x[y == 0].T), cov, atol=0.03)


def test_distortions_recompute_the_risk_exactly() -> None:
    g = two_gaussians(2.0)  # means (-1, 0) and (1, 0), identity covariance
    # Input noise of std 1: covariance 2I, delta = 2 / sqrt(2), R* = Phi(-sqrt(2) / 2) = 0.239750.
    assert g.with_input_noise(1.0).bayes_risk().value == pytest.approx(phi(-math.sqrt(2) / 2), abs=1e-12)
    assert phi(-math.sqrt(2) / 2) == pytest.approx(0.239750, abs=1e-6)
    # Means halved: delta = 1, R* = Phi(-1/2) = 0.308538.
    assert g.with_mean_scale(0.5).bayes_risk().value == pytest.approx(0.308538, abs=1e-6)
    # Imbalance: the unequal-prior closed form.
    assert g.with_priors([0.9, 0.1]).bayes_risk().value == pytest.approx(
        0.9 * phi(-1 - math.log(9) / 2) + 0.1 * phi(-1 + math.log(9) / 2), abs=1e-12)


def test_select_classes_conditions_and_relabels() -> None:
    g = rings(num_classes=3, blobs=4).select_classes([2, 0])
    assert g.class_names == ["2", "0"] and g.num_classes == 2
    np.testing.assert_allclose(g.priors, [0.5, 0.5])
    assert (g.labels == 0).sum() == 8 and (g.labels == 1).sum() == 1  # ring 2 has 2 * 4 blobs; the centre one
    x, y = g.sample(5000, seed=0)
    radius = np.linalg.norm(x.reshape(-1, 2), axis=1)
    assert radius[y == 0].mean() > 3.0 > radius[y == 1].mean()  # ring of radius 4, centre blob of std 0.5


def test_label_noise_moves_the_risk_as_theory_says_two_classes() -> None:
    # R~* = eta + (1 - 2 eta) R*: 0.2 + 0.6 * Phi(-1) = 0.2 + 0.6 * 0.158655 = 0.295193.
    clean = two_gaussians(2.0)
    noisy = LabelNoise(clean, 0.2)
    assert noisy.bayes_risk().value == pytest.approx(0.2 + 0.6 * phi(-1), abs=1e-12)
    assert noisy.bayes_risk().value == pytest.approx(0.295193, abs=1e-6)
    empirical, se = monte_carlo_error(noisy, 1_000_000, seed=3)  # se = 4.6e-4
    assert abs(empirical - noisy.bayes_risk().value) <= 3 * se
    x = np.random.default_rng(0).normal(size=(100, 2))
    post = noisy.posterior(x)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    np.testing.assert_allclose(post, 0.2 + 0.6 * clean.posterior(x))  # a + b p with a = 0.2, b = 1 - 2 * 0.2


def test_label_noise_three_classes_flips_uniformly_and_matches_monte_carlo() -> None:
    clean = rings(num_classes=3, blobs=4, spread=0.8)
    eta = 0.3
    noisy = LabelNoise(clean, eta)
    r_clean = clean.bayes_risk().value
    # K = 3: R~* = eta + (1 - eta * 3/2) R* = 0.3 + 0.55 R*.
    assert noisy.bayes_risk().value == pytest.approx(0.3 + 0.55 * r_clean, abs=1e-12)
    x_clean, y_clean = clean.sample(300_000, seed=4)
    x_noisy, y_noisy = noisy.sample(300_000, seed=4)
    np.testing.assert_array_equal(x_noisy, x_clean)  # same inputs, only labels flipped
    flipped = y_noisy != y_clean
    assert flipped.mean() == pytest.approx(eta, abs=0.003)  # se 8e-4
    # Flipped labels of class 0 go to 1 and 2 equally often.
    to = y_noisy[flipped & (y_clean == 0)]
    assert (to == 1).mean() == pytest.approx(0.5, abs=0.01)
    empirical, se = monte_carlo_error(noisy, 1_000_000, seed=6)
    assert abs(empirical - noisy.bayes_risk().value) <= 3 * se
    # At the maximum rate (K-1)/K the labels carry nothing: R~* = 2/3.
    assert LabelNoise(clean, 2 / 3).bayes_risk().value == pytest.approx(2 / 3, abs=1e-12)
    with pytest.raises(ValueError, match="label noise rate"):
        LabelNoise(clean, 0.7)


def test_decision_grid_of_two_gaussians() -> None:
    g = two_gaussians(2.0)  # boundary: the vertical axis
    grid = decision_grid(g, (-3.0, 3.0, -2.0, 2.0), n=60)
    assert grid.predict.shape == (60, 60) and grid.posterior.shape == (60, 60, 2)
    np.testing.assert_array_equal(grid.predict, np.broadcast_to((grid.x > 0).astype(int), (60, 60)))
    np.testing.assert_allclose(grid.posterior.sum(axis=2), 1.0)
    # p(1 | x) = sigmoid(2 x_1) for means -/+ (1, 0): at x_1 = 0.05, sigmoid(0.1) = 0.524979.
    assert grid.posterior[0, 30, 1] == pytest.approx(1 / (1 + math.exp(-0.1)), abs=1e-12)
    assert grid.x[30] == pytest.approx(0.05)


def test_bad_parameters_fail_early() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture([0.5, 0.6], [0, 1], [1, 1], [[0, 0], [1, 1]], [np.eye(2)] * 2)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([0.5, 0.5], [0, 1], [1, 1], [[0, 0], [1, 1]], [np.eye(2), [[1, 2], [2, 1]]])
    with pytest.raises(ValueError, match="every class"):
        GaussianMixture([0.5, 0.5], [0, 0], [1, 1], [[0, 0], [1, 1]], [np.eye(2)] * 2)
