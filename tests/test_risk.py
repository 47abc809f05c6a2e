"""Error decomposition, learning curves, KL divergence and ECE on hand-worked examples, with the arithmetic in
comments, and cross-checked against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lineup.analysis.risk import (
    approximation_error,
    calibration_bins,
    error_decomposition,
    estimation_error,
    expected_calibration_error,
    fit_power_law,
    learning_curve,
    mean_interval,
    mean_kl_divergence,
)
from lineup.data.synthetic import BayesRisk

T2 = 4.302652729749462  # Student t quantile t_2(0.975); tables give 4.3027
T4 = 2.7764451051977934  # t_4(0.975); tables give 2.7764


def test_t_interval_of_three_seeds() -> None:
    r = mean_interval([0.10, 0.12, 0.14])  # mean 0.12, s = 0.02
    assert r.mean == pytest.approx(0.12)
    assert r.half_width == pytest.approx(T2 * 0.02 / math.sqrt(3), rel=1e-9)  # 0.049683
    assert r.half_width == pytest.approx(0.049683, abs=1e-6)
    single = mean_interval([0.3])
    assert single.low is None and single.high is None and single.n == 1
    assert mean_interval([0.1, 0.2], confidence=0.99).half_width > mean_interval([0.1, 0.2]).half_width


def test_paired_and_unpaired_estimation_error() -> None:
    h, c = [0.20, 0.22, 0.24], [0.15, 0.16, 0.17]
    paired = estimation_error(h, c)  # differences 0.05, 0.06, 0.07: mean 0.06, s = 0.01
    assert paired.mean == pytest.approx(0.06)
    half = T2 * 0.01 / math.sqrt(3)  # 0.024841
    assert (paired.low, paired.high) == pytest.approx((0.06 - half, 0.06 + half))
    # Welch: s_h^2 / 3 = 0.0004 / 3, s_c^2 / 3 = 0.0001 / 3, se^2 = 0.0005 / 3 = 1.6667e-4;
    # df = (5/3e-4)^2 / ((4/3e-4)^2 / 2 + (1/3e-4)^2 / 2) = 25 / (16/2 + 1/2) = 2.941176.
    welch = estimation_error(h, c, paired=False)
    from scipy import stats

    welch_half = stats.t.ppf(0.975, 25 / 8.5) * math.sqrt(0.0005 / 3)
    assert welch.mean == pytest.approx(0.06)
    assert welch.high - welch.mean == pytest.approx(welch_half, rel=1e-9)
    assert welch.high - welch.mean > paired.high - paired.mean  # pairing removes the shared seed effect here
    # Different numbers of seeds cannot be paired.
    assert estimation_error([0.2, 0.22], [0.15, 0.16, 0.17]).mean == pytest.approx(0.21 - 0.16)


def test_approximation_error_widened_by_what_else_is_uncertain() -> None:
    c = [0.17, 0.18, 0.19]  # mean 0.18, s = 0.01
    plain = approximation_error(c, 0.15)
    assert plain.mean == pytest.approx(0.03)
    assert plain.half_width == pytest.approx(T2 * 0.01 / math.sqrt(3))
    # A common test set of 10,000 examples adds 0.18 * 0.82 / 10,000 = 1.476e-5 to the variance of the mean.
    tested = approximation_error(c, 0.15, test_size=10_000)
    assert tested.half_width == pytest.approx(T2 * math.sqrt(0.0001 / 3 + 0.18 * 0.82 / 10_000))
    # A quadrature bound adds to the half-width; a Monte-Carlo standard error to the variance.
    bounded = approximation_error(c, BayesRisk(0.15, 1e-3, None, "quadrature"))
    assert bounded.half_width == pytest.approx(plain.half_width + 1e-3)
    sampled = approximation_error(c, BayesRisk(0.15, None, 0.002, "monte-carlo"))
    assert sampled.half_width == pytest.approx(T2 * math.sqrt(0.0001 / 3 + 0.002**2))


def test_error_decomposition_adds_up() -> None:
    rng = np.random.default_rng(0)
    h = 0.25 + 0.01 * rng.standard_normal(5)
    c = 0.18 + 0.01 * rng.standard_normal(5)
    d = error_decomposition(h, c, 0.15)
    assert d.excess.mean == pytest.approx(d.estimation.mean + d.approximation.mean, abs=1e-15)
    assert d.risk.mean == pytest.approx(h.mean()) and d.bayes_risk == 0.15
    assert d.approximation.half_width == pytest.approx(T4 * c.std(ddof=1) / math.sqrt(5))
    with pytest.raises(ValueError, match="finite"):
        error_decomposition([0.2, float("nan")], [0.1, 0.1], 0.05)


def test_learning_curve_groups_by_size() -> None:
    c = learning_curve([100, 10, 100, 10, 1000], [0.2, 0.4, 0.3, 0.5, 0.15], bayes_risk=0.1)
    assert c.sizes.tolist() == [10, 100, 1000] and c.seeds.tolist() == [2, 2, 1]
    np.testing.assert_allclose(c.mean, [0.45, 0.25, 0.15])
    np.testing.assert_allclose(c.excess, [0.35, 0.15, 0.05])
    # Two seeds 0.1 apart: s = 0.070711, half-width t_1(0.975) s / sqrt(2) = 12.7062 * 0.05 = 0.635310.
    assert c.high[0] - c.mean[0] == pytest.approx(12.706204736 * 0.05, rel=1e-6)
    assert math.isnan(c.low[2])


def test_power_law_fit_recovers_the_exponent() -> None:
    n = np.array([50, 100, 200, 400, 800])
    a, b = fit_power_law(n, 3.0 * n**-0.7)
    assert (a, b) == pytest.approx((3.0, 0.7))
    a, b = fit_power_law([100, 400, 1600, 6400], [0.2, 0.1, 0.05, -0.01])  # the last is within noise of R*
    assert (a, b) == pytest.approx((2.0, 0.5))
    with pytest.raises(ValueError, match="two or more"):
        fit_power_law([10, 20], [0.1, 0.0])


def test_kl_on_a_hand_worked_example() -> None:
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    q = np.array([[0.25, 0.75], [0.5, 0.5]])
    # Row 1: 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) = 0.5 log(4/3) = 0.143841. Row 2: log 2 = 0.693147
    # (the 0 log 0 term is 0). Mean: 0.418494.
    assert mean_kl_divergence(p, q) == pytest.approx((0.5 * math.log(4 / 3) + math.log(2)) / 2, rel=1e-9)
    assert mean_kl_divergence(p, q) == pytest.approx(0.418494, abs=1e-6)
    assert mean_kl_divergence(q, q) == pytest.approx(0.0, abs=1e-15)
    # A model certain of the wrong class: -log(eps) instead of infinity; eps = 0 gives infinity.
    certain = np.array([[0.0, 1.0]])
    assert mean_kl_divergence(np.array([[1.0, 0.0]]), certain) == pytest.approx(-math.log(1e-12), rel=1e-9)
    with np.errstate(divide="ignore"):
        assert mean_kl_divergence(np.array([[1.0, 0.0]]), certain, eps=0.0) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        mean_kl_divergence(p, q[:1])


def test_kl_between_bernoullis_matches_the_closed_form_and_is_not_symmetric() -> None:
    # KL(Ber(0.9) || Ber(0.6)) = 0.9 log(0.9/0.6) + 0.1 log(0.1/0.4) = 0.364919 - 0.138629 = 0.226289;
    # the other way round, 0.6 log(0.6/0.9) + 0.4 log(0.4/0.1) = -0.243279 + 0.554518 = 0.311239.
    p, q = np.array([[0.1, 0.9]]), np.array([[0.4, 0.6]])
    assert mean_kl_divergence(p, q) == pytest.approx(0.226289, abs=1e-6)
    assert mean_kl_divergence(q, p) == pytest.approx(0.311239, abs=1e-6)


def test_ece_on_a_hand_worked_example() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])  # confidences 0.9 0.8 0.6 0.7: R R W W
    # 5 bins: (0.4, 0.6] {0.6 W}: 1/4 |0 - 0.6| = 0.15; (0.6, 0.8] {0.8 R, 0.7 W}: 2/4 |0.5 - 0.75| = 0.125;
    # (0.8, 1] {0.9 R}: 1/4 |1 - 0.9| = 0.025. ECE = 0.3.
    assert expected_calibration_error(y, p, n_bins=5) == pytest.approx(0.3, abs=1e-12)
    # 2 bins: all four in (0.5, 1]: accuracy 0.5, confidence 0.75, ECE = 0.25.
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.25, abs=1e-12)
    bins = calibration_bins(y, p, n_bins=5)
    assert bins.count.tolist() == [0, 0, 1, 2, 1]  # 0.6 and 0.8 sit on edges: right-closed bins
    # Calibrated: confidence 0.75 and three of four right.
    calibrated = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(np.array([0, 0, 0, 1]), calibrated) == pytest.approx(0.0, abs=1e-12)


def test_ece_agrees_with_a_direct_loop() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 4)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, 500)
    conf, pred = proba.max(axis=1), proba.argmax(axis=1)
    ece = 0.0
    for lo, hi in zip(np.arange(10) / 10, np.arange(1, 11) / 10, strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    assert expected_calibration_error(y, proba, n_bins=10) == pytest.approx(ece, abs=1e-12)
