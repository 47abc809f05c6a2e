"""Statistics over seeds and between models: confidence intervals, paired tests, a multiple-testing correction.

Two sources of uncertainty are kept apart:

- **Seeds** (initialisation, data order): a model's headline metric varies from seed to seed. ``mean_ci`` gives
  its mean with a percentile-bootstrap interval over seeds; ``aso`` asks whether one model's per-seed scores
  almost stochastically dominate another's (Dror et al., ACL 2019).
- **The test set** (which examples happened to be drawn): two models evaluated on the same examples are compared
  example by example. ``mcnemar_test`` tests whether their error rates differ; ``paired_bootstrap_diff`` gives an
  interval for their accuracy difference.

``compare_models`` runs all of it for every pair of models of a study and ``holm`` corrects the p-values for the
number of pairs. Every resampling takes a ``seed``: the same inputs always give the same numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Bootstrap resamples of ``mean_ci`` and ``paired_bootstrap_diff``. With 10,000 resamples the Monte-Carlo error
#: of a 2.5% quantile is about 0.2 percentage points of probability, far below what a handful of seeds resolves.
N_RESAMPLES = 10_000

#: ``aso`` declares A better than B when ``eps_min < ASO_THRESHOLD``: Ulmer et al. (2022, arXiv:2204.06815) found
#: 0.2 a better trade-off between false and missed detections than the 0.5 of the original paper.
ASO_THRESHOLD = 0.2


@dataclass(frozen=True)
class MeanCI:
    """The mean of a metric over seeds with its bootstrap interval.

    ``low`` and ``high`` are ``None`` when there is only one seed: one value says nothing about the spread.
    """

    mean: float
    low: float | None
    high: float | None
    n: int  # seeds

    @property
    def has_ci(self) -> bool:
        return self.low is not None


def mean_ci(values: Sequence[float] | np.ndarray, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
            seed: int = 0) -> MeanCI:
    """Mean of ``values`` (one per seed) and its percentile-bootstrap confidence interval.

    The seeds are resampled with replacement ``n_resamples`` times; the interval holds the central ``confidence``
    share of the resampled means. With few seeds a percentile interval is too narrow (with 2 seeds it cannot be
    wider than their range), so read it as a lower bound on the real uncertainty.

    Args:
        values: shape ``(S,)``, one value per seed, finite.
        confidence: coverage of the interval.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        The mean, the interval (``None`` for a single seed) and the number of seeds.

    >>> r = mean_ci([0.90, 0.92, 0.91, 0.93])
    >>> round(r.mean, 3), r.n, r.low <= r.mean <= r.high
    (0.915, 4, True)
    >>> mean_ci([0.9]).low is None
    True
    """
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("values must be finite")
    _check_confidence(confidence)
    if a.size == 1:
        return MeanCI(mean=float(a[0]), low=None, high=None, n=1)
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return MeanCI(mean=float(a.mean()), low=float(low), high=float(high), n=int(a.size))


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two classifiers on the same examples.

    ``a_only``: examples only A gets right; ``b_only``: only B gets right (the discordant pairs).
    """

    a_only: int
    b_only: int
    pvalue: float


