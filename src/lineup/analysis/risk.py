"""Risk against the best possible: the error decomposition, learning curves, and how well a model fits the posterior.

When the data distribution is known, a classifier ``h``'s excess risk over the Bayes risk ``R*`` splits into

    R(h) - R* = [R(h) - R(h_class)] + [R(h_class) - R*]
              =  estimation error   +  approximation error,

where ``h_class`` is the best classifier the same architecture can represent, approximated by training it on a
much larger sample (Vapnik, *Statistical Learning Theory*, 1998; Bottou and Bousquet, NIPS 2007, who add the
optimisation error that a finite training run folds into both terms here). The estimation error shrinks with the
training sample, the approximation error does not.

Intervals over seeds are Student-t intervals of the mean: with the three to ten seeds a study affords, a
percentile bootstrap cannot be wider than the range of the values and is too narrow, while the t-interval is exact
for normal per-seed values and widens correctly as seeds get fewer. Conventions: risks are error rates in
``[0, 1]``; ``*_error`` and ``*_divergence`` are lower-is-better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lineup.data.synthetic import BayesRisk


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its confidence interval; ``low`` and ``high`` are ``None`` for a single seed."""

    mean: float
    low: float | None
    high: float | None
    n: int  # seeds

    @property
    def half_width(self) -> float | None:
        return None if self.high is None else (self.high - self.low) / 2  # type: ignore[operator]


