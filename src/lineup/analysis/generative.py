"""How good a generative model is: its likelihood against a known density, and distances between samples.

- ``iwae_log_likelihood``: the importance-weighted lower bound on ``log p_model(x)`` of a VAE (Burda, Grosse &
  Salakhutdinov, 2015, arXiv:1509.00519), at several ``k`` from one set of draws with ``iwae_log_likelihoods``,
  and ``kl_to_true_density``, which turns it into an upper bound on ``KL(p_true || p_model)`` when the data come
  from a distribution whose density is known (lineup's Gaussian mixtures: ``GaussianMixture.log_joint`` gives
  ``log p_true(x, y)``, whose log-sum-exp over ``y`` is ``log p_true(x)``).
- ``frechet_distance``: the Fréchet distance between Gaussians fitted to two sets of features (Dowson & Landau,
  1982), which is the FID of Heusel et al. (2017, arXiv:1706.08500) when the features are Inception-v3's. lineup
  has no Inception network (it cannot download weights); the features to use are those of a classifier lineup
  trains on the same dataset (``forward_features`` of the study's best model), which makes the number comparable
  between models of one study, not with published FIDs.
- ``sliced_wasserstein``: the sliced Wasserstein distance between two samples of flattened images (Rabin et al.,
  2011; Bonneel et al., 2015), exact in every random direction via ``wasserstein_1d``.

Conventions: arrays are NumPy, rows are examples; distances are lower-is-better. ``iwae_log_likelihood`` takes a
model and tensors and returns a tensor, because it runs the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from lineup.models.vae import log_normal

# ------------------------------------------------------------------------------------------------------------
# Likelihood


class LatentVariableModel(Protocol):
    """A model ``p(x) = ∫ p(x|z) N(z; 0, I) dz`` with a Gaussian ``q(z|x)``: what ``lineup.models.vae.VAE`` offers."""

    latent_dim: int

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z|x)``, each ``(N, latent_dim)``."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The parameters of ``p(x|z)`` for ``(N, latent_dim)`` codes, in whatever form ``log_likelihood`` reads."""
        ...

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` per example, ``(N,)``."""
        ...


@torch.no_grad()
def iwae_log_likelihood(
    model: LatentVariableModel, x: torch.Tensor, *, k: int, generator: torch.Generator | None = None,
    chunk: int = 64,
) -> torch.Tensor:
    """The importance-weighted lower bound on ``log p_model(x)`` of each example, ``(N,)``, in nats.

    Burda et al. (2015, equation 8): with ``z_1 .. z_k ~ q(z|x)`` and weights ``w_i = p(x|z_i) p(z_i) / q(z_i|x)``,

        L_k(x) = log (1/k) sum_i w_i,    E[L_1] = ELBO <= E[L_k] <= E[L_{k+1}] -> log p(x)  as k -> infinity,

    so a larger ``k`` gives a tighter bound (their Theorem 1), and ``k = 1`` is the ELBO. What is returned is one
    draw of ``L_k(x)`` per example, computed in log space (log-sum-exp, no weight underflows). The model is run
    in eval mode (batch norm from its running statistics), which is restored afterwards.

    Args:
        model: a latent-variable model (e.g. ``lineup.models.vae.DenseVAE`` with a Gaussian decoder for points of
            the plane).
        x: inputs ``(N, ...)`` on the model's device.
        k: importance samples per example.
        generator: the random stream of the ``z_i``, on the model's device; fix it to compare models or ``k`` on
            the same draws.
        chunk: importance samples decoded at a time (memory grows as ``chunk * N``).
    """
    return iwae_log_likelihoods(model, x, ks=(k,), generator=generator, chunk=chunk)[k]


@torch.no_grad()
def iwae_log_likelihoods(
    model: LatentVariableModel, x: torch.Tensor, *, ks: Sequence[int], generator: torch.Generator | None = None,
    chunk: int = 64,
) -> dict[int, torch.Tensor]:
    """``iwae_log_likelihood`` at every ``k`` of ``ks`` from one set of ``max(ks)`` draws: ``{k: (N,)}``.

    The bound at ``k`` is computed from the first ``k`` draws, so the whole set costs ``max(ks)`` decodes per
    example instead of ``sum(ks)``. Each is still one unbiased draw of ``L_k``; the bounds at different ``k`` are
    correlated (they share draws), which is what comparing them on the same draws asks for.
    """
    ks = sorted(set(ks))
    if not ks or ks[0] < 1 or chunk < 1:
        raise ValueError(f"every k and chunk must be positive, got ks={ks}, chunk={chunk}")
    modes = {m: m.training for m in model.modules()} if isinstance(model, nn.Module) else {}
    if isinstance(model, nn.Module):
        model.eval()
    try:
        mu, logvar = model.encode(x)  # (N, D)
        std = torch.exp(0.5 * logvar)
        total = torch.full((len(x),), -math.inf, dtype=mu.dtype, device=mu.device)
        bounds: dict[int, torch.Tensor] = {}
        done = 0
        for k in ks:
            while done < k:
                m = min(chunk, k - done)  # chunks end at every k, so its bound is read off the running total
                eps = torch.randn((m, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
                z = mu + std * eps  # (m, N, D)
                # log q(z|x) from eps directly: (z - mu)^2 / var = eps^2 exactly.
                log_q = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(dim=-1)  # (m, N)
                log_prior = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))  # (m, N)
                decoded = model.decode(z.reshape(m * len(x), -1))
                x_rep = x.unsqueeze(0).expand(m, *x.shape).reshape(m * len(x), *x.shape[1:])
                log_px = model.log_likelihood(x_rep, decoded).reshape(m, len(x))
                total = torch.logaddexp(total, torch.logsumexp(log_px + log_prior - log_q, dim=0))
                done += m
            bounds[k] = total - math.log(k)
        return bounds
    finally:
        for module, training in modes.items():
            module.train(training)


@dataclass(frozen=True)
class KLEstimate:
    """A Monte-Carlo estimate of ``KL(p_true || p_model)`` in nats.

    Attributes:
        value: the estimate; an upper bound in expectation when ``log p_model`` is a lower bound (IWAE).
        standard_error: its standard error over the examples (which includes the importance sampling noise).
        k: importance samples behind each ``log p_model(x)`` (0 when it was exact).
        n: examples.
    """

    value: float
    standard_error: float
    k: int
    n: int


def kl_to_true_density(log_p_true: np.ndarray, log_p_model: np.ndarray, *, k: int = 0) -> KLEstimate:
    """``KL(p_true || p_model) = E_p_true[log p_true(x) - log p_model(x)]`` from ``x_1 .. x_n ~ p_true``.

    The mean of ``log p_true(x_i) - log p_model(x_i)`` is unbiased for the KL when both densities are exact. With
    ``log p_model`` replaced by the IWAE bound ``L_k(x) <= log p_model(x)`` (in expectation) it estimates
    ``KL + E[log p_model(x) - L_k(x)]``: an upper bound on the KL, tighter as ``k`` grows. An estimate below 0 beyond
    its standard error therefore means a bug, not a good model.

    Args:
        log_p_true: ``(n,)`` exact log-densities of the samples under the distribution they were drawn from.
        log_p_model: ``(n,)`` the model's log-densities of the same samples, or lower bounds on them.
        k: importance samples behind ``log_p_model``, recorded with the estimate (0: exact).

    >>> r = kl_to_true_density(np.array([-1.0, -2.0, -3.0]), np.array([-1.5, -2.5, -3.5]), k=10)
    >>> r.value, r.standard_error, r.k
    (0.5, 0.0, 10)
    """
    a, b = np.asarray(log_p_true, dtype=np.float64), np.asarray(log_p_model, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(f"log_p_true and log_p_model must be 1-D, of equal length >= 2, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("log-densities must be finite")
    d = a - b
    return KLEstimate(float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size)), int(k), int(d.size))


def isotropic_gaussian_log_density(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log N(x; m, s^2 I)`` of each row of ``x`` ``(N, D)``, with ``m`` and ``s^2`` the maximum-likelihood mean and
    variance of the rows of ``train`` (``s^2``: the mean over values of each value's variance, ``ddof = 0``).

    It is the best density a VAE with a Gaussian decoder of one scale reaches once its posterior has collapsed: its
    decoder then ignores ``z``, so the model is ``N(c, sigma^2 I)`` for a constant ``c`` (Bowman et al., 2016). It
    has ``D + 1`` parameters, so on a sample of ``n`` points its estimation error is about ``(D + 1) / (2 n)`` nats.

    >>> train = np.array([[-1.0, 0.0], [1.0, 0.0]])  # mean 0; variances 1 and 0, so s^2 = 1/2
    >>> isotropic_gaussian_log_density(train, np.zeros((1, 2))).round(6)  # -(2 / 2) log(2 pi s^2) = -log(pi)
    array([-1.14473])
    """
    a, b = np.asarray(train, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2:
        raise ValueError(f"need train (n >= 2, D) and x (N, D) rows, got shapes {a.shape} and {b.shape}")
    mean, var = a.mean(axis=0), float(a.var(axis=0).mean())
    if not var > 0:
        raise ValueError("the training rows are all equal: a Gaussian of them has no density")
    d = a.shape[1]
    return -0.5 * (((b - mean) ** 2).sum(axis=1) / var + d * math.log(2.0 * math.pi * var))


# ------------------------------------------------------------------------------------------------------------
# Sample quality


def _features(name: str, f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"{name} must be (N, D) features with N >= 2, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} must be finite")
    return f


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues below 0 by rounding -> 0)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_gaussians(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Fréchet (Wasserstein-2) distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)``.

    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))`` (Dowson & Landau, 1982). The trace of the matrix square
    root is computed as ``sum sqrt(eig(S1 cov2 S1))`` with ``S1 = cov1^(1/2)``: ``cov1 cov2`` is similar to the
    symmetric ``S1 cov2 S1``, so they share their eigenvalues, and the symmetric form has real, non-negative ones
    (up to rounding, which is clipped). This avoids the small imaginary parts that ``scipy.linalg.sqrtm`` of the
    non-symmetric product returns and that FID implementations have to discard.

    >>> frechet_distance_gaussians(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2 (1 - 2)^2
    4.0
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"need means (D,) and covariances (D, D) of one D, got {mu1.shape}, {mu2.shape}, "
                         f"{cov1.shape}, {cov2.shape}")
    s1 = _sqrt_psd((cov1 + cov1.T) / 2)
    middle = s1 @ cov2 @ s1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features; FID when they are Inception's.

    Means and covariances (``ddof = 1``, as in the reference FID code) of each set, then
    ``frechet_distance_gaussians``. It compares only the first two moments of the features, and it is biased
    upwards for small samples (Chong & Forsyth, 2020, arXiv:1911.07023): compare models on samples of the same size.

    Args:
        feats_a: ``(N_a, D)`` features of one sample (e.g. real images).
        feats_b: ``(N_b, D)`` features of the other (e.g. generated images).

    Returns:
        The squared distance, ``>= 0``, in squared feature units.
    """
    a, b = _features("feats_a", feats_a), _features("feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    return frechet_distance_gaussians(a.mean(axis=0), cov_a, b.mean(axis=0), cov_b)


def wasserstein_1d(a: np.ndarray, b: np.ndarray, *, p: float = 2.0) -> np.ndarray:
    """The exact ``p``-Wasserstein distance between empirical distributions on the line, for many at once.

    ``W_p^p = ∫_0^1 |F_a^-1(t) - F_b^-1(t)|^p dt`` with the quantile functions of the two samples. Each is a step
    function, constant between its breakpoints ``i / n_a`` (``j / n_b``), so on every interval between consecutive
    breakpoints of the merged set both are constant, and the integral is an exact finite sum. For equal sizes it
    is the mean of ``|a_(i) - b_(i)|^p`` over the sorted values.

    Args:
        a: ``(n_a,)`` or ``(n_a, P)``: P samples side by side (columns), e.g. projections.
        b: ``(n_b,)`` or ``(n_b, P)``.
        p: the order, ``>= 1``.

    Returns:
        ``W_p`` per column, shape ``(P,)`` (or a 0-d array for 1-D input).

    >>> # The quantile functions differ by 0 on [0, 1/2), 1 on [1/2, 2/3) and 2 on [2/3, 1]: 1/6 + 2/3 = 5/6.
    >>> round(float(wasserstein_1d(np.array([0.0, 1.0]), np.array([0.0, 0.0, 3.0]), p=1)), 6)
    0.833333
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squeeze = a.ndim == 1
    a, b = (a[:, None], b[:, None]) if squeeze else (a, b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise ValueError(f"a and b must be non-empty, (n, P) with the same P, got {a.shape} and {b.shape}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    a, b = np.sort(a, axis=0), np.sort(b, axis=0)
    na, nb = len(a), len(b)
    if na == nb:
        wpp = (np.abs(a - b) ** p).mean(axis=0)
    else:
        # Breakpoints i/na and j/nb as integers over the common denominator na*nb, to merge them exactly.
        ticks = np.union1d(np.arange(na + 1) * nb, np.arange(nb + 1) * na)  # 0 .. na*nb
        left, widths = ticks[:-1], np.diff(ticks) / (na * nb)
        ia, ib = left // nb, left // na  # the sorted value in force on [left, next)
        wpp = (widths[:, None] * np.abs(a[ia] - b[ib]) ** p).sum(axis=0)
    w = wpp ** (1.0 / p)
    return w[0] if squeeze else w


def sliced_wasserstein(
    a: np.ndarray, b: np.ndarray, *, n_projections: int = 128, p: float = 2.0,
    rng: np.random.Generator | int = 0,
) -> float:
    """Sliced ``p``-Wasserstein distance between two samples of images (or any vectors), flattened.

    ``SW_p = (E_theta[W_p^p(theta . a, theta . b)])^(1/p)`` over directions ``theta`` uniform on the unit sphere
    (Bonneel et al., 2015, "Sliced and Radon Wasserstein barycenters of measures"), estimated with
    ``n_projections`` random directions; each one-dimensional ``W_p`` is exact (``wasserstein_1d``), for equal or
    unequal sample sizes. Unlike the Fréchet distance it needs no feature network and sees the whole
    distribution of each projection, not only two moments; it is a metric, 0 only for equal distributions (in
    the limit of many directions).

    Args:
        a: ``(N_a, ...)`` one sample; each example is flattened.
        b: ``(N_b, ...)`` the other, with the same number of values per example.
        n_projections: random directions.
        p: the order, ``>= 1``.
        rng: a NumPy generator or a seed for the directions; the same seed gives the same directions.

    Returns:
        The distance, in the units of the values.
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"examples must have the same number of values, got {a.shape[1]} and {b.shape[1]}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be positive, got {n_projections}")
    rng = np.random.default_rng(rng)
    theta = rng.standard_normal((a.shape[1], n_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)  # a normalised Gaussian is uniform on the sphere
    w = wasserstein_1d(a @ theta, b @ theta, p=p)
    return float(np.mean(w**p) ** (1.0 / p))