def repeated_holdout_ci(values: Sequence[float] | np.ndarray, *, n_train: int, n_test: int,
                        confidence: float = 0.95) -> MeanCI:
    """Mean of a metric over ``J`` random train/test splits of one dataset, with the corrected t-interval of
    Nadeau & Bengio (2003, "Inference for the generalization error").

    The splits overlap (an example tested in one split trains the model in another), so their results are
    positively correlated and the plain variance of their mean, ``s^2 / J``, is too small. Nadeau and Bengio's
    correction replaces ``1 / J`` by ``1 / J + n_test / n_train``:

        mean ± t_{J-1, (1+confidence)/2} * sqrt((1 / J + n_test / n_train) * s^2)

    Args:
        values: shape ``(J,)``, one value per split, finite.
        n_train: training examples per split.
        n_test: test examples per split.
        confidence: coverage of the interval.

    Returns:
        The mean, the interval (``None`` for a single split) and ``J``.

    >>> r = repeated_holdout_ci([0.99, 1.0, 0.9867, 0.9983, 0.99, 0.9933], n_train=720, n_test=200)
    >>> round(r.mean, 4), round(r.high - r.mean, 4)
    (0.993, 0.0089)
    """
    _check_confidence(confidence)
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"values must be a non-empty 1-D array of finite numbers, got shape {a.shape}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    j = a.size
    if j == 1:
        return MeanCI(float(a[0]), None, None, 1)
    half = stats.t.ppf((1 + confidence) / 2, j - 1) * math.sqrt((1 / j + n_test / n_train) * a.var(ddof=1))
    return MeanCI(float(a.mean()), float(a.mean() - half), float(a.mean() + half), j)


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """Exact (binomial) McNemar test: do A and B have the same error rate on these examples?

    Only the discordant examples carry information. Under the null each is equally likely to favour A or B, so the
    p-value is the two-sided exact binomial probability of a split at least as uneven as the observed one
    (McNemar, 1947; the exact form recommended by Dietterich, 1998, for comparing classifiers). With no discordant
    example there is no evidence of a difference, and the p-value is 1.

    Args:
        correct_a: shape ``(N,)`` or ``(S, N)`` booleans, whether A is right on each example. A 2-D array holds
            ``S`` seeds whose rows are paired with the same rows of ``correct_b``; their discordant pairs are pooled.
        correct_b: same shape, for B.

    Returns:
        The discordant counts and the p-value.

    >>> a = np.array([1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    >>> b = np.array([1, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    >>> r = mcnemar_test(a, b)  # 5 examples only A gets right, none only B: 2 * 0.5**5
    >>> r.a_only, r.b_only, r.pvalue
    (5, 0, 0.0625)
    """
    a, b = _check_correct(correct_a, correct_b)
    a_only = int(np.count_nonzero(a & ~b))
    b_only = int(np.count_nonzero(~a & b))
    n = a_only + b_only
    if n == 0:
        return McNemar(a_only=0, b_only=0, pvalue=1.0)
    # Doubling the smaller tail is exact for the symmetric Binomial(n, 1/2) and equals scipy's binomtest.
    p = min(1.0, 2.0 * float(stats.binom.cdf(min(a_only, b_only), n, 0.5)))
    return McNemar(a_only=a_only, b_only=b_only, pvalue=p)


@dataclass(frozen=True)
class PairedDiff:
    """Accuracy of A minus accuracy of B on the same examples, with its paired-bootstrap interval."""

    diff: float
    low: float
    high: float


