"""Seed statistics and paired tests, checked against scipy, statsmodels and deepsig on fixed inputs."""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from lineup.analysis import stats
from lineup.analysis.stats import (
    aso,
    compare_models,
    holm,
    mcnemar_test,
    mean_ci,
    paired_bootstrap_diff,
    rank_models,
    repeated_holdout_ci,
    winner,
)


def _pair(a_only: int, b_only: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness arrays of two classifiers with the given 2x2 table, in a shuffled order."""
    a = np.array([1] * a_only + [0] * b_only + [1] * both + [0] * neither, dtype=bool)
    b = np.array([0] * a_only + [1] * b_only + [1] * both + [0] * neither, dtype=bool)
    perm = np.random.default_rng(a_only * 1000 + b_only).permutation(a.size)
    return a[perm], b[perm]


# -- mean over seeds with a bootstrap interval ---------------------------------------------------------------------

def test_mean_ci_of_two_seeds_is_their_range() -> None:
    # Resampled means of [0, 1] are 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5% quantiles
    # of 10,000 of them are 0 and 1.
    r = mean_ci([0.0, 1.0])
    assert (r.mean, r.low, r.high, r.n) == (0.5, 0.0, 1.0, 2)


def test_mean_ci_agrees_with_scipy_percentile_bootstrap() -> None:
    values = np.array([0.912, 0.905, 0.921, 0.899, 0.917, 0.908, 0.913, 0.902])
    ours = mean_ci(values, n_resamples=20_000, seed=1)
    ref = st.bootstrap((values,), np.mean, method="percentile", n_resamples=20_000, rng=np.random.default_rng(2))
    # Different random draws: the quantiles agree up to Monte-Carlo error (~1e-4 here), not exactly.
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=6e-4)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=6e-4)
    assert ours.low < values.mean() < ours.high


def test_mean_ci_is_seeded_and_shrinks_with_more_seeds() -> None:
    seeds4 = np.array([0.90, 0.91, 0.93, 0.94])
    few, many = mean_ci(seeds4), mean_ci(np.tile(seeds4, 16))
    # The same spread over 16 times as many seeds: the width shrinks like 1/sqrt(n), by a factor of about 4.
    assert few.low is not None and few.high is not None and many.low is not None and many.high is not None
    assert 3.0 < (few.high - few.low) / (many.high - many.low) < 5.0
    assert few.mean == pytest.approx(0.92) and many.mean == pytest.approx(0.92)
    draws = np.random.default_rng(0).normal(0.9, 0.01, size=30)  # enough distinct resampled means to differ
    assert mean_ci(draws, seed=3) == mean_ci(draws, seed=3)
    assert mean_ci(draws, seed=3) != mean_ci(draws, seed=4)


def test_one_seed_has_no_interval() -> None:
    r = mean_ci([0.93])
    assert r.mean == 0.93 and r.n == 1 and r.low is None and r.high is None and not r.has_ci
    with pytest.raises(ValueError, match="finite"):
        mean_ci([0.9, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])


# -- McNemar ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("a_only", "b_only"), [(5, 0), (0, 7), (12, 20), (30, 30), (1, 0), (40, 17), (3, 4)])
def test_mcnemar_matches_scipy_and_statsmodels(a_only: int, b_only: int) -> None:
    a, b = _pair(a_only, b_only, both=50, neither=9)
    r = mcnemar_test(a, b)
    assert (r.a_only, r.b_only) == (a_only, b_only)
    assert r.pvalue == pytest.approx(st.binomtest(a_only, a_only + b_only, 0.5).pvalue, rel=1e-12)
    table = [[50, a_only], [b_only, 9]]  # rows: A right / wrong, columns: B right / wrong
    assert r.pvalue == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    a = np.array([1, 0, 1, 1, 0], dtype=bool)
    assert mcnemar_test(a, a.copy()).pvalue == 1.0  # identical predictions: no evidence, not p = 0
    both_right = np.ones(10, dtype=bool)
    r = mcnemar_test(both_right, both_right)
    assert (r.a_only, r.b_only, r.pvalue) == (0, 0, 1.0)


def test_mcnemar_pools_paired_seeds() -> None:
    a0, b0 = _pair(6, 1, both=20, neither=3)
    a1, b1 = _pair(4, 2, both=22, neither=2)
    r = mcnemar_test(np.stack([a0, a1]), np.stack([b0, b1]))
    assert (r.a_only, r.b_only) == (10, 3)
    assert r.pvalue == pytest.approx(st.binomtest(10, 13, 0.5).pvalue)


def test_mcnemar_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        mcnemar_test(np.ones(3, dtype=bool), np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="booleans"):
        mcnemar_test(np.array([0, 2]), np.array([0, 1]))


# -- paired bootstrap of the accuracy difference -----------------------------------------------------------------

def test_paired_bootstrap_matches_resampling_examples() -> None:
    a, b = _pair(30, 18, both=400, neither=52)
    ours = paired_bootstrap_diff(a, b, n_resamples=20_000, seed=0)
    assert ours.diff == pytest.approx((30 - 18) / 500)
    # The textbook way: resample example indices, the same ones for both models.
    idx = np.random.default_rng(1).integers(0, a.size, size=(20_000, a.size))
    naive = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert ours.low == pytest.approx(lo, abs=0.003) and ours.high == pytest.approx(hi, abs=0.003)
    assert paired_bootstrap_diff(a, b, seed=5) == paired_bootstrap_diff(a, b, seed=5)


def test_paired_bootstrap_of_identical_models_is_zero() -> None:
    a, _ = _pair(10, 10, both=30, neither=10)
    r = paired_bootstrap_diff(a, a.copy())
    assert (r.diff, r.low, r.high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_averages_seeds_per_example() -> None:
    # Seed 0: A right on example 0 only; seed 1: on examples 0 and 1. B never right.
    a = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)
    b = np.zeros((2, 4), dtype=bool)
    r = paired_bootstrap_diff(a, b)
    assert r.diff == pytest.approx((1 + 0.5) / 4)  # per-example means 1, 0.5, 0, 0
    assert 0.0 <= r.low < r.diff < r.high <= 0.75


# -- Almost Stochastic Order: the same numbers as deepsig --------------------------------------------------------

@pytest.mark.parametrize(("scores_a", "scores_b", "num_comparisons"), [
    ([0.912, 0.918, 0.905, 0.921, 0.915], [0.902, 0.899, 0.908, 0.911, 0.897], 1),
    ([0.81, 0.83, 0.79], [0.80, 0.82, 0.84, 0.78], 1),
    ([0.70, 0.71], [0.69, 0.72, 0.70, 0.71, 0.73, 0.68], 2),
    ([0.5], [0.4, 0.6, 0.55], 1),
])
def test_aso_reproduces_deepsig(scores_a: list[float], scores_b: list[float], num_comparisons: int) -> None:
    deepsig = pytest.importorskip("deepsig")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deepsig warns on resamples with equal distributions
        ref = deepsig.aso(scores_a, scores_b, num_comparisons=num_comparisons, num_bootstrap_iterations=200,
                          seed=7, show_progress=False)
    ours = aso(scores_a, scores_b, num_comparisons=num_comparisons, n_resamples=200, seed=7)
    assert ours == pytest.approx(ref, abs=1e-9)


def test_aso_orders_clearly_separated_scores() -> None:
    hi, lo = [0.95, 0.96, 0.97, 0.955, 0.965], [0.90, 0.91, 0.92, 0.905, 0.915]
    assert aso(hi, lo) == 0.0  # A always better: no violation at all
    # B always better: near 1 (not exactly: like deepsig, the violation integral leaves out the first level)
    assert aso(lo, hi) > 0.99
    assert aso(hi, lo, seed=1) == aso(hi, lo, seed=1)


# -- Holm ------------------------------------------------------------------------------------------------------------

def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    for p in (rng.uniform(0, 0.1, 12), np.array([0.01, 0.01, 0.04, 0.2, 0.001]), np.array([0.5]),
              np.array([0.03, 0.6, 0.9, 0.02, 0.01, 0.049])):
        reject, adjusted = holm(p, alpha=0.05)
        ref_reject, ref_adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
        np.testing.assert_array_equal(reject, ref_reject)
        np.testing.assert_allclose(adjusted, ref_adjusted, rtol=1e-12)


def test_holm_rejects_bad_pvalues() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.5])


# -- every pair of a study ---------------------------------------------------------------------------------------

def _model(rng: np.random.Generator, y_hard: np.ndarray, acc: float, seeds: int) -> dict[int, np.ndarray]:
    return {s: (rng.random(y_hard.size) < acc) & ~y_hard for s in range(seeds)}


def test_compare_models_finds_the_real_difference_only() -> None:
    rng = np.random.default_rng(0)
    hard = rng.random(2000) < 0.05  # examples every model gets wrong
    correct = {"weak": _model(rng, hard, 0.80, 3), "strong": _model(rng, hard, 0.95, 3),
               "strong-twin": _model(rng, hard, 0.95, 3)}
    pairs = {(c.a, c.b): c for c in compare_models(correct, n_resamples=2000, aso_resamples=200)}
    assert set(pairs) == {("strong", "weak"), ("strong-twin", "weak"), ("strong", "strong-twin")} or \
        set(pairs) == {("strong", "weak"), ("strong-twin", "weak"), ("strong-twin", "strong")}
    big = pairs[("strong", "weak")]
    assert big.significant and big.p_holm < 1e-10 and big.seeds == 3
    assert 0.12 < big.diff.low < big.diff.diff < big.diff.high < 0.18  # 0.95 * 0.95 - 0.80 * 0.95 = 0.1425
    assert big.aso_eps is not None and big.aso_eps < 0.2
    twins = next(c for key, c in pairs.items() if set(key) == {"strong", "strong-twin"})
    assert not twins.significant and twins.p_holm >= twins.mcnemar.pvalue
    assert twins.diff.low < 0 < twins.diff.high


def test_compare_models_pairs_by_seed_and_skips_aso_with_one_seed() -> None:
    a = {0: np.array([1, 1, 1, 0], dtype=bool), 1: np.array([1, 1, 0, 0], dtype=bool)}
    b = {1: np.array([1, 0, 0, 0], dtype=bool)}  # only seed 1: paired with A's seed 1, not its seed 0
    (c,) = compare_models({"a": a, "b": b}, n_resamples=100)
    assert (c.a, c.b, c.seeds) == ("a", "b", 1)
    assert (c.mcnemar.a_only, c.mcnemar.b_only) == (1, 0)
    assert c.diff.diff == pytest.approx(0.25) and c.aso_eps is None
    assert c.p_holm == c.mcnemar.pvalue == 1.0  # one pair: Holm changes nothing; 1 discordant example: p = 1
    assert compare_models({"a": a, "c": {5: a[0]}}) == []  # no seed in common: no paired comparison


def test_rank_models_marks_ties_with_the_first() -> None:
    rng = np.random.default_rng(1)
    hard = rng.random(1000) < 0.05
    strong = _model(rng, hard, 0.95, 2)
    close = {s: c.copy() for s, c in strong.items()}
    for c in close.values():
        c[np.flatnonzero(c)[:2]] = False  # 2 examples per seed lost: 4 discordant pairs, p = 2 / 2**4 = 0.125
    correct = {"weak": _model(rng, hard, 0.80, 2), "strong": strong, "close": close,
               "alone": {7: np.ones(1000, dtype=bool)}}
    comparisons = compare_models(correct, n_resamples=500, aso_resamples=100)
    means = {k: float(np.mean([c.mean() for c in v.values()])) for k, v in correct.items()}
    ranks = rank_models(means, comparisons)
    assert [r.label for r in ranks] == ["alone", "strong", "close", "weak"]
    # "alone" shares no seed with anyone: first by its mean, but nothing is tested against it
    assert ranks[1].vs_best is None and ranks[1].tied_with_best and ranks[1].diff_to_best is None
    ranks = rank_models({k: v for k, v in means.items() if k != "alone"}, comparisons)
    by = {r.label: r for r in ranks}
    assert by["strong"].rank == 1 and by["strong"].vs_best is None
    assert by["close"].tied_with_best and not by["weak"].tied_with_best
    d = by["weak"].diff_to_best
    assert d is not None and d.high < 0 and d.diff == pytest.approx(means["weak"] - means["strong"])


def test_winner_in_both_directions() -> None:
    fast, slow = [2.0, 3.0, 2.0, 2.0], [6.0, 5.0, 7.0, 6.0]
    w = winner({"slow": slow, "fast": fast, "unmeasured": []}, higher_is_better=False)
    assert w is not None and (w.label, w.runner_up) == ("fast", "slow") and w.value.mean == 2.25
    assert w.aso_eps is not None and w.aso_eps < 0.2 and w.clear  # fewer epochs every seed
    w = winner({"slow": slow, "fast": fast}, higher_is_better=True)
    assert w is not None and w.label == "slow" and w.clear
    one = winner({"a": [0.9], "b": [0.8, 0.85]}, higher_is_better=True)
    assert one is not None and one.label == "a" and one.aso_eps is None and one.clear is None and one.value.low is None
    assert winner({"a": []}, higher_is_better=True) is None
    tie = winner({"a": [1.0, 2.0], "b": [2.0, 1.0], "c": [3.0, 3.0]}, higher_is_better=False)
    assert tie is not None and (tie.label, tie.tied, tie.runner_up, tie.aso_eps) == ("a", ("b",), None, None)
    alone = winner({"a": [1.0]}, higher_is_better=True)
    assert alone is not None and alone.runner_up is None


def test_docstring_examples() -> None:
    for module in (stats,):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_repeated_holdout_interval_by_hand() -> None:
    """Values 0.90, 0.92, 0.94: mean 0.92, s^2 = 0.0004; with n_test / n_train = 0.25 the variance of the mean is
    (1/3 + 1/4) * 0.0004, and t(2, 0.975) = 4.302653."""
    r = repeated_holdout_ci([0.90, 0.92, 0.94], n_train=800, n_test=200)
    half = 4.302653 * math.sqrt((1 / 3 + 1 / 4) * 0.0004)
    assert (r.mean, r.n) == (pytest.approx(0.92), 3)
    assert (r.low, r.high) == (pytest.approx(0.92 - half, abs=1e-6), pytest.approx(0.92 + half, abs=1e-6))
    # wider than the uncorrected t-interval, which treats the overlapping splits as independent
    assert half > 4.302653 * math.sqrt(0.0004 / 3)
    assert repeated_holdout_ci([0.9], n_train=10, n_test=5).low is None
    with pytest.raises(ValueError, match="positive"):
        repeated_holdout_ci([0.9, 0.8], n_train=0, n_test=5)
    with pytest.raises(ValueError, match="finite"):
        repeated_holdout_ci([0.9, float("nan")], n_train=10, n_test=5)
