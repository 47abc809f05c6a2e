"""What a known distribution offers, and what works for every one of them.

A synthetic dataset whose distribution is known carries an object with ``posterior(x)``, ``bayes_predict(x)``,
``bayes_risk()`` and ``sample(n, seed)`` (the ``KnownDistribution`` protocol). This module holds the record of
a Bayes risk with its error, seeded block sampling, the Monte-Carlo estimate of the Bayes risk, symmetric label
noise (which maps any known distribution to another one with a closed-form Bayes risk) and the grid of Bayes
decisions used to draw decision regions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: Examples per independently seeded block: a sample of ``n`` is a prefix of every larger sample with the same seed.
BLOCK = 4096
# Marks the seeds of the Monte-Carlo risk estimate and of label flips apart from the seeds of dataset splits.
_MONTE_CARLO, _LABEL_FLIPS = 0x6D63, 0x6E6F697365


@dataclass(frozen=True)
class BayesRisk:
    """The Bayes risk ``R* = E[1 - max_k p(k|x)]`` of a distribution, with how far it can be off.

    Attributes:
        value: the computed risk.
        error_bound: a bound on ``|value - R*|``: floating-point rounding for ``"closed-form"``; for
            ``"quadrature"``, the analytic bound on the mass outside the integration box plus the refinement
            estimate of the quadrature error; ``None`` for ``"monte-carlo"``.
        standard_error: the standard error of a ``"monte-carlo"`` estimate; ``None`` otherwise.
        method: ``"closed-form"``, ``"quadrature"`` or ``"monte-carlo"``.
    """

    value: float
    error_bound: float | None
    standard_error: float | None
    method: str

    def __float__(self) -> float:
        return self.value

    def interval(self, z: float = 3.0) -> tuple[float, float]:
        """``value -/+ error_bound``, or ``-/+ z`` standard errors for a Monte-Carlo estimate."""
        half = self.error_bound if self.error_bound is not None else z * float(self.standard_error or 0.0)
        return self.value - half, self.value + half

    def __str__(self) -> str:
        if self.error_bound is not None:
            return f"{self.value:.6g} ({self.method}, error <= {self.error_bound:.1e})"
        return f"{self.value:.6g} ({self.method}, standard error {self.standard_error:.1e})"


@runtime_checkable
class KnownDistribution(Protocol):
    """A joint distribution of inputs and labels whose class posterior is known exactly.

    Inputs are given as ``(N, *input_shape)`` arrays or tensors (flattened rows ``(N, D)`` work too); results
    are NumPy arrays.
    """

    num_classes: int
    input_shape: tuple[int, int, int]

    def posterior(self, x: Any) -> np.ndarray:
        """``p(y = k | x)``, shape ``(N, K)``; rows sum to 1."""
        ...

    def bayes_predict(self, x: Any) -> np.ndarray:
        """The Bayes classifier ``argmax_k p(y = k | x)``, shape ``(N,)`` int64."""
        ...

    def bayes_risk(self) -> BayesRisk:
        """``R* = P(bayes_predict(X) != Y)``."""
        ...

    def log_density(self, x: Any) -> np.ndarray:
        """``log p(x)`` of the inputs whatever their labels, shape ``(N,)``."""
        ...

    def sample(self, n: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``n`` independent draws ``(x (n, *input_shape) float64, y (n,) int64)``, deterministic per seed."""
        ...


def as_rows(x: Any, dim: int) -> np.ndarray:
    """Inputs ``(N, ...)`` (NumPy array or torch tensor, any device) as float64 rows ``(N, dim)``."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    rows = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(-1, dim)
    if rows.shape[1] != dim:
        raise ValueError(f"expected inputs with {dim} values each, got shape {x.shape}")
    return rows


def sample_blocks(n: int, seed: int | Sequence[int], draw: Callable[[np.random.Generator, int], Any]) -> list[Any]:
    """Call ``draw(rng, m)`` for consecutive blocks of ``m <= BLOCK`` examples, each with its own generator.

    Block ``b`` draws from ``SeedSequence(seed, spawn_key=(b,))``, and ``draw`` must take the random numbers of
    a whole block of ``BLOCK`` examples from it (and keep those of the first ``m``): then the first ``k`` examples
    of a sample are the same whatever ``n >= k`` is, so training sets of growing size are nested and any prefix
    is itself an independent sample.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    entropy = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    parts = []
    for b in range(math.ceil(n / BLOCK)):
        rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(b,)))
        parts.append(draw(rng, min(BLOCK, n - b * BLOCK)))
    return parts