def paired_bootstrap_diff(correct_a: np.ndarray, correct_b: np.ndarray, *, confidence: float = 0.95,
                          n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedDiff:
    """Accuracy difference ``acc(A) - acc(B)`` with a paired percentile-bootstrap interval over test examples.

    Examples are resampled with replacement and the same resample is used for both models, so what the two share
    (an easy or a hard example) cancels out. This interval is about the test set's sampling: it says how the
    difference would move on another test set of the same size, for these trained models (these seeds).

    Resampling ``N`` examples only changes how often each per-example difference occurs, so the resamples are
    drawn as multinomial counts over the distinct per-example differences: the same distribution as resampling
    the examples themselves, without an ``(n_resamples, N)`` index array.

    Args:
        correct_a: shape ``(N,)`` or ``(S, N)`` booleans; with ``S`` seeds an example's correctness is its mean
            over the seeds (row ``s`` of A is paired with row ``s`` of B).
        correct_b: same shape, for B.
        confidence: coverage of the interval.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.

    >>> a = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    >>> b = np.array([1, 1, 1, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    >>> r = paired_bootstrap_diff(a, b)
    >>> round(r.diff, 2), r.low <= r.diff <= r.high
    (0.1, True)
    """
    a, b = _check_correct(correct_a, correct_b)
    _check_confidence(confidence)
    d = a.mean(axis=0) - b.mean(axis=0) if a.ndim == 2 else a.astype(np.float64) - b  # (N,)
    values, counts = np.unique(d, return_counts=True)
    n = d.size
    rng = np.random.default_rng(seed)
    resampled = rng.multinomial(n, counts / n, size=n_resamples) @ values / n  # (n_resamples,)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return PairedDiff(diff=float(d.mean()), low=float(low), high=float(high))


def aso(scores_a: Sequence[float] | np.ndarray, scores_b: Sequence[float] | np.ndarray, *,
        confidence: float = 0.95, num_comparisons: int = 1, n_resamples: int = 1000, dt: float = 0.005,
        seed: int = 0) -> float:
    """Almost Stochastic Order: ``eps_min``, an upper bound on how far A's scores fail to dominate B's.

    The test of Dror, Shlomov and Reichart (ACL 2019), after del Barrio et al. (2018), as implemented by
    ``deepsig.aso`` (Ulmer et al., 2022), whose results it reproduces for the same ``seed``, vectorised over
    bootstrap iterations. ``eps_min`` near 0: A's score distribution (higher is better) stochastically dominates
    B's; 0.5: no order; near 1: B dominates. A is called better when ``eps_min < ASO_THRESHOLD`` (0.2). With a
    handful of seeds the test has little power and ``eps_min`` stays near 0.5 unless the gap is wide.

    Args:
        scores_a: shape ``(S_a,)``, A's score per seed (higher is better).
        scores_b: shape ``(S_b,)``, B's score per seed; ``S_b`` may differ from ``S_a``.
        confidence: confidence level of the bound.
        num_comparisons: comparisons made with the same data; the confidence is Bonferroni-corrected for them.
        n_resamples: bootstrap iterations that estimate the violation ratio's spread.
        dt: step of the integral over quantile levels.
        seed: iteration ``i`` draws from ``numpy.random.RandomState(seed + i)``, as deepsig does.

    >>> round(aso([0.91, 0.92, 0.93, 0.94, 0.95], [0.81, 0.82, 0.83, 0.84, 0.85]), 3)
    0.0
    """
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError(f"scores must be non-empty 1-D arrays, got shapes {a.shape} and {b.shape}")
    if num_comparisons < 1:
        raise ValueError("num_comparisons must be at least 1")
    _check_confidence(confidence)
    # Bonferroni: the error rate is split over the comparisons. (deepsig 1.2.8 adds (1 - confidence) / m to the
    # confidence instead, which is Bonferroni only for m = 2; both agree for m = 1 and m = 2.)
    confidence = 1 - (1 - confidence) / num_comparisons
    t = np.arange(dt, 1, dt)  # quantile levels in (0, 1)
    a_sorted, b_sorted = np.sort(a), np.sort(b)
    ratio = float(_violation_ratio(a_sorted[None], b_sorted[None], t, dt)[0])
    # Bootstrap: resample each side from its empirical quantile function with deepsig's seeding.
    ua, ub = np.empty((n_resamples, a.size)), np.empty((n_resamples, b.size))
    for i in range(n_resamples):
        rs = np.random.RandomState(seed + i + 1)
        ua[i], ub[i] = rs.uniform(0, 1, a.size), rs.uniform(0, 1, b.size)
    resampled_a = np.sort(_quantile(a_sorted, ua), axis=1)  # (n_resamples, S_a)
    resampled_b = np.sort(_quantile(b_sorted, ub), axis=1)
    samples = _violation_ratio(resampled_a, resampled_b, t, dt)
    const = math.sqrt(a.size * b.size / (a.size + b.size))
    sigma = float(np.std(const * (samples - ratio)))
    return float(np.clip(ratio - sigma / const * stats.norm.ppf(1 - confidence), 0.0, 1.0))


def _quantile(sorted_scores: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The empirical quantile function ``F^-1(p)`` of sorted scores ``(n,)`` at levels ``p`` (any shape)."""
    n = sorted_scores.size
    return sorted_scores[np.clip(np.ceil(n * p).astype(np.int64) - 1, 0, n - 1)]


def _violation_ratio(a_sorted: np.ndarray, b_sorted: np.ndarray, t: np.ndarray, dt: float) -> np.ndarray:
    """Violation ratio ``eps_W2`` (Dror et al., 2019, eqs. 4-5) of each row of sorted scores ``(R, n)``."""
    na, nb = a_sorted.shape[1], b_sorted.shape[1]
    f = a_sorted[:, np.clip(np.ceil(na * t).astype(np.int64) - 1, 0, na - 1)]  # (R, T)
    g = b_sorted[:, np.clip(np.ceil(nb * t).astype(np.int64) - 1, 0, nb - 1)]
    diff = g - f
    w2 = np.sum(diff**2 * dt, axis=1)
    violated = np.where(f >= g, 0.0, diff)
    # deepsig leaves out the first level in the violation integral (t in (0, 1)); kept for identical results.
    v = np.sum(violated[:, 1:] ** 2 * dt, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w2 == 0, 0.5, v / np.where(w2 == 0, 1.0, w2))


def holm(pvalues: Sequence[float] | np.ndarray, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction for multiple tests (Holm, 1979).

    Controls the family-wise error rate at ``alpha`` under any dependence between the tests, and rejects
    everything Bonferroni rejects and often more.

    Args:
        pvalues: shape ``(M,)``.
        alpha: family-wise error rate.

    Returns:
        ``(reject (M,) bool, adjusted p-values (M,))`` in the input order; adjusted values are capped at 1.

    >>> reject, adjusted = holm([0.01, 0.04, 0.03])
    >>> reject.tolist(), [round(float(p), 2) for p in adjusted]  # 3 * 0.01, then 2 * 0.03, then max(1 * 0.04, 0.06)
    ([True, False, False], [0.03, 0.06, 0.06])
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    if np.any((p < 0) | (p > 1) | ~np.isfinite(p)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted <= alpha, adjusted


@dataclass(frozen=True)
class Comparison:
    """Model ``a`` (the more accurate of the two on average) against model ``b`` on the same test examples."""

    a: str
    b: str
    seeds: int  # seeds both models have, paired by seed number
    diff: PairedDiff  # accuracy of a minus b, pooled over the paired seeds
    mcnemar: McNemar  # pooled over the paired seeds
    p_holm: float  # McNemar p-value after Holm's correction over all pairs of the study
    significant: bool  # p_holm <= alpha
    aso_eps: float | None  # eps_min of "a is better than b" over per-seed accuracies; None with < 2 seeds a side

    def diff_of(self, label: str) -> PairedDiff:
        """Accuracy of ``label`` (``a`` or ``b``) minus the other's, with its interval."""
        if label == self.a:
            return self.diff
        if label != self.b:
            raise ValueError(f"{label!r} is not in the comparison of {self.a!r} and {self.b!r}")
        return PairedDiff(-self.diff.diff, -self.diff.high, -self.diff.low)


def compare_models(correct: Mapping[str, Mapping[int, np.ndarray]], *, alpha: float = 0.05,
                   n_resamples: int = N_RESAMPLES, aso_resamples: int = 1000, seed: int = 0) -> list[Comparison]:
    """Compare every pair of models on the same test examples; McNemar p-values Holm-corrected over all pairs.

    Pairing runs across seeds: seed ``s`` of A is paired with seed ``s`` of B, and the exact McNemar test is
    run on the discordant examples pooled over the paired seeds. Independent seed pairs each give independent
    discordant outcomes that, under the null of equal error rates, favour A or B with probability 1/2, so the
    pooled count is still Binomial(n, 1/2) and the test stays exact, with the power of all seeds together. The
    median of per-seed p-values, the alternative, has no known false-positive rate and throws that power away.
    The pooled test conditions on this test set: it says the models differ *here*; ``aso`` over the per-seed
    accuracies speaks to the spread over seeds.

    Args:
        correct: ``{model: {seed: (N,) bool}}``, whether each test example is classified correctly; every array
            covers the same ``N`` examples in the same order.
        alpha: family-wise error rate of the Holm correction.
        n_resamples: resamples of the paired bootstrap.
        aso_resamples: bootstrap iterations of ASO.
        seed: seed of every resampling.

    Returns:
        One ``Comparison`` per pair of models that share at least one seed, ``a`` being the one with the higher
        mean accuracy over the paired seeds, in the order of ``correct``.
    """
    labels = list(correct)
    pairs: list[tuple[str, str, list[int]]] = []
    for x, y in itertools.combinations(labels, 2):
        common = sorted(set(correct[x]) & set(correct[y]))
        if common:
            pairs.append((x, y, common))
    m = len(pairs)
    raw = []
    for x, y, common in pairs:
        cx = np.stack([np.asarray(correct[x][s], dtype=bool) for s in common])  # (S, N)
        cy = np.stack([np.asarray(correct[y][s], dtype=bool) for s in common])
        if cy.mean() > cx.mean():
            x, y, cx, cy = y, x, cy, cx
        diff = paired_bootstrap_diff(cx, cy, n_resamples=n_resamples, seed=seed)
        test = mcnemar_test(cx, cy)
        sx = [float(np.mean(correct[x][s])) for s in correct[x]]
        sy = [float(np.mean(correct[y][s])) for s in correct[y]]
        eps = (aso(sx, sy, num_comparisons=m, n_resamples=aso_resamples, seed=seed)
               if min(len(sx), len(sy)) >= 2 else None)
        raw.append((x, y, len(common), diff, test, eps))
    reject, adjusted = holm([r[4].pvalue for r in raw], alpha=alpha) if raw else (np.array([]), np.array([]))
    return [Comparison(a=x, b=y, seeds=s, diff=d, mcnemar=t, p_holm=float(adj), significant=bool(rej), aso_eps=eps)
            for (x, y, s, d, t, eps), rej, adj in zip(raw, reject, adjusted, strict=True)]


@dataclass(frozen=True)
class Rank:
    """A model's place in a ranking by mean accuracy, and how it stands against the first."""

    rank: int  # 1 for the most accurate
    label: str
    mean: float  # mean accuracy over its seeds
    vs_best: Comparison | None  # None for the first, and for a model that shares no seed with it
    tied_with_best: bool  # True for the first, and where the difference from it is not significant after Holm

    @property
    def diff_to_best(self) -> PairedDiff | None:
        """This model's accuracy minus the first's (negative below it), with its interval."""
        return None if self.vs_best is None else self.vs_best.diff_of(self.label)


def rank_models(mean_acc: Mapping[str, float], comparisons: Sequence[Comparison]) -> list[Rank]:
    """Rank models by mean accuracy and mark which ones are not significantly worse than the first.

    Args:
        mean_acc: ``{model: mean accuracy over its seeds}``.
        comparisons: ``compare_models``' output for the same models (Holm-corrected over all pairs).

    >>> rank_models({"a": 0.90, "b": 0.95}, [])[0].label
    'b'
    """
    order = sorted(mean_acc, key=lambda k: -mean_acc[k])
    by_pair = {frozenset((c.a, c.b)): c for c in comparisons}
    out = []
    for i, label in enumerate(order):
        c = by_pair.get(frozenset((label, order[0]))) if i else None
        out.append(Rank(rank=i + 1, label=label, mean=float(mean_acc[label]), vs_best=c,
                        tied_with_best=i == 0 or c is None or not c.significant))
    return out


@dataclass(frozen=True)
class Winner:
    """The best model on one per-seed criterion, with the runner-up and how clearly it wins."""

    label: str
    value: MeanCI
    runner_up: str | None
    runner_up_value: MeanCI | None
    aso_eps: float | None  # ASO eps_min of "winner better than runner-up"; None with fewer than 2 seeds a side
    tied: tuple[str, ...] = ()  # other models with the same mean: no winner among them, so no runner-up or ASO

    @property
    def clear(self) -> bool | None:
        """Whether the winner almost stochastically dominates the runner-up (``None``: not testable)."""
        return None if self.aso_eps is None else self.aso_eps < ASO_THRESHOLD


def winner(values: Mapping[str, Sequence[float]], *, higher_is_better: bool, aso_resamples: int = 1000,
           seed: int = 0) -> Winner | None:
    """The model with the best mean of a per-seed criterion, and ASO against the runner-up.

    Args:
        values: ``{model: one value per seed}``; models without values are left out.
        higher_is_better: direction of the criterion (for a loss or a time, ``False``).
        aso_resamples: bootstrap iterations of ASO.
        seed: seed of every resampling.

    Returns:
        ``None`` when no model has a value. Models whose mean equals the best one's (common for counts such as
        epochs) are listed in ``tied``; the first of them in input order is ``label``.

    >>> w = winner({"a": [3.0, 4.0], "b": [6.0, 7.0]}, higher_is_better=False)
    >>> w.label, w.runner_up, w.value.mean
    ('a', 'b', 3.5)
    >>> winner({"a": [1.0, 1.0], "b": [1.0, 1.0], "c": [2.0]}, higher_is_better=False).tied
    ('b',)
    """
    scored = {k: np.asarray(v, dtype=np.float64) for k, v in values.items() if len(v)}
    if not scored:
        return None
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(scored, key=lambda k: -sign * scored[k].mean())
    best = order[0]
    tied = tuple(k for k in order[1:] if math.isclose(scored[k].mean(), scored[best].mean(), rel_tol=1e-12))
    if tied:
        return Winner(label=best, value=mean_ci(scored[best], seed=seed), runner_up=None, runner_up_value=None,
                      aso_eps=None, tied=tied)
    second = order[1] if len(order) > 1 else None
    eps = None
    if second is not None and min(scored[best].size, scored[second].size) >= 2:
        eps = aso(sign * scored[best], sign * scored[second], n_resamples=aso_resamples, seed=seed)
    return Winner(label=best, value=mean_ci(scored[best], seed=seed), runner_up=second,
                  runner_up_value=None if second is None else mean_ci(scored[second], seed=seed), aso_eps=eps)


def _check_correct(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"correctness must be a non-empty (N,) or (S, N) array, got shape {a.shape}")
    if a.dtype != bool or b.dtype != bool:
        if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
            raise ValueError("correctness arrays must hold booleans (or 0/1)")
        a, b = a.astype(bool), b.astype(bool)
    return a, b


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