def _values(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (one value per seed), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _t(confidence: float, df: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def _interval(mean: float, variance: float, df: float, n: int, extra: float, confidence: float) -> Interval:
    """``mean -/+ (t_df * sqrt(variance) + extra)``, or no interval when ``n < 2``."""
    if n < 2:
        return Interval(mean, None, None, n)
    half = _t(confidence, df) * math.sqrt(variance) + extra
    return Interval(mean, mean - half, mean + half, n)


def mean_interval(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95) -> Interval:
    """Mean of ``values`` (one per seed) with the Student-t interval ``mean -/+ t_{n-1} s / sqrt(n)``.

    >>> r = mean_interval([0.10, 0.12, 0.14])  # s = 0.02, t_2(0.975) = 4.302653
    >>> round(r.mean, 6), round(r.half_width, 6)  # 4.302653 * 0.02 / sqrt(3) = 0.049683
    (0.12, 0.049683)
    """
    a = _values("values", values)
    var = float(a.var(ddof=1)) / a.size if a.size > 1 else 0.0
    return _interval(float(a.mean()), var, a.size - 1, a.size, 0.0, confidence)


def estimation_error(
    risk_h: Sequence[float] | np.ndarray,
    risk_class: Sequence[float] | np.ndarray,
    *,
    paired: bool = True,
    confidence: float = 0.95,
) -> Interval:
    """``R(h) - R(h_class)``: how much a model loses by learning from its finite training sample.

    Args:
        risk_h: ``(S,)`` test risk of the model, one per seed.
        risk_class: test risk of the same architecture trained on a much larger sample, one per seed.
        paired: ``risk_h[s]`` and ``risk_class[s]`` come from the same seed: the interval is the t-interval of the
            per-seed differences. Otherwise (or with different numbers of seeds) it is Welch's interval for a
            difference of two means, with the Welch-Satterthwaite degrees of freedom.
        confidence: coverage of the interval.

    Returns:
        The mean difference and its interval (none for a single seed). Both risks are measured on the same test
        set, so its sampling error largely cancels from the difference and is not added.

    >>> r = estimation_error([0.20, 0.22, 0.24], [0.15, 0.16, 0.17])  # differences 0.05, 0.06, 0.07
    >>> round(r.mean, 6), round(r.low, 6), round(r.high, 6)  # 0.06 -/+ 4.302653 * 0.01 / sqrt(3) = 0.024841
    (0.06, 0.035159, 0.084841)
    """
    a, b = _values("risk_h", risk_h), _values("risk_class", risk_class)
    if paired and a.size == b.size:
        return mean_interval(a - b, confidence=confidence)
    va = float(a.var(ddof=1)) / a.size if a.size > 1 else 0.0
    vb = float(b.var(ddof=1)) / b.size if b.size > 1 else 0.0
    n = min(a.size, b.size)
    if n < 2:
        return Interval(float(a.mean() - b.mean()), None, None, n)
    # Welch-Satterthwaite; two constant samples have no spread and any df gives a zero-width interval.
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if va + vb > 0 else float(n - 1)
    return _interval(float(a.mean() - b.mean()), va + vb, df, n, 0.0, confidence)


def approximation_error(
    risk_class: Sequence[float] | np.ndarray,
    bayes_risk: float | BayesRisk,
    *,
    test_size: int | None = None,
    confidence: float = 0.95,
) -> Interval:
    """``R(h_class) - R*``: what the architecture cannot represent, however much data it gets.

    The interval is the t-interval of the per-seed values, widened by what else is uncertain:

    - ``test_size`` given: every seed is tested on the same ``test_size`` examples, so their common sampling
      error does not show in the spread over seeds; its variance ``r (1 - r) / test_size`` (binomial, at the mean
      risk ``r``) is added to the variance of the mean;
    - ``bayes_risk`` a ``BayesRisk`` with an ``error_bound``: the bound is added to the half-width; with a
      Monte-Carlo ``standard_error``: its square is added to the variance.

    Args:
        risk_class: ``(S,)`` test risk of the architecture trained on a much larger sample, one per seed.
        bayes_risk: ``R*`` of the test distribution.
        test_size: examples in the test set the risks were measured on.
        confidence: coverage of the interval.

    >>> r = approximation_error([0.17, 0.18, 0.19], 0.15)  # 0.03 -/+ 4.302653 * 0.01 / sqrt(3)
    >>> round(r.mean, 6), round(r.high, 6)
    (0.03, 0.054841)
    """
    a = _values("risk_class", risk_class)
    value, bound, se = (
        (bayes_risk.value, bayes_risk.error_bound or 0.0, bayes_risk.standard_error or 0.0)
        if isinstance(bayes_risk, BayesRisk)
        else (float(bayes_risk), 0.0, 0.0)
    )
    mean = float(a.mean())
    var = float(a.var(ddof=1)) / a.size if a.size > 1 else 0.0
    if test_size is not None:
        if test_size < 1:
            raise ValueError(f"test_size must be positive, got {test_size}")
        var += min(max(mean, 0.0), 1.0) * (1 - min(max(mean, 0.0), 1.0)) / test_size
    return _interval(mean - value, var + se**2, a.size - 1, a.size, bound, confidence)


@dataclass(frozen=True)
class ErrorDecomposition:
    """``R(h) - R* = estimation + approximation``, each with its interval over seeds.

    Attributes:
        bayes_risk: ``R*``.
        risk: ``R(h)``, mean over seeds with its interval.
        excess: ``R(h) - R*``.
        estimation: ``R(h) - R(h_class)``.
        approximation: ``R(h_class) - R*``.
    """

    bayes_risk: float
    risk: Interval
    excess: Interval
    estimation: Interval
    approximation: Interval


def error_decomposition(
    risk_h: Sequence[float] | np.ndarray,
    risk_class: Sequence[float] | np.ndarray,
    bayes_risk: float | BayesRisk,
    *,
    paired: bool = True,
    test_size: int | None = None,
    confidence: float = 0.95,
) -> ErrorDecomposition:
    """Split a model's excess risk into estimation and approximation error (see the module's docstring).

    Args:
        risk_h: ``(S,)`` test risk of the model, one per seed.
        risk_class: test risk of the same architecture trained on a much larger sample, one per seed.
        bayes_risk: ``R*`` of the test distribution.
        paired: whether ``risk_h[s]`` and ``risk_class[s]`` share seed ``s`` (see ``estimation_error``).
        test_size: examples of the common test set (see ``approximation_error``).
        confidence: coverage of every interval.

    >>> d = error_decomposition([0.20, 0.22, 0.24], [0.15, 0.16, 0.17], 0.10)
    >>> round(d.excess.mean, 6), round(d.estimation.mean, 6), round(d.approximation.mean, 6)  # 0.12 = 0.06 + 0.06
    (0.12, 0.06, 0.06)
    """
    value = float(bayes_risk)
    return ErrorDecomposition(
        bayes_risk=value,
        risk=mean_interval(risk_h, confidence=confidence),
        excess=approximation_error(risk_h, bayes_risk, test_size=test_size, confidence=confidence),
        estimation=estimation_error(risk_h, risk_class, paired=paired, confidence=confidence),
        approximation=approximation_error(risk_class, bayes_risk, test_size=test_size, confidence=confidence),
    )


@dataclass(frozen=True)
class LearningCurve:
    """Risk against training-set size, one point per size (sizes ascending), each a mean over seeds.

    Attributes:
        sizes: ``(P,)`` training-set sizes.
        mean: ``(P,)`` mean risk.
        low, high: ``(P,)`` interval of the mean (NaN where a size has a single seed).
        seeds: ``(P,)`` seeds per size.
        excess: ``(P,)`` ``mean - R*``, or ``None`` when ``R*`` is not known.
    """

    sizes: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: np.ndarray
    excess: np.ndarray | None


def learning_curve(
    sizes: Sequence[int] | np.ndarray,
    risks: Sequence[float] | np.ndarray,
    *,
    bayes_risk: float | BayesRisk | None = None,
    confidence: float = 0.95,
) -> LearningCurve:
    """Group runs by training-set size into a learning curve with t-intervals over seeds.

    Args:
        sizes: ``(R,)`` training-set size of each run.
        risks: ``(R,)`` test risk of each run.
        bayes_risk: ``R*``, to give the excess risk.
        confidence: coverage of the intervals.

    >>> c = learning_curve([100, 10, 100, 10], [0.2, 0.4, 0.3, 0.5], bayes_risk=0.1)
    >>> c.sizes.tolist(), c.mean.tolist(), np.round(c.excess, 6).tolist()
    ([10, 100], [0.45, 0.25], [0.35, 0.15])
    """
    n = np.asarray(sizes)
    r = _values("risks", risks)
    if n.shape != r.shape:
        raise ValueError(f"sizes and risks differ in shape: {n.shape} vs {r.shape}")
    points = [mean_interval(r[n == s], confidence=confidence) for s in np.unique(n)]
    mean = np.array([p.mean for p in points])
    return LearningCurve(
        sizes=np.unique(n),
        mean=mean,
        low=np.array([np.nan if p.low is None else p.low for p in points]),
        high=np.array([np.nan if p.high is None else p.high for p in points]),
        seeds=np.array([p.n for p in points]),
        excess=None if bayes_risk is None else mean - float(bayes_risk),
    )


def fit_power_law(sizes: Sequence[float] | np.ndarray, excess: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Fit ``excess ~ a * n^(-b)`` by least squares on ``log excess = log a - b log n``.

    Learning curves of excess risk are close to power laws over wide ranges of ``n`` (Hestness et al.,
    arXiv:1712.00409); ``b = 1/2`` is the rate of the classic uniform-convergence bounds, ``b`` near 1 the fast
    rate of low-noise problems. Points with ``excess <= 0`` (within noise of ``R*``) carry no rate and are left out.

    Returns:
        ``(a, b)``.

    >>> a, b = fit_power_law([100, 400, 1600], [0.2, 0.1, 0.05])  # halves for every 4x: b = 1/2, a = 0.2 * 10
    >>> round(a, 6), round(b, 6)
    (2.0, 0.5)
    """
    n, e = np.asarray(sizes, dtype=np.float64), np.asarray(excess, dtype=np.float64)
    keep = (e > 0) & (n > 0)
    if np.unique(n[keep]).size < 2:
        raise ValueError("need positive excess risk at two or more distinct sizes to fit a power law")
    slope, intercept = np.polyfit(np.log(n[keep]), np.log(e[keep]), 1)
    return float(math.exp(intercept)), float(-slope)


def _check_proba(name: str, p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"{name} must be (N, K) probabilities with N >= 1 and K >= 2, got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"{name} must be non-negative with rows summing to 1")
    return p


def mean_kl_divergence(p_true: np.ndarray, p_model: np.ndarray, *, eps: float = 1e-12) -> float:
    """Mean over examples of ``KL(p_true(.|x) || p_model(.|x)) = sum_k p_true log(p_true / p_model)``, in nats.

    It is the expected excess log-loss of the model's posterior over the true one: 0 exactly when the model has
    learned the posterior, whatever its accuracy. Terms with ``p_true = 0`` are 0 (``0 log 0 = 0``). The model's
    probabilities are floored at ``eps`` and renormalised, so a model that is certain of a wrong class gets a
    large finite penalty (``-log eps``, 27.6 nats for 1e-12) instead of infinity; ``eps = 0`` gives infinity.

    Args:
        p_true: ``(N, K)`` true posterior at each example (the distribution's ``posterior(x)``).
        p_model: ``(N, K)`` the model's predicted probabilities at the same examples.
        eps: floor of the model's probabilities.

    >>> p = np.array([[0.5, 0.5], [1.0, 0.0]])
    >>> q = np.array([[0.25, 0.75], [0.5, 0.5]])
    >>> # (0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) + 1 log(1/0.5)) / 2 = (0.5 log(4/3) + log 2) / 2
    >>> round(mean_kl_divergence(p, q), 6)
    0.418494
    """
    p, q = _check_proba("p_true", p_true), _check_proba("p_model", p_model)
    if p.shape != q.shape:
        raise ValueError(f"p_true and p_model differ in shape: {p.shape} vs {q.shape}")
    if eps > 0:
        q = np.maximum(q, eps)
        q = q / q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0)  # (N, K)
    return float(terms.sum(axis=1).mean())


@dataclass(frozen=True)
class CalibrationBins:
    """Confidence-binned accuracy (a reliability diagram's data).

    Attributes:
        edges: ``(B + 1,)`` bin edges ``0, 1/B, ..., 1``; bin ``b`` is ``(edges[b], edges[b + 1]]`` (0 goes in
            the first bin).
        count: ``(B,)`` examples whose confidence falls in each bin.
        confidence: ``(B,)`` mean confidence (top predicted probability) per bin; NaN for an empty bin.
        accuracy: ``(B,)`` share of correct top predictions per bin; NaN for an empty bin.
    """

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def calibration_bins(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = 15) -> CalibrationBins:
    """Bin the examples by the confidence of their top prediction into ``n_bins`` equal-width bins.

    Args:
        y_true: ``(N,)`` true labels.
        proba: ``(N, K)`` predicted probabilities; the prediction is the argmax (ties to the lower label).
        n_bins: number of bins on ``[0, 1]``.
    """
    p = _check_proba("proba", proba)
    y = np.asarray(y_true)
    if y.shape != (p.shape[0],):
        raise ValueError(f"y_true must be ({p.shape[0]},), got {y.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins: the first edge >= conf closes the bin that holds it.
    b = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct.astype(np.float64), minlength=n_bins) / count
    return CalibrationBins(edges=edges, count=count, confidence=mean_conf, accuracy=acc)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = 15) -> float:
    """``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over equal-width confidence bins.

    The confidence of an example is its top predicted probability; bins are ``((b-1)/B, b/B]`` as in Guo et al.
    (ICML 2017, "On Calibration of Modern Neural Networks"), after Naeini et al. (AAAI 2015). 0 for a calibrated
    model; the value depends on ``n_bins``, so compare ECEs only at the same number of bins.

    Args:
        y_true: ``(N,)`` true labels.
        proba: ``(N, K)`` predicted probabilities.
        n_bins: number of bins (15, Guo et al.'s choice, by default).

    >>> y = np.array([0, 1, 1, 0])
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])  # right, right, wrong, wrong
    >>> # bins of width 0.2: (0.4, 0.6] {0.6 wrong}, (0.6, 0.8] {0.8 right, 0.7 wrong}, (0.8, 1] {0.9 right}
    >>> # ECE = 1/4 |0 - 0.6| + 2/4 |0.5 - 0.75| + 1/4 |1 - 0.9| = 0.15 + 0.125 + 0.025
    >>> round(expected_calibration_error(y, p, n_bins=5), 6)
    0.3
    """
    bins = calibration_bins(y_true, proba, n_bins=n_bins)
    full = bins.count > 0
    gaps = np.abs(bins.accuracy[full] - bins.confidence[full])
    return float((bins.count[full] * gaps).sum() / bins.count.sum())
