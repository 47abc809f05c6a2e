"""Metrics cross-checked against scikit-learn and hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from lineup.analysis.metrics import accuracy_half_width, accuracy_score, confusion_matrix, per_class_accuracy
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
