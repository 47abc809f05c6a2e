"""Similarity of learned representations: linear CKA between the features two models give the same examples."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centered kernel alignment of two representations of the same examples (Kornblith et al., 2019).

    ``CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred ``Xc``, ``Yc``: the
    normalised HSIC of the linear kernels ``X X^T`` and ``Y Y^T``, computed in feature space (cost
    ``N * D_x * D_y``, no ``N x N`` matrix). It lies in [0, 1], is 1 for representations that differ by an
    orthogonal transform and an isotropic scaling, and does not need ``D_x == D_y``.

    Args:
        x: shape ``(N, D_x)``, one row per example.
        y: shape ``(N, D_y)``, the same examples in the same order.

    Returns:
        The similarity; NaN when either representation is constant over the examples (it has no variance to
        align).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 5))
    >>> round(linear_cka(x, 3 * x), 6), linear_cka(x, rng.normal(size=(100, 5))) < 0.5
    (1.0, True)
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y must be 2-D (examples, features), got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same examples: {x.shape[0]} vs {y.shape[0]} rows")
    if x.shape[0] < 2:
        raise ValueError("CKA needs at least 2 examples")
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    return _cka_centred(xc, yc, _self_norm(xc), _self_norm(yc))


def _self_norm(xc: np.ndarray) -> float:
    return float(np.linalg.norm(xc.T @ xc))


def _cka_centred(xc: np.ndarray, yc: np.ndarray, nx: float, ny: float) -> float:
    if nx == 0 or ny == 0:
        return float("nan")
    return float(np.linalg.norm(yc.T @ xc) ** 2 / (nx * ny))


def cka_between_models(features: Mapping[str, Mapping[int, np.ndarray]]) -> tuple[list[str], np.ndarray,
                                                                                   np.ndarray]:
    """Mean linear CKA between every pair of models, averaged over matching seeds.

    Off the diagonal, seed ``s`` of one model is compared with seed ``s`` of the other and the CKA is averaged
    over the seeds both have: the two models then saw the same initialisation seed and data order, which is the
    pairing the study controls. When they share no seed number, every seed of one is compared with every seed
    of the other. On the diagonal, distinct seeds of the same model are compared with each other: how stable a
    model's representation is across seeds, the yardstick for the similarities off the diagonal (NaN with a
    single seed).

    Args:
        features: ``{model: {seed: (N, D_model) features}}``; every array covers the same ``N`` examples in
            the same order.

    Returns:
        ``(models, cka (M, M), pairs (M, M))``: the models in input order, the symmetric mean CKA matrix and
        the number of seed pairs behind each entry.
    """
    labels = list(features)
    # Centre once and keep each run's self-norm: every run takes part in many pairs.
    prepared: dict[str, dict[int, tuple[np.ndarray, float]]] = {}
    n_rows = None
    for label, by_seed in features.items():
        prepared[label] = {}
        for seed, f in by_seed.items():
            f = np.asarray(f, dtype=np.float64)
            if f.ndim != 2:
                raise ValueError(f"features of {label!r} seed {seed} must be 2-D, got shape {f.shape}")
            if n_rows is not None and f.shape[0] != n_rows:
                raise ValueError(f"features of {label!r} seed {seed} have {f.shape[0]} rows, others {n_rows}")
            n_rows = f.shape[0]
            fc = f - f.mean(axis=0)
            prepared[label][seed] = (fc, _self_norm(fc))
    m = len(labels)
    cka, pairs = np.full((m, m), np.nan), np.zeros((m, m), dtype=np.int64)
    for i, j in itertools.combinations_with_replacement(range(m), 2):
        a, b = prepared[labels[i]], prepared[labels[j]]
        if i == j:
            seed_pairs = list(itertools.combinations(sorted(a), 2))
        else:
            common = sorted(set(a) & set(b))
            seed_pairs = [(s, s) for s in common] or list(itertools.product(sorted(a), sorted(b)))
        values = [_cka_centred(a[s][0], b[t][0], a[s][1], b[t][1]) for s, t in seed_pairs]
        values = [v for v in values if np.isfinite(v)]
        if values:
            cka[i, j] = cka[j, i] = float(np.mean(values))
        pairs[i, j] = pairs[j, i] = len(values)
    return labels, cka, pairs