def bayes_risk_monte_carlo(
    distribution: KnownDistribution, *, n: int = 200_000, seed: int | Sequence[int] = 0, chunk: int | None = None
) -> BayesRisk:
    """Estimate ``R* = E[1 - max_k p(k|X)]`` by averaging ``1 - max_k p(k|x_i)`` over ``n`` draws.

    Averaging the posterior's shortfall instead of the 0/1 loss of the Bayes classifier estimates the same
    number (the 0/1 loss has this conditional expectation given ``x``) with a smaller variance.

    Args:
        distribution: the distribution to sample and whose posterior to evaluate.
        n: number of draws.
        seed: seed of the draws.
        chunk: draws evaluated at a time, to bound memory; default about four million input values' worth.

    Returns:
        The estimate with its standard error ``std / sqrt(n)``.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    chunk = chunk or max(BLOCK, (1 << 22) // math.prod(distribution.input_shape) // BLOCK * BLOCK)
    total, total_sq, done = 0.0, 0.0, 0
    while done < n:
        m = min(chunk, n - done)
        # Each chunk draws from its own seed, marked so that it never repeats a dataset's split streams.
        x, _ = distribution.sample(m, seed=[*np.atleast_1d(seed).tolist(), _MONTE_CARLO, done])
        loss = 1.0 - distribution.posterior(x).max(axis=1)
        total, total_sq, done = total + loss.sum(), total_sq + (loss**2).sum(), done + m
    mean = total / n
    var = max(total_sq / n - mean**2, 0.0) * n / (n - 1)
    return BayesRisk(float(mean), None, math.sqrt(var / n), "monte-carlo")


class LabelNoise:
    """Symmetric label noise on a known distribution: each label is replaced, with probability ``rate``, by
    one of the other ``K - 1`` classes chosen uniformly (Angluin & Laird, 1988; Natarajan et al., 2013).

    The noisy posterior is affine in the clean one: with ``a = rate / (K - 1)`` and ``b = 1 - rate * K / (K - 1)``,

        p~(k|x) = (1 - rate) p(k|x) + a (1 - p(k|x)) = a + b p(k|x).

    The risk of any classifier ``h`` on noisy labels follows from its clean risk ``R(h)``: ``h`` is right on a
    noisy label if it was right and the label kept (probability ``(1 - R(h))(1 - rate)``) or it was wrong and the
    label was flipped to exactly ``h(x)`` (probability ``R(h) a``), so

        R~(h) = 1 - (1 - R(h))(1 - rate) - R(h) a = rate + b R(h).

    For ``rate <= (K - 1) / K`` the slope ``b`` is ``>= 0``, so the clean Bayes classifier stays optimal and

        R~* = rate + (1 - rate K / (K - 1)) R*,

    e.g. ``R~* = rate + (1 - 2 rate) R*`` for two classes; at ``rate = (K - 1) / K`` the labels carry no
    information and ``R~* = (K - 1) / K``.

    Args:
        base: the clean distribution.
        rate: probability that a label is replaced, in ``[0, (K - 1) / K]``.
    """

    def __init__(self, base: KnownDistribution, rate: float) -> None:
        k = base.num_classes
        if k < 2 or not 0.0 <= rate <= (k - 1) / k:
            raise ValueError(f"label noise rate must be in [0, {(k - 1) / k:g}] for {k} classes, got {rate}")
        self.base, self.rate = base, float(rate)
        self.num_classes, self.input_shape = k, base.input_shape
        self.class_names = list(getattr(base, "class_names", [str(i) for i in range(k)]))
        self._a = self.rate / (k - 1)
        self._b = 1.0 - self.rate * k / (k - 1)

    def posterior(self, x: Any) -> np.ndarray:
        return self._a + self._b * self.base.posterior(x)  # (N, K)

    def bayes_predict(self, x: Any) -> np.ndarray:
        return self.base.bayes_predict(x)

    def log_density(self, x: Any) -> np.ndarray:
        """``log p(x)`` of the base distribution: flipping labels leaves the inputs as they were."""
        return self.base.log_density(x)

    def bayes_risk(self) -> BayesRisk:
        r = self.base.bayes_risk()
        return BayesRisk(
            self.rate + self._b * r.value,
            None if r.error_bound is None else self._b * r.error_bound,
            None if r.standard_error is None else self._b * r.standard_error,
            r.method,
        )

    def sample(self, n: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.base.sample(n, seed)
        # The flips come from their own stream, so the inputs are exactly those of the clean sample.
        entropy = [*np.atleast_1d(seed).tolist(), _LABEL_FLIPS]
        k = self.num_classes

        def draw(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
            return rng.random(BLOCK)[:m] < self.rate, rng.integers(1, k, BLOCK)[:m]

        parts = sample_blocks(n, entropy, draw)
        if parts:
            flip = np.concatenate([p[0] for p in parts])
            shift = np.concatenate([p[1] for p in parts])
            y = np.where(flip, (y + shift) % k, y)  # y + shift mod K is uniform over the other K - 1 classes
        return x, y


@dataclass(frozen=True)
class DecisionGrid:
    """Bayes decisions on a regular grid of the plane, laid out for ``imshow(origin="lower", extent=extent)``.

    Attributes:
        x: ``(n,)`` centres of the grid's columns.
        y: ``(n,)`` centres of the grid's rows.
        predict: ``(n, n)`` Bayes class at ``(x[j], y[i])`` in row ``i``, column ``j``.
        posterior: ``(n, n, K)`` class posterior there.
        extent: ``(x_min, x_max, y_min, y_max)`` of the grid.
    """

    x: np.ndarray
    y: np.ndarray
    predict: np.ndarray
    posterior: np.ndarray
    extent: tuple[float, float, float, float]


def decision_grid(
    distribution: KnownDistribution, extent: tuple[float, float, float, float], n: int = 200
) -> DecisionGrid:
    """The Bayes classifier and posterior of a distribution on two inputs, on an ``n x n`` grid of cell centres.

    Args:
        distribution: a known distribution whose inputs hold two values.
        extent: ``(x_min, x_max, y_min, y_max)``.
        n: cells per side.

    Example:
        >>> from lineup.data.synthetic import two_gaussians
        >>> g = decision_grid(two_gaussians(separation=2.0), (-2.0, 2.0, -1.0, 1.0), n=4)
        >>> g.x.tolist(), g.predict.tolist()  # the boundary is the vertical axis
        ([-1.5, -0.5, 0.5, 1.5], [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    """
    if int(np.prod(distribution.input_shape)) != 2:
        raise ValueError(f"decision_grid needs inputs of two values, got shape {distribution.input_shape}")
    x_min, x_max, y_min, y_max = (float(e) for e in extent)
    if not (x_max > x_min and y_max > y_min and n >= 1):
        raise ValueError(f"extent must be (x_min, x_max, y_min, y_max) with min < max and n >= 1, got {extent}, {n}")
    xs = x_min + (np.arange(n) + 0.5) * (x_max - x_min) / n
    ys = y_min + (np.arange(n) + 0.5) * (y_max - y_min) / n
    gx, gy = np.meshgrid(xs, ys)  # (n, n): row i is y[i]
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (n*n, 2)
    post = distribution.posterior(points)
    return DecisionGrid(
        x=xs,
        y=ys,
        predict=post.argmax(axis=1).reshape(n, n),
        posterior=post.reshape(n, n, -1),
        extent=(x_min, x_max, y_min, y_max),
    )
