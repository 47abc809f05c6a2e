"""Similarity of learned representations: linear CKA between the features two models give the same examples.

Also layer by layer: how alike a layer is across seeds of one model, and how alike two models are at the same
relative depth. A model's layers are the ones it declares (``LineupModel.representation_layers``), input side
first; the ``i``-th of ``L`` sits at relative depth ``(i + 1) / L``, so every model's last layer is at 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class LayerStability:
    """Linear CKA of one layer between distinct seeds of one model: how reproducible that layer is.

    Attributes:
        layer: the layer's name.
        depth: relative depth, ``(i + 1) / L`` for the ``i``-th of the model's ``L`` layers.
        width: features per example (channels of a spatial map).
        mean: mean CKA over pairs of distinct seeds; NaN with fewer than two seeds.
        low: smallest CKA over those pairs (NaN likewise).
        high: largest CKA over those pairs (NaN likewise).
        pairs: seed pairs with a finite CKA.
    """

    layer: str
    depth: float
    width: int
    mean: float
    low: float
    high: float
    pairs: int


def relative_depths(layers: Sequence[str]) -> dict[str, float]:
    """``{layer: (i + 1) / L}`` for ``L`` layers given input side first.

    >>> relative_depths(["conv1", "conv2", "fc1", "fc2"])
    {'conv1': 0.25, 'conv2': 0.5, 'fc1': 0.75, 'fc2': 1.0}
    """
    return {name: (i + 1) / len(layers) for i, name in enumerate(layers)}


def layer_at_depth(layers: Sequence[str], depth: float) -> str:
    """The layer whose relative depth is nearest ``depth`` (in (0, 1]); the shallower one on a tie.

    >>> layer_at_depth(["s1", "s2", "s3", "s4", "s5"], 0.5)  # s2 at 0.4 and s3 at 0.6 tie
    's2'
    >>> layer_at_depth(["fc1", "fc2"], 0.25)
    'fc1'
    """
    if not layers:
        raise ValueError("no layers to choose from")
    if not 0 < depth <= 1:
        raise ValueError(f"depth must be in (0, 1], got {depth}")
    target = depth * len(layers)  # compared in units of layers, where the tie above is exact
    return layers[min(range(len(layers)), key=lambda i: (abs(i + 1 - target), i))]


def _layer_order(by_seed: Mapping[int, Mapping[str, np.ndarray]]) -> list[str]:
    """The model's layers in the order its runs list them (runs stored by another version may lack some)."""
    return list(dict.fromkeys(name for layers in by_seed.values() for name in layers))


def layer_stability(features: Mapping[int, Mapping[str, np.ndarray]]) -> list[LayerStability]:
    """Linear CKA of each layer of one model between every pair of its distinct seeds.

    Args:
        features: ``{seed: {layer: (N, D_layer) features}}``, layers input side first, every array over the
            same ``N`` examples in the same order.

    Returns:
        One entry per layer, input side first.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 4))
    >>> s = layer_stability({0: {"a": x, "b": x}, 1: {"a": 2 * x, "b": rng.normal(size=(50, 4))}})
    >>> [(e.layer, e.depth, round(e.mean, 3), e.pairs) for e in s][0], s[1].mean < 0.5
    (('a', 0.5, 1.0, 1), True)
    """
    layers = _layer_order(features)
    depths = relative_depths(layers)
    out = []
    for name in layers:
        seeds = {s: f[name] for s, f in features.items() if name in f}
        values = [linear_cka(seeds[s], seeds[t]) for s, t in itertools.combinations(sorted(seeds), 2)]
        values = [v for v in values if np.isfinite(v)]
        nan = float("nan")
        out.append(LayerStability(
            layer=name, depth=depths[name], width=int(np.shape(next(iter(seeds.values())))[1]),
            mean=float(np.mean(values)) if values else nan, low=min(values, default=nan),
            high=max(values, default=nan), pairs=len(values)))
    return out


def cka_at_depth(features: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]], depth: float
                 ) -> tuple[dict[str, str], list[str], np.ndarray, np.ndarray]:
    """Mean linear CKA between every pair of models, each represented by its layer nearest ``depth``.

    Models with different numbers of layers are compared where they are equally far from input to output; the
    pairing of seeds and the diagonal are those of ``cka_between_models``.

    Args:
        features: ``{model: {seed: {layer: (N, D_layer) features}}}``, layers input side first; models without
            layers are left out.
        depth: relative depth in (0, 1].

    Returns:
        ``(chosen, models, cka (M, M), pairs (M, M))``: the layer taken from each model, then as
        ``cka_between_models``.
    """
    chosen: dict[str, str] = {}
    taken: dict[str, dict[int, np.ndarray]] = {}
    for model, by_seed in features.items():
        layers = _layer_order(by_seed)
        if not layers:
            continue
        chosen[model] = name = layer_at_depth(layers, depth)
        taken[model] = {s: f[name] for s, f in by_seed.items() if name in f}
    if not taken:
        return chosen, [], np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64)
    models, cka, pairs = cka_between_models(taken)
    return chosen, models, cka, pairs
