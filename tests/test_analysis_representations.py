"""Linear CKA: its defining invariances and agreement with the HSIC formula computed directly."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy.stats import ortho_group

from lineup.analysis import representations
from lineup.analysis.representations import (
    cka_at_depth,
    cka_between_models,
    layer_at_depth,
    layer_stability,
    linear_cka,
    relative_depths,
)


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA straight from Kornblith et al. (2019), eq. 1-3: HSIC of the linear Gram matrices with H = I - 11^T/n."""
    n = x.shape[0]
    k, l_ = x @ x.T, y @ y.T
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.fixture
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    # correlated features with a non-zero mean, as a network's are
    return rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 3.0


def test_orthogonal_transform_and_isotropic_scaling_leave_cka_at_one(x: np.ndarray) -> None:
    q = ortho_group.rvs(6, random_state=1)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 7.5 * x @ q + 2.0) == pytest.approx(1.0, abs=1e-12)  # scaling and a shift too


def test_symmetric_and_equal_to_the_hsic_formula(x: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    y = np.tanh(x @ rng.normal(size=(6, 4))) + 0.3 * rng.normal(size=(200, 4))  # related, different width
    value = linear_cka(x, y)
    assert 0.2 < value < 0.99
    assert linear_cka(y, x) == pytest.approx(value, rel=1e-12)
    assert value == pytest.approx(_hsic_cka(x, y), rel=1e-10)


def test_unrelated_features_score_low(x: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(200, 6))
    # E[CKA] of independent features is about D_x D_y / N-ish; far below 1 here
    assert linear_cka(x, noise) < 0.15
    assert linear_cka(x, noise) == pytest.approx(_hsic_cka(x, noise), rel=1e-10)


def test_non_isotropic_scaling_changes_cka(x: np.ndarray) -> None:
    # CKA is invariant to isotropic, not arbitrary, scaling: stretching one feature changes the similarity
    assert linear_cka(x, x * np.array([10.0, 1, 1, 1, 1, 1])) < 0.99


def test_constant_features_and_bad_shapes(x: np.ndarray) -> None:
    assert np.isnan(linear_cka(x, np.ones((200, 3))))
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, x[:100])
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(x[:, 0], x)


def test_cka_between_models_averages_matching_seeds(x: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    q = ortho_group.rvs(6, random_state=5)
    noise = {s: rng.normal(size=(200, 3)) for s in (0, 1, 2)}
    features = {
        "base": {0: x, 1: x + 0.5 * rng.normal(size=x.shape)},
        "rotated": {0: x @ q, 1: x @ q, 9: x},  # seed 9 has no partner in "base"
        "noise": noise,
    }
    labels, cka, pairs = cka_between_models(features)
    assert labels == ["base", "rotated", "noise"]
    np.testing.assert_allclose(cka, cka.T)
    # base vs rotated over seeds 0 and 1: (CKA(x, xQ) = 1 + CKA(x + noise, xQ)) / 2
    expected = (1.0 + linear_cka(features["base"][1], x @ q)) / 2
    assert cka[0, 1] == pytest.approx(expected) and pairs[0, 1] == 2
    # diagonal: distinct seeds of one model; rotated has 3 seeds whose pairwise CKAs are all 1
    assert cka[1, 1] == pytest.approx(1.0) and pairs[1, 1] == 3
    assert cka[0, 0] == pytest.approx(linear_cka(x, features["base"][1])) and pairs[0, 0] == 1
    assert cka[2, 0] < 0.2 and pairs[2, 0] == 2  # seeds 0 and 1 shared


def test_cka_between_models_without_shared_seeds_or_with_one_seed(x: np.ndarray) -> None:
    labels, cka, pairs = cka_between_models({"a": {0: x}, "b": {1: 2 * x, 2: x[:, ::-1]}})
    assert pairs[0, 1] == 2 and cka[0, 1] == pytest.approx(1.0)  # all pairs of seeds; both are x up to Q and scale
    assert np.isnan(cka[0, 0]) and pairs[0, 0] == 0  # a single seed has no seed-to-seed similarity
    with pytest.raises(ValueError, match="rows"):
        cka_between_models({"a": {0: x}, "b": {0: x[:50]}})


def test_layer_stability_per_layer_over_seed_pairs(x: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    q = ortho_group.rvs(6, random_state=7)
    noise = rng.normal(size=(200, 6))
    features = {
        0: {"a": x, "b": x[:, :3]},
        1: {"a": x @ q, "b": x[:, :3] + rng.normal(size=(200, 3))},
        2: {"a": noise, "c": x},  # "b" is missing here, "c" is only here (runs of another version)
    }
    a, b, c = layer_stability(features)
    assert [(e.layer, e.depth, e.width) for e in (a, b, c)] == [("a", 1 / 3, 6), ("b", 2 / 3, 3), ("c", 1.0, 6)]
    # "a" over pairs (0, 1), (0, 2), (1, 2): CKA(x, xQ) = 1 and the two against noise
    pairs = [1.0, linear_cka(x, noise), linear_cka(x @ q, noise)]
    assert a.pairs == 3 and a.mean == pytest.approx(np.mean(pairs))
    assert a.high == pytest.approx(1.0) and a.low == pytest.approx(min(pairs)) and a.low < 0.2
    assert b.pairs == 1 and b.mean == pytest.approx(linear_cka(features[0]["b"], features[1]["b"]))
    assert c.pairs == 0 and np.isnan(c.mean) and np.isnan(c.low)  # one seed: nothing to compare


def test_layer_at_depth_and_relative_depths() -> None:
    five = ["s1", "s2", "s3", "s4", "s5"]
    assert relative_depths(five)["s3"] == pytest.approx(0.6)
    # 0.25 of 5 layers is 1.25 layers deep: s1 (1) is nearer than s2 (2); 0.75 -> 3.75: s4
    assert [layer_at_depth(five, d) for d in (0.25, 0.5, 0.75, 1.0)] == ["s1", "s2", "s4", "s5"]
    assert [layer_at_depth(["fc1", "fc2"], d) for d in (0.25, 0.75, 0.76)] == ["fc1", "fc1", "fc2"]
    with pytest.raises(ValueError, match="no layers"):
        layer_at_depth([], 0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        layer_at_depth(five, 0.0)


def test_cka_at_depth_compares_each_model_at_its_nearest_layer(x: np.ndarray) -> None:
    rng = np.random.default_rng(8)
    q = ortho_group.rvs(6, random_state=9)
    other = rng.normal(size=(200, 6))
    deep = {s: {"l1": other, "l2": x, "l3": other, "l4": other} for s in (0, 1)}
    shallow = {s: {"s1": 2 * x @ q, "s2": other} for s in (0, 1)}
    chosen, models, cka, pairs = cka_at_depth({"deep": deep, "shallow": shallow, "none": {0: {}, 1: {}}}, 0.5)
    assert chosen == {"deep": "l2", "shallow": "s1"} and models == ["deep", "shallow"]  # "none" has no layers
    assert cka[0, 1] == pytest.approx(1.0) and pairs[0, 1] == 2  # x against a rotated, scaled x
    chosen, models, cka, _ = cka_at_depth({"deep": deep, "shallow": shallow}, 1.0)
    assert chosen == {"deep": "l4", "shallow": "s2"} and cka[0, 1] == pytest.approx(1.0)  # the same "other"
    assert cka_at_depth({"none": {0: {}}}, 0.5)[1] == []


def test_docstring_examples() -> None:
    for module in (representations,):
        assert doctest.testmod(module).failed == 0, module.__name__
