"""Aggregations over stored runs: per-model tables and curves with mean and spread over seeds."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from lineup.analysis.metrics import accuracy_half_width


@dataclass
class ModelRow:
    """One model entry of a study, aggregated over its complete seeds."""

    label: str
    model: str
    seeds: int
    params: int | None
    flops: int | None
    metrics: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (mean, std over seeds)
    diverged: int = 0
    failed: int = 0
    pending: int = 0
    resolved_vs_best: bool | None = None  # None for the best model itself


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def aggregate(runs: list[dict], *, metrics: tuple[str, ...], test_size: int | None) -> list[ModelRow]:
    """Group runs (dicts with label, model, status, summary) by label, in first-seen order.

    A model whose mean test accuracy is within the test set's 95% half-width of the best one's is marked as
    not resolved from the best (``resolved_vs_best = False``).
    """
    rows: dict[str, ModelRow] = {}
    values: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        row = rows.setdefault(r["label"], ModelRow(label=r["label"], model=r["model"], seeds=0, params=None,
                                                   flops=None))
        if r["status"] == "complete":
            row.seeds += 1
            row.params, row.flops = r["summary"].get("params"), r["summary"].get("flops")
            for m in metrics:
                if m in r["summary"]:
                    values.setdefault(r["label"], {}).setdefault(m, []).append(float(r["summary"][m]))
        elif r["status"] == "diverged":
            row.diverged += 1
        elif r["status"] == "failed":
            row.failed += 1
        else:
            row.pending += 1
    for label, by_metric in values.items():
        rows[label].metrics = {m: mean_std(v) for m, v in by_metric.items()}
    scored = [r for r in rows.values() if "test_acc" in r.metrics]
    if scored and test_size:
        best = max(scored, key=lambda r: r.metrics["test_acc"][0])
        hw = accuracy_half_width(best.metrics["test_acc"][0], test_size)
        for other in scored:
            if other is not best:
                other.resolved_vs_best = best.metrics["test_acc"][0] - other.metrics["test_acc"][0] > hw
    return list(rows.values())


def curve_band(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds of curves of possibly different lengths (early stopping).

    Position ``i`` aggregates the seeds that reached it; a position no seed has a value for (a metric the model does
    not record, such as the gradient norm of a model fitted without gradients) is NaN, silently.
    """
    n = max(len(c) for c in curves)
    a = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        a[i, : len(c)] = c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN is the answer, not a mistake
        return np.nanmean(a, axis=0), np.nanmin(a, axis=0), np.nanmax(a, axis=0)
