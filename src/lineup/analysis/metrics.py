"""Classification metrics in the scikit-learn manner: arrays in, numbers out, bad input fails early.

Conventions: ``y_true`` and ``y_pred`` are 1-D integer arrays of equal length; in a confusion matrix rows are
true classes and columns predicted classes. ``*_score`` is higher-is-better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D, got shapes {y_true.shape} and {y_pred.shape}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape[0]} vs {y_pred.shape[0]}")
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty")
    return y_true, y_pred


def accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions.

    >>> accuracy_score(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]))
    0.75
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float((y_true == y_pred).mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as ``j``; shape ``(K, K)``.

    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), num_classes=2).tolist()
    [[1, 0], [1, 1]]
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Recall of each class (diagonal over row sums); NaN for a class absent from ``y_true``.

    >>> per_class_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), num_classes=2).tolist()
    [0.5, 1.0]
    """
    cm = confusion_matrix(y_true, y_pred, num_classes=num_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def accuracy_half_width(acc: float, n: int, *, z: float = 1.96) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy measured on ``n`` examples.

    It is how finely a test set of ``n`` examples can resolve accuracy: differences between models well below
    it are not evidence. For acc = 0.9 on n = 10,000: 1.96 * sqrt(0.9 * 0.1 / 10000) = 0.00588.

    >>> round(accuracy_half_width(0.9, 10_000), 5)
    0.00588
    """
    if n <= 0:
        raise ValueError("n must be positive")
    return z * math.sqrt(max(acc * (1 - acc), 0.25 / n) / n)


@dataclass(frozen=True)
class SharedMistake:
    """A test example that several models get wrong.

    Attributes:
        position: its row in the aligned arrays given to ``shared_mistakes``.
        y: its true class.
        pred: the wrong class predicted most often for it (the smallest on a tie).
        agreeing: the runs that predicted ``pred``: when it is every run that got the example wrong, they all
            mistake it for the same class (an ambiguous or mislabelled example looks like this).
        wrong: model -> (runs that got it wrong, runs), in the order the models were given.
    """

    position: int
    y: int
    pred: int
    agreeing: int
    wrong: dict[str, tuple[int, int]]

    @property
    def runs_wrong(self) -> int:
        return sum(w for w, _ in self.wrong.values())

    @property
    def runs(self) -> int:
        return sum(n for _, n in self.wrong.values())

    @property
    def by_every_run(self) -> bool:
        """Every run of every model got it wrong."""
        return self.runs_wrong == self.runs


def shared_mistakes(y_true: np.ndarray, preds: Mapping[str, Sequence[np.ndarray]], *,
                    min_models: int = 2) -> list[SharedMistake]:
    """The test examples that at least ``min_models`` models get wrong in most of their runs, most missed first.

    A comparison between models is decided by the examples some get right and others wrong; an example that
    every model misses (often an ambiguous or mislabelled one) moves every accuracy alike and tells the models
    nothing. These are the examples to look at before reading a difference of a few test errors.

    Args:
        y_true: ``(N,)`` true classes.
        preds: model -> its runs' ``(N,)`` predicted classes, rows aligned with ``y_true``.
        min_models: how many models must miss an example (in more than half of their runs) for it to be listed;
            with fewer models than that (models without runs do not count), nothing is.

    Returns:
        One ``SharedMistake`` per listed example: by runs that missed it, then by runs that agree on the wrong
        class (both descending), then by position.

    >>> y = np.array([0, 1, 1, 0])
    >>> preds = {"a": [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0])], "b": [np.array([1, 0, 1, 0])]}
    >>> [(m.position, m.pred, m.wrong) for m in shared_mistakes(y, preds)]
    [(1, 0, {'a': (2, 2), 'b': (1, 1)})]
    """
    y_true = np.asarray(y_true)
    if min_models < 1:
        raise ValueError(f"min_models must be positive, got {min_models}")
    wrong: dict[str, np.ndarray] = {}  # model -> (runs, N) mistakes
    predicted = []
    for model, runs in preds.items():
        if not len(runs):
            continue
        stacked = np.stack([_check_pair(y_true, np.asarray(p))[1] for p in runs])  # (runs, N)
        wrong[model] = stacked != y_true
        predicted.append(stacked)
    if len(wrong) < min_models:  # too few models for any example to qualify
        return []
    missed_by = sum((w.mean(axis=0) > 0.5).astype(int) for w in wrong.values())  # (N,) models missing it
    all_preds = np.concatenate(predicted)  # (all runs, N)
    listed = np.flatnonzero(missed_by >= min_models)
    out = []
    for i in listed:
        column = all_preds[:, i]
        counts = np.bincount(column[column != y_true[i]])
        out.append(SharedMistake(position=int(i), y=int(y_true[i]), pred=int(counts.argmax()),
                                 agreeing=int(counts.max()),
                                 wrong={m: (int(w[:, i].sum()), len(w)) for m, w in wrong.items()}))
    return sorted(out, key=lambda m: (-m.runs_wrong, -m.agreeing, m.position))
