"""Metrics cross-checked against scikit-learn and hand-worked examples."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn import metrics as skm

from lineup.analysis import metrics
from lineup.analysis.metrics import (
    accuracy_half_width,
    accuracy_score,
    confusion_matrix,
    per_class_accuracy,
    shared_mistakes,
)
from lineup.analysis.tables import aggregate, curve_band


def test_against_sklearn_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 2000)
    p = np.where(rng.random(2000) < 0.6, y, rng.integers(0, 7, 2000))
    assert accuracy_score(y, p) == pytest.approx(skm.accuracy_score(y, p))
    np.testing.assert_array_equal(confusion_matrix(y, p, num_classes=7), skm.confusion_matrix(y, p, labels=range(7)))
    np.testing.assert_allclose(per_class_accuracy(y, p, num_classes=7),
                               skm.recall_score(y, p, average=None, labels=range(7)))


def test_hand_worked_confusion() -> None:
    # true 0 0 1 2 2 2, pred 0 1 1 2 0 2: class 0 -> 1 of 2 right, class 1 -> 1 of 1, class 2 -> 2 of 3
    y, p = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(y, p, num_classes=3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    np.testing.assert_allclose(per_class_accuracy(y, p, num_classes=3), [0.5, 1.0, 2 / 3])
    assert np.isnan(per_class_accuracy(y, p, num_classes=4)[3])  # class 3 absent


def test_bad_input_fails_early() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        accuracy_score(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), num_classes=3)


def test_half_width_and_resolution() -> None:
    assert accuracy_half_width(0.9, 10_000) == pytest.approx(1.96 * (0.09 / 10_000) ** 0.5)
    runs = [
        {"label": "a", "model": "m", "status": "complete", "summary": {"test_acc": 0.900}},
        {"label": "a", "model": "m", "status": "complete", "summary": {"test_acc": 0.902}},
        {"label": "b", "model": "m", "status": "complete", "summary": {"test_acc": 0.898}},  # 0.3 points below
        {"label": "c", "model": "m", "status": "complete", "summary": {"test_acc": 0.850}},
        {"label": "c", "model": "m", "status": "diverged", "summary": {}},
    ]
    rows = {r.label: r for r in aggregate(runs, metrics=("test_acc",), test_size=10_000)}
    assert rows["a"].metrics["test_acc"][0] == pytest.approx(0.901)
    assert rows["a"].metrics["test_acc"][1] == pytest.approx(np.std([0.9, 0.902], ddof=1))
    assert rows["a"].resolved_vs_best is None
    assert rows["b"].resolved_vs_best is False  # 0.3 < 0.59 points
    assert rows["c"].resolved_vs_best is True and rows["c"].diverged == 1 and rows["c"].seeds == 1


def test_curve_band_handles_early_stopped_seeds() -> None:
    mean, lo, hi = curve_band([[1.0, 2.0, 3.0], [3.0, 4.0]])
    np.testing.assert_allclose(mean, [2.0, 3.0, 3.0])
    np.testing.assert_allclose(lo, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(hi, [3.0, 4.0, 3.0])


def test_shared_mistakes_by_hand() -> None:
    """Three models on six examples. Example 1: a misses it 2/2, b 1/2 (not most), c 1/1: two models, listed.
    Example 4: every run of every model, listed first. Example 5: only a misses it: not listed. Example 2: a 1/2
    and b 1/2 (half is not most): not listed."""
    y = np.array([0, 1, 2, 0, 1, 2])
    preds = {"a": [np.array([0, 0, 1, 0, 0, 0]), np.array([0, 2, 2, 0, 2, 1])],
             "b": [np.array([0, 1, 2, 0, 0, 2]), np.array([0, 0, 0, 0, 2, 2])],
             "c": [np.array([0, 2, 2, 0, 0, 2])]}
    out = shared_mistakes(y, preds)
    assert [m.position for m in out] == [4, 1]
    assert out[0].wrong == {"a": (2, 2), "b": (2, 2), "c": (1, 1)} and out[0].by_every_run
    assert (out[0].runs_wrong, out[0].runs, out[0].y, out[0].pred) == (5, 5, 1, 0)  # 0 three times, 2 twice
    assert out[1].wrong == {"a": (2, 2), "b": (1, 2), "c": (1, 1)} and not out[1].by_every_run
    assert (out[1].runs_wrong, out[1].pred) == (4, 0)  # 0 twice, 2 twice: the smaller class on a tie
    assert [m.position for m in shared_mistakes(y, preds, min_models=1)] == [4, 1, 5]
    assert [m.position for m in shared_mistakes(y, preds, min_models=3)] == [4]
    assert shared_mistakes(y, preds, min_models=4) == []  # three models cannot make four
    assert (out[0].agreeing, out[1].agreeing) == (3, 2)
    # Two examples missed by all four runs: the one they all mistake for the same class comes first.
    tie = shared_mistakes(np.array([0, 0]), {"a": [np.array([1, 2]), np.array([2, 2])],
                                             "b": [np.array([2, 2]), np.array([1, 2])]})
    assert [(m.position, m.pred, m.agreeing) for m in tie] == [(1, 2, 4), (0, 1, 2)]
    assert shared_mistakes(y, {"a": preds["a"], "b": []}) == []  # a model without runs is no second model
    assert shared_mistakes(y, {"a": [y.copy()], "b": [y.copy()]}) == []
    assert doctest.testmod(metrics).failed == 0


def test_shared_mistakes_against_a_count_per_example() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    seeds = {"a": 3, "b": 2, "c": 5, "d": 1}
    preds = {m: [np.where(rng.random(300) < 0.7, y, rng.integers(0, 4, 300)) for _ in range(n)]
             for m, n in seeds.items()}
    out = shared_mistakes(y, preds, min_models=2)
    expected = []
    for i in range(300):
        counts = {m: sum(int(p[i] != y[i]) for p in runs) for m, runs in preds.items()}
        if sum(counts[m] > seeds[m] / 2 for m in seeds) >= 2:
            expected.append((-sum(counts.values()), i, counts))
    assert len(expected) > 10  # the draw has shared mistakes to find
    assert sorted(m.position for m in out) == sorted(i for _, i, _ in expected)
    keys = [(-m.runs_wrong, -m.agreeing, m.position) for m in out]
    assert keys == sorted(keys)
    by_position = {i: (total, counts) for total, i, counts in expected}
    for m in out:
        total, counts = by_position[m.position]
        assert m.runs_wrong == -total
        assert {k: w for k, (w, _) in m.wrong.items()} == counts
        wrong_preds = [int(p[m.position]) for runs in preds.values() for p in runs if p[m.position] != y[m.position]]
        assert wrong_preds.count(m.pred) == max(wrong_preds.count(c) for c in set(wrong_preds)) == m.agreeing


def test_shared_mistakes_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        shared_mistakes(np.array([0, 1]), {"a": [np.array([0, 1, 1])]})
    with pytest.raises(ValueError, match="min_models"):
        shared_mistakes(np.array([0, 1]), {"a": [np.array([0, 1])]}, min_models=0)
