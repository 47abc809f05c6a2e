"""Metrics registered by name and computed on every run's stored test predictions.

A metric is a function in the scikit-learn manner (see ``lineup.analysis.metrics``):
``metric(y_true, y_pred, *, probs=..., num_classes=...) -> float``, where ``y_true`` and ``y_pred`` are ``(N,)``
int arrays and the keyword-only ``probs`` (``(N, K)`` class probabilities) and ``num_classes`` are passed only
when the function declares them. Its name says which way is better: ``*_score`` higher, ``*_loss`` or
``*_error`` lower. Because metrics read stored predictions, registering one never retrains anything:
``lineup.api.Results.runs()`` adds a ``test_<name>`` column for each.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from lineup.analysis.metrics import accuracy_score
from lineup.plugins import DiscoveringRegistry

Metric = Callable[..., float]
M = TypeVar("M", bound=Metric)

# Installed plugins are imported when a name is missing or the metrics are listed (see lineup.plugins).
_metrics: DiscoveringRegistry[Metric] = DiscoveringRegistry("metric")

_SUFFIXES = ("_score", "_loss", "_error")
_EXTRAS = ("probs", "num_classes")

# A hand-made example to try a metric on when it is registered: 5 examples, 3 classes, 3 of them right.
_Y_TRUE = np.array([0, 1, 2, 1, 0])
_PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])


def register_metric(fn: M) -> M:
    """Register ``fn`` under its function name after checking the metric contract on a small example.

    Raises:
        TypeError: the name does not end in ``_score``, ``_loss`` or ``_error``; the signature is not
            ``(y_true, y_pred, *, probs, num_classes)`` with only those keyword-only options; or the function
            does not return a finite number on a 5-example, 3-class example.
        ValueError: a metric of that name is already registered.
    """
    name = fn.__name__
    where = f"metric {fn.__module__}.{fn.__qualname__}"
    if not name.endswith(_SUFFIXES):
        raise TypeError(f"{where}: its name must end in _score (higher is better), _loss or _error (lower is "
                        "better), so that tables and rankings know which way is better")
    params = list(inspect.signature(fn).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    extra = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in _EXTRAS]
    if len(positional) != 2 or extra or any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise TypeError(f"{where} must take (y_true, y_pred, *, probs, num_classes), the keyword-only ones only if "
                        f"it needs them; it takes ({', '.join(str(p) for p in params)})")
    value = _call(fn, _Y_TRUE, _PROBS.argmax(axis=1), _PROBS)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise TypeError(f"{where} must return a finite number, got {value!r} on a 5-example, 3-class example")
    _metrics.register(fn)
    return fn


def _call(fn: Metric, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray) -> Any:
    wanted = inspect.signature(fn).parameters
    extras = {"probs": probs, "num_classes": probs.shape[1]}
    return fn(y_true, y_pred, **{k: v for k, v in extras.items() if k in wanted})


def list_metrics() -> list[str]:
    """Names of all registered metrics, sorted."""
    return _metrics.names()


def metric_doc(name: str) -> str:
    """The first line of metric ``name``'s docstring."""
    doc = inspect.getdoc(_metrics.get(name)) or ""
    return doc.splitlines()[0] if doc else ""


def greater_is_better(name: str) -> bool:
    """Whether a higher value of metric ``name`` is better (``*_score``)."""
    return _metrics.get(name).__name__.endswith("_score")


def compute_metric(name: str, y_true: np.ndarray, probs: np.ndarray) -> float:
    """Metric ``name`` of predictions ``probs`` (``(N, K)``, the prediction is the most probable class)."""
    return float(_call(_metrics.get(name), np.asarray(y_true), np.asarray(probs).argmax(axis=1), np.asarray(probs)))


register_metric(accuracy_score)
