"""Classes drawn from Gaussian mixtures, with their exact posterior, Bayes classifier and Bayes risk.

Class ``k`` has prior ``pi_k`` and density ``p_k(x) = sum_m w_km N(x; mu_km, Sigma_km)``. Everything the
protocol needs follows from the joint log-density ``log pi_k + log p_k(x)`` (log-sum-exp over components, so
no density underflows): the posterior is its softmax over ``k`` and the Bayes classifier its argmax. The Bayes
risk ``R* = 1 - integral of max_k pi_k p_k(x) dx`` is computed, not sampled, wherever that is possible
(``GaussianMixture.bayes_risk`` says how). The presets at the end build the classic two-dimensional problems:
two overlapping Gaussians, XOR blobs, concentric rings, two moons and K-armed spirals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lineup.data.synthetic._distribution import BLOCK, BayesRisk, as_rows, bayes_risk_monte_carlo, sample_blocks
from lineup.data.synthetic._quadrature import integrate_box

_MAX_FEATURE_DIM = 32  # full covariances up to this dimension are evaluated through quadratic features
_CHUNK_VALUES = 1 << 22  # input values processed at a time
#: Bound on the floating-point error of the closed forms (``ndtr`` is accurate to about 1e-16).
CLOSED_FORM_ERROR = 1e-12


class GaussianMixture:
    """A labelled distribution whose classes are mixtures of Gaussians.

    Args:
        priors: ``(K,)`` class probabilities; they must sum to 1.
        labels: ``(M,)`` class of each component; every class needs at least one.
        weights: ``(M,)`` positive weights of the components within their class (normalised per class).
        means: ``(M, D)`` component means.
        covariances: ``(M, D, D)`` symmetric positive-definite covariances, or ``(M, D)`` variances of
            diagonal covariances (cheap in high dimension, as for images).
        input_shape: ``(C, H, W)`` of one input, with ``C * H * W = D``; default ``(1, 1, D)``.
        class_names: one name per class; default ``"0" .. "K-1"``.
    """

    def __init__(
        self,
        priors: Sequence[float] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        weights: Sequence[float] | np.ndarray,
        means: Sequence[Sequence[float]] | np.ndarray,
        covariances: Any,
        *,
        input_shape: tuple[int, int, int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        priors = np.asarray(priors, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        means = np.atleast_2d(np.asarray(means, dtype=np.float64))
        cov = np.asarray(covariances, dtype=np.float64)
        k, (m, d) = len(priors), means.shape
        if priors.ndim != 1 or k < 1 or (priors < 0).any() or abs(priors.sum() - 1.0) > 1e-9:
            raise ValueError(f"priors must be K >= 1 probabilities that sum to 1, got {priors.tolist()}")
        if labels.shape != (m,) or weights.shape != (m,):
            raise ValueError(f"labels and weights need one entry per component ({m}), got {labels.shape}, "
                             f"{weights.shape}")
        if labels.min() < 0 or labels.max() >= k or len(np.unique(labels)) != k:
            raise ValueError(f"every class 0..{k - 1} needs a component, and only those; labels {labels.tolist()}")
        if (weights <= 0).any():
            raise ValueError(f"component weights must be positive, got {weights.tolist()}")
        if cov.shape == (m, d):
            if (cov <= 0).any():
                raise ValueError("diagonal covariances must be positive")
        elif cov.shape == (m, d, d):
            if not np.allclose(cov, cov.transpose(0, 2, 1)):
                raise ValueError("covariances must be symmetric")
            try:
                np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                raise ValueError("covariances must be positive definite") from None
        else:
            raise ValueError(f"covariances must be ({m}, {d}, {d}) or ({m}, {d}), got {cov.shape}")
        self.priors = priors / priors.sum()
        self.labels = labels
        self.weights = weights / np.bincount(labels, weights=weights, minlength=k)[labels]
        self.means = means
        self.covariances = cov
        self.num_classes, self.dim = k, d
        self.input_shape = input_shape or (1, 1, d)
        if math.prod(self.input_shape) != d:
            raise ValueError(f"input_shape {self.input_shape} does not hold {d} values")
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
        if len(self.class_names) != k:
            raise ValueError(f"{len(self.class_names)} class names for {k} classes")
        for a in (self.priors, self.labels, self.weights, self.means, self.covariances):
            a.flags.writeable = False

    @property
    def diagonal(self) -> bool:
        """Whether the covariances are diagonal (stored as variances)."""
        return self.covariances.ndim == 2

    @property
    def component_probs(self) -> np.ndarray:
        """``(M,)`` probability that a draw comes from each component: ``pi_label * w``."""
        return self.priors[self.labels] * self.weights

    def _replace(self, **changes: Any) -> GaussianMixture:
        args = dict(priors=self.priors, labels=self.labels, weights=self.weights, means=self.means,
                    covariances=self.covariances, input_shape=self.input_shape, class_names=self.class_names)
        return GaussianMixture(**{**args, **changes})

    # ------------------------------------------------------------------ distortions with a known effect

    def with_priors(self, priors: Sequence[float]) -> GaussianMixture:
        """The same classes with other priors (class imbalance); the Bayes rule and ``R*`` change with them."""
        if len(priors) != self.num_classes:
            raise ValueError(f"{len(priors)} priors for {self.num_classes} classes")
        return self._replace(priors=np.asarray(priors, dtype=np.float64))

    def select_classes(self, classes: Sequence[int]) -> GaussianMixture:
        """The distribution conditioned on ``y`` in ``classes``, relabelled ``0..k-1`` in the order given."""
        classes = [int(c) for c in classes]
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c < self.num_classes for c in classes):
            raise ValueError(f"classes must be distinct labels in 0..{self.num_classes - 1}, got {classes}")
        new_label = {c: i for i, c in enumerate(classes)}
        keep = np.isin(self.labels, classes)
        priors = self.priors[classes]
        return self._replace(
            priors=priors / priors.sum(),
            labels=np.array([new_label[int(c)] for c in self.labels[keep]]),
            weights=self.weights[keep],
            means=self.means[keep],
            covariances=self.covariances[keep],
            class_names=[self.class_names[c] for c in classes],
        )

    def with_mean_scale(self, scale: float) -> GaussianMixture:
        """Every mean multiplied by ``scale``: below 1 the classes overlap more (Mahalanobis distances shrink)."""
        return self._replace(means=self.means * scale)

    def with_input_noise(self, std: float) -> GaussianMixture:
        """The law of ``x + std * e``, ``e ~ N(0, I)`` independent of ``x``: every covariance gains ``std^2 I``."""
        if self.diagonal:
            return self._replace(covariances=self.covariances + std**2)
        return self._replace(covariances=self.covariances + std**2 * np.eye(self.dim))

    # ------------------------------------------------------------------ densities and decisions

    @functools.cached_property
    def _quadratic(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(A (F, M), log det Sigma (M,))`` with ``(x - mu_m)' Sigma_m^-1 (x - mu_m) = features(x) @ A[:, m]``.

        The features are ``(x_i^2, x, 1)`` for diagonal covariances and ``(x_i x_j for i <= j, x, 1)`` for full
        ones, so all components cost one matrix product; ``None`` for full covariances in high dimension,
        where the features would outgrow the inputs.
        """
        mu = self.means
        if self.diagonal:
            prec = 1.0 / self.covariances  # (M, D)
            a = np.vstack([prec.T, -2.0 * (mu * prec).T, (mu**2 * prec).sum(axis=1)[None]])
            return a, np.log(self.covariances).sum(axis=1)
        if self.dim > _MAX_FEATURE_DIM:
            return None
        prec = np.linalg.inv(self.covariances)  # (M, D, D)
        i, j = np.triu_indices(self.dim)
        pairs = prec[:, i, j] * np.where(i == j, 1.0, 2.0)  # (M, F2): off-diagonal terms appear twice
        lin = -2.0 * np.einsum("mij,mj->mi", prec, mu)
        const = np.einsum("mi,mij,mj->m", mu, prec, mu)
        return np.vstack([pairs.T, lin.T, const[None]]), np.linalg.slogdet(self.covariances)[1]

    def component_log_density(self, x: Any) -> np.ndarray:
        """``log N(x; mu_m, Sigma_m)`` for every component, shape ``(N, M)``."""
        rows = as_rows(x, self.dim)  # (N, D)
        # In chunks of rows, so that the features of image-sized inputs stay within tens of megabytes.
        step = max(1024, _CHUNK_VALUES // (2 * self.dim + 1))
        if len(rows) > step:
            return np.concatenate([self.component_log_density(rows[i : i + step]) for i in range(0, len(rows), step)])
        quadratic = self._quadratic
        if quadratic is None:
            chol = np.linalg.cholesky(self.covariances)
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            quad = np.stack([(np.linalg.solve(c, (rows - m).T) ** 2).sum(axis=0)
                             for m, c in zip(self.means, chol, strict=True)], axis=1)
        else:
            a, logdet = quadratic
            if self.diagonal:
                features = np.hstack([rows**2, rows, np.ones((len(rows), 1))])
            else:
                i, j = np.triu_indices(self.dim)
                features = np.hstack([rows[:, i] * rows[:, j], rows, np.ones((len(rows), 1))])
            # The expanded square can come out a little below an exact 0 by rounding.
            quad = np.maximum(features @ a, 0.0)  # (N, M)
        return -0.5 * (quad + logdet + self.dim * math.log(2.0 * math.pi))

    def log_joint(self, x: Any) -> np.ndarray:
        """``log pi_k + log p_k(x)``, shape ``(N, K)``."""
        comp = self.component_log_density(x) + np.log(self.component_probs)  # (N, M)
        if len(self.labels) == self.num_classes:
            return comp[:, np.argsort(self.labels)]
        out = np.empty((comp.shape[0], self.num_classes))
        for k in range(self.num_classes):
            out[:, k] = _logsumexp(comp[:, self.labels == k])
        return out

    def log_density(self, x: Any) -> np.ndarray:
        """``log p(x) = log sum_k pi_k p_k(x)``, shape ``(N,)``: the density of the inputs, whatever their labels."""
        return _logsumexp(self.log_joint(x))

    def posterior(self, x: Any) -> np.ndarray:
        """``p(y = k | x)``, shape ``(N, K)``: the softmax of ``log_joint``."""
        lj = self.log_joint(x)
        return np.exp(lj - _logsumexp(lj)[:, None])

    def bayes_predict(self, x: Any) -> np.ndarray:
        """``argmax_k pi_k p_k(x)``, shape ``(N,)`` int64 (ties go to the lower label)."""
        return self.log_joint(x).argmax(axis=1).astype(np.int64)

    def sample(self, n: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws ``(x (n, C, H, W) float64, y (n,) int64)``; a prefix of any larger sample with this seed."""
        probs = self.component_probs
        scale = np.sqrt(self.covariances) if self.diagonal else np.linalg.cholesky(self.covariances)

        def draw(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
            comp = rng.choice(len(probs), size=BLOCK, p=probs)[:m]
            z = rng.standard_normal((BLOCK, self.dim))[:m]
            if self.diagonal:
                x = self.means[comp] + scale[comp] * z
            else:
                x = self.means[comp] + np.einsum("nij,nj->ni", scale[comp], z)
            return x, self.labels[comp]

        parts = sample_blocks(n, seed, draw)
        x = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, self.dim))
        y = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, dtype=np.int64)
        return x.reshape(n, *self.input_shape), y

    # ------------------------------------------------------------------ the Bayes risk

    def bayes_risk(self) -> BayesRisk:
        """``R* = P(bayes_predict(X) != Y)``, computed once per mixture.

        How, in order of preference:

        1. one Gaussian per class with one shared covariance: the problem reduces exactly to identity covariance
           on the affine span of the whitened means (``shared_covariance_reduction``); two classes then have the
           closed form of ``two_gaussian_bayes_risk``, and the reduced problem is what steps 2 and 3 work on;
        2. inputs of one or two values: ``bayes_risk_quadrature``, with an error bound;
        3. otherwise: ``bayes_risk_monte_carlo`` with its standard error: 1,000,000 draws of a reduced problem,
           200,000 of any other (seed 0).
        """
        return self._bayes_risk

    @functools.cached_property
    def _bayes_risk(self) -> BayesRisk:
        mixture = self
        reduced = shared_covariance_reduction(self)
        if reduced is not None:
            priors, coords = reduced
            if coords.shape[1] == 0:
                return BayesRisk(1.0 - float(priors.max()), CLOSED_FORM_ERROR, None, "closed-form")
            if self.num_classes == 2:
                delta = float(np.linalg.norm(coords[1] - coords[0]))
                return BayesRisk(two_gaussian_bayes_risk(delta, priors), CLOSED_FORM_ERROR, None, "closed-form")
            # The same risk in r <= K - 1 dimensions: on the plane for three classes, cheap to sample for more.
            k = self.num_classes
            mixture = GaussianMixture(priors, np.arange(k), np.ones(k), coords, np.ones_like(coords))
        if mixture.dim == 1:
            # An independent standard-normal second input changes no decision, so R* is that of the plane.
            cov = mixture.covariances.reshape(-1, 1)
            mixture = GaussianMixture(
                mixture.priors, mixture.labels, mixture.weights, np.hstack([mixture.means, np.zeros_like(cov)]),
                np.hstack([cov, np.ones_like(cov)]),
            )
        if mixture.dim == 2:
            return bayes_risk_quadrature(mixture)
        # A reduced problem has few dimensions, so five times the draws cost less than the full problem's.
        return bayes_risk_monte_carlo(mixture, n=1_000_000 if reduced is not None else 200_000)


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """``log sum_j exp(a[:, j])``, shape ``(N,)``, without overflow (an all ``-inf`` row gives ``-inf``)."""
    top = a.max(axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.exp(a - safe[:, None]).sum(axis=1)) + safe


def two_gaussian_bayes_risk(delta: float, priors: Sequence[float] = (0.5, 0.5)) -> float:
    """Bayes risk of two Gaussian classes with a shared covariance, at Mahalanobis distance ``delta``.

    Derivation. With ``x ~ N(mu_y, Sigma)`` and priors ``pi_0, pi_1``, the Bayes rule says 1 when the log
    posterior ratio

        lambda(x) = (mu_1 - mu_0)' Sigma^-1 x - (mu_1' Sigma^-1 mu_1 - mu_0' Sigma^-1 mu_0) / 2 + log(pi_1 / pi_0)

    is positive. ``lambda`` is affine in ``x``, so it is Gaussian under each class, with variance
    ``(mu_1 - mu_0)' Sigma^-1 (mu_1 - mu_0) = delta^2`` and means ``-delta^2 / 2 + l`` (class 0) and
    ``delta^2 / 2 + l`` (class 1), where ``l = log(pi_1 / pi_0)``. Hence

        P(error | y = 0) = P(lambda > 0 | y = 0) = Phi((-delta^2 / 2 + l) / delta)
        P(error | y = 1) = P(lambda < 0 | y = 1) = Phi((-delta^2 / 2 - l) / delta)
        R* = pi_0 Phi(-delta / 2 - log(pi_0 / pi_1) / delta) + pi_1 Phi(-delta / 2 + log(pi_0 / pi_1) / delta).

    (Each class's error term carries the log prior ratio with the sign that favours the more likely class:
    ``pi_0 Phi((-delta^2 / 2 + log(pi_0 / pi_1)) / delta)`` would put it the wrong way round.)

    With equal priors ``R* = Phi(-delta / 2)``; for ``N(-mu, I)`` against ``N(mu, I)``, ``delta = 2 |mu|`` and
    ``R* = Phi(-|mu|)``. The more likely class is wrong less often; as ``delta -> 0``, ``R* -> min(pi_0, pi_1)``
    (the rule always says the more likely class). See Duda, Hart and Stork, *Pattern Classification*, 2nd ed.,
    section 2.8.3.

    Args:
        delta: ``sqrt((mu_1 - mu_0)' Sigma^-1 (mu_1 - mu_0))``, >= 0.
        priors: ``(pi_0, pi_1)``.

    Example:
        >>> round(two_gaussian_bayes_risk(2.0), 6)  # Phi(-1)
        0.158655
    """
    from scipy.special import ndtr  # scipy on first use: a study on real data never computes a Bayes risk

    p0, p1 = (float(p) for p in priors)
    if delta < 0 or min(p0, p1) < 0 or abs(p0 + p1 - 1.0) > 1e-9:
        raise ValueError(f"need delta >= 0 and two priors summing to 1, got {delta}, {priors}")
    if min(p0, p1) == 0.0:
        return 0.0
    if delta == 0.0:
        return min(p0, p1)
    log_ratio = math.log(p0 / p1)
    return float(p0 * ndtr(-delta / 2 - log_ratio / delta) + p1 * ndtr(-delta / 2 + log_ratio / delta))


def shared_covariance_reduction(mixture: GaussianMixture) -> tuple[np.ndarray, np.ndarray] | None:
    """Reduce one-Gaussian-per-class with a shared covariance to identity covariance in ``r <= K - 1`` dimensions.

    With ``z = Sigma^-1/2 x`` the classes are ``N(m_k, I)`` with ``m_k = Sigma^-1/2 mu_k``. Write ``z`` in an
    orthonormal basis of the affine span of the ``m_k`` (dimension ``r``) and its complement: the complement
    coordinates are standard normal under every class, so they cancel from every posterior ratio, and the
    problem, its decisions and its risk are those of ``N(c_k, I_r)`` where ``c_k`` are the span coordinates.

    Returns:
        ``(priors (K,), c (K, r))``, or ``None`` when the mixture is not of that kind.
    """
    if len(mixture.labels) != mixture.num_classes or not (mixture.covariances == mixture.covariances[0]).all():
        return None
    order = np.argsort(mixture.labels)  # component of class 0, 1, ...
    means, cov = mixture.means[order], mixture.covariances[0]
    white = means / np.sqrt(cov) if mixture.diagonal else np.linalg.solve(np.linalg.cholesky(cov), means.T).T
    diffs = white[1:] - white[0]  # (K-1, D)
    if diffs.size == 0:
        return mixture.priors, np.zeros((1, 0))
    _, s, vt = np.linalg.svd(diffs, full_matrices=False)
    rank = int((s > 1e-12 * max(s.max(), 1.0)).sum())
    coords = np.vstack([np.zeros((1, diffs.shape[1])), diffs]) @ vt[:rank].T  # (K, r)
    return mixture.priors, coords


def bayes_risk_quadrature(mixture: GaussianMixture, *, tol: float = 1e-7, tail: float = 1e-10) -> BayesRisk:
    """``R*`` of a mixture on the plane by adaptive cubature, with a bound on its error.

    ``R* = integral of g``, with ``g(x) = sum_k pi_k p_k(x) - max_k pi_k p_k(x)`` (the mass of the classes the
    Bayes rule does not pick), ``0 <= g <= p``. The integral is taken over a box ``B`` that holds every
    component to ``z`` standard deviations along each axis, ``z = -Phi^-1(tail / 4)``; the mass outside it is at
    most, by a union bound over the four sides and the exact Gaussian marginal tails,

        eps = sum_m pi_m w_m sum_i [Phi((a_i - mu_mi) / s_mi) + Phi((mu_mi - b_i) / s_mi)] <= tail,

    where ``[a_i, b_i]`` are the box's sides and ``s_mi^2 = Sigma_m[i, i]``. Since ``0 <= g <= p``, ``R*`` lies in
    ``[Q_B, Q_B + eps]`` up to the quadrature error of ``Q_B``, which ``integrate_box`` estimates by refinement to
    ``tol``. The bound returned is ``eps`` plus that estimate.

    Args:
        mixture: a mixture with two input values.
        tol: target of the quadrature error estimate.
        tail: target of the truncated mass.
    """
    from scipy.special import ndtr, ndtri  # see two_gaussian_bayes_risk

    if mixture.dim != 2:
        raise ValueError(f"quadrature needs inputs of two values, got {mixture.dim}")
    probs, means = mixture.component_probs, mixture.means
    var = mixture.covariances if mixture.diagonal else np.diagonal(mixture.covariances, axis1=1, axis2=2)
    std = np.sqrt(var)  # (M, 2)
    z = -float(ndtri(tail / 4))
    lower, upper = (means - z * std).min(axis=0), (means + z * std).max(axis=0)
    eps = float((probs[:, None] * (ndtr((lower - means) / std) + ndtr((means - upper) / std))).sum())
    # Initial cells no wider than the narrowest component, so no component hides between quadrature points.
    eig = var if mixture.diagonal else np.linalg.eigvalsh(mixture.covariances)
    cell = max(min(float(np.sqrt(eig.min())), float((upper - lower).max()) / 8), float((upper - lower).max()) / 400)
    cells = np.ceil((upper - lower) / cell).astype(int)
    corner = (lower + upper) / 2 - cells * cell / 2  # the grid covers the box, centred on it

    def g(points: np.ndarray) -> np.ndarray:
        q = np.exp(mixture.log_joint(points))  # (P, K)
        # The sum of all but the largest term, added directly rather than as sum - max, which would cancel.
        return np.sort(q, axis=1)[:, :-1].sum(axis=1)

    value, quad_error = integrate_box(g, (float(corner[0]), float(corner[1])), (int(cells[0]), int(cells[1])),
                                      cell, tol=tol)
    return BayesRisk(value, quad_error + eps, None, "quadrature")


# ---------------------------------------------------------------------- presets on the plane


def _isotropic(means: np.ndarray, spread: float) -> np.ndarray:
    return np.repeat((spread**2 * np.eye(2))[None], len(means), axis=0)


def _uniform(num_classes: int, priors: Sequence[float] | None) -> np.ndarray:
    return np.full(num_classes, 1.0 / num_classes) if priors is None else np.asarray(priors, dtype=np.float64)


def two_gaussians(
    separation: float = 2.0,
    covariance: Sequence[Sequence[float]] | None = None,
    priors: Sequence[float] | None = None,
) -> GaussianMixture:
    """Two Gaussians with a shared covariance whose means are ``separation`` apart in Mahalanobis distance.

    The means are ``-/+ (separation / 2) L e_1`` with ``L L' = Sigma``, so the optimal boundary is linear and
    ``R* = Phi(-separation / 2)`` for equal priors.

    Args:
        separation: Mahalanobis distance ``delta`` between the means.
        covariance: the shared 2x2 covariance; default the identity.
        priors: ``(pi_0, pi_1)``; default equal.
    """
    cov = np.eye(2) if covariance is None else np.asarray(covariance, dtype=np.float64)
    if cov.shape != (2, 2):
        raise ValueError(f"covariance must be 2x2, got shape {cov.shape}")
    direction = np.linalg.cholesky(cov)[:, 0]
    means = np.stack([-separation / 2 * direction, separation / 2 * direction])
    return GaussianMixture(_uniform(2, priors), [0, 1], [1.0, 1.0], means, np.stack([cov, cov]))


def xor_blobs(
    separation: float = 3.0,
    spread: float = 1.0,
    weights: Sequence[float] = (0.5, 0.5),
    priors: Sequence[float] | None = None,
) -> GaussianMixture:
    """Four isotropic blobs at the corners of a square, opposite corners in the same class (the XOR problem).

    Class 0 has blobs at ``(s, s)`` and ``(-s, -s)``, class 1 at ``(s, -s)`` and ``(-s, s)``, ``s = separation / 2``,
    so blobs of different classes are ``separation`` apart; no linear rule beats the larger prior.

    Args:
        separation: distance between neighbouring blobs (of different classes).
        spread: standard deviation of every blob.
        weights: the weights of the first and second blob of each class.
        priors: ``(pi_0, pi_1)``; default equal.
    """
    if len(weights) != 2:
        raise ValueError(f"weights must be two numbers, one per blob of a class, got {list(weights)}")
    s = separation / 2
    means = np.array([[s, s], [-s, -s], [s, -s], [-s, s]])
    return GaussianMixture(_uniform(2, priors), [0, 0, 1, 1], [*weights, *weights], means, _isotropic(means, spread))


def rings(
    num_classes: int = 2,
    spacing: float = 2.0,
    blobs: int = 8,
    spread: float = 0.5,
    priors: Sequence[float] | None = None,
) -> GaussianMixture:
    """Concentric classes: class 0 a blob at the origin, class ``k >= 1`` a ring of ``k * blobs`` blobs of radius
    ``k * spacing`` (evenly spaced in angle, so blobs on every ring are about equally far apart).

    Args:
        num_classes: number of classes (the centre and ``num_classes - 1`` rings).
        spacing: difference of radius between consecutive rings.
        blobs: blobs on the first ring.
        spread: standard deviation of every blob.
        priors: class probabilities; default equal.
    """
    means, labels = [np.zeros(2)], [0]
    for k in range(1, num_classes):
        angles = 2 * np.pi * np.arange(k * blobs) / (k * blobs)
        means += list(k * spacing * np.stack([np.cos(angles), np.sin(angles)], axis=1))
        labels += [k] * (k * blobs)
    m = np.array(means)
    return GaussianMixture(_uniform(num_classes, priors), labels, np.ones(len(m)), m, _isotropic(m, spread))


def moons(blobs: int = 8, spread: float = 0.2, priors: Sequence[float] | None = None) -> GaussianMixture:
    """Two interleaving half circles of blobs, the shape of scikit-learn's ``make_moons``.

    Class 0's blobs sit at ``(cos t, sin t)``, class 1's at ``(1 - cos t, 1/2 - sin t)``, for ``blobs`` values of
    ``t`` evenly spaced on ``[0, pi]``.

    Args:
        blobs: blobs per moon.
        spread: standard deviation of every blob.
        priors: ``(pi_0, pi_1)``; default equal.
    """
    t = np.linspace(0.0, np.pi, blobs)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    m = np.vstack([upper, lower])
    return GaussianMixture(_uniform(2, priors), [0] * blobs + [1] * blobs, np.ones(2 * blobs), m, _isotropic(m, spread))


def spirals(
    num_classes: int = 3,
    blobs: int = 10,
    turns: float = 0.75,
    radius: float = 4.0,
    spread: float = 0.3,
    priors: Sequence[float] | None = None,
) -> GaussianMixture:
    """``num_classes`` interleaved spiral arms of blobs.

    Blob ``j = 0 .. blobs-1`` of class ``k`` sits at radius ``radius (j + 1) / blobs`` and angle
    ``2 pi (turns j / blobs + k / num_classes)``.

    Args:
        num_classes: number of arms, one per class.
        blobs: blobs per arm.
        turns: how many turns an arm makes.
        radius: radius of the outermost blobs.
        spread: standard deviation of every blob.
        priors: class probabilities; default equal.
    """
    j = np.arange(blobs)
    means, labels = [], []
    for k in range(num_classes):
        angle = 2 * np.pi * (turns * j / blobs + k / num_classes)
        r = radius * (j + 1) / blobs
        means.append(np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1))
        labels += [k] * blobs
    m = np.vstack(means)
    return GaussianMixture(_uniform(num_classes, priors), labels, np.ones(len(m)), m, _isotropic(m, spread))
