"""Learning dynamics of one run from its per-epoch history: speed of convergence, training risk, overfitting.

A history is the plain data the store keeps: a list of per-epoch dicts in epoch order, with ``epoch`` (1 for the
first), ``step`` (optimizer steps so far), ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
``grad_norm`` and ``time_s`` (seconds of that epoch). Missing metrics give ``None`` results, never an error:
runs without a validation split have no ``val_*``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Shares of the final validation accuracy whose first epoch ``summarize_dynamics`` reports.
FRACTIONS = (0.90, 0.95, 0.99)


def epochs_to_reach(val_acc: Sequence[float] | np.ndarray, *, fractions: Sequence[float] = FRACTIONS
                    ) -> dict[float, int | None]:
    """First epoch (1-based) whose validation accuracy reaches each share of the final one.

    "Final" is the last epoch's value, so the answer is at most the number of epochs. A curve that rises and
    falls back reaches the final level early: that is what the number measures (how soon the model was as good
    as it ends up), not the time to its peak.

    Args:
        val_acc: shape ``(E,)``, validation accuracy after each epoch.
        fractions: shares of the final accuracy, each in ``(0, 1]``.

    Returns:
        ``{fraction: epoch}``; ``None`` for every fraction when the curve is empty or its last value is NaN.

    >>> epochs_to_reach([0.5, 0.8, 0.9, 1.0], fractions=(0.9, 0.5))  # 0.9 of 1.0 first at epoch 3
    {0.9: 3, 0.5: 1}
    """
    a = np.asarray(val_acc, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"val_acc must be 1-D, got shape {a.shape}")
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions must lie in (0, 1], got {f}")
    if a.size == 0 or not np.isfinite(a[-1]):
        return {f: None for f in fractions}
    out: dict[float, int | None] = {}
    for f in fractions:
        # Accuracies are ratios k/N, so an epoch can sit exactly on the threshold, and 0.9 * 0.8 rounds to
        # 0.7200000000000001 > 0.72: compare with a relative tolerance far below 1/N.
        # NaN compares False, so an epoch without a value never counts as reached.
        out[f] = int(np.flatnonzero(a >= f * a[-1] * (1 - 1e-9))[0]) + 1
    return out


def train_risk_auc(train_loss: Sequence[float] | np.ndarray) -> float:
    """Area under the training-loss curve over epochs, divided by its length: the curve's mean height.

    The trapezoid rule over epochs ``1..E`` spans ``E - 1`` epochs; dividing by that span makes a constant loss
    ``L`` score ``L`` whatever the number of epochs, so runs stopped early compare with full ones. Lower means
    the model drove the empirical risk down sooner and further. A single epoch scores its own loss.

    Args:
        train_loss: shape ``(E,)``, mean training loss of each epoch, finite.

    >>> train_risk_auc([1.0, 0.5, 0.25])  # (1 + 0.5) / 2 + (0.5 + 0.25) / 2 = 1.125 over 2 epochs
    0.5625
    """
    a = np.asarray(train_loss, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"train_loss must be a non-empty 1-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("train_loss must be finite (a diverged run has no training-risk area)")
    if a.size == 1:
        return float(a[0])
    return float(np.trapezoid(a) / (a.size - 1))


def best_epoch(values: Sequence[float] | np.ndarray, *, mode: str = "min") -> int | None:
    """The 1-based epoch of the lowest (``mode="min"``) or highest (``"max"``) value; the first one on a tie.

    NaN values are skipped; ``None`` when there is no finite value.

    >>> best_epoch([0.9, 0.4, 0.4, 0.6])
    2
    >>> best_epoch([0.5, 0.7, 0.6], mode="max")
    2
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return None
    a = np.where(finite, a, np.inf if mode == "min" else -np.inf)
    return int(np.argmin(a) if mode == "min" else np.argmax(a)) + 1


def generalization_gap(epochs: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Per-epoch gaps between training and validation: positive means better on the training data.

    Returns:
        ``{"loss_gap": val_loss - train_loss, "acc_gap": train_acc - val_acc}``, each of shape ``(E,)``, NaN
        where a metric is missing. Training metrics are averages over each epoch's batches while the weights
        moved, so early gaps are biased low (the training numbers lag the weights that validation sees).

    >>> gap = generalization_gap([{"train_loss": 0.5, "val_loss": 0.75, "train_acc": 0.9, "val_acc": 0.8}])
    >>> float(gap["loss_gap"][0]), round(float(gap["acc_gap"][0]), 2)
    (0.25, 0.1)
    """
    return {"loss_gap": _column(epochs, "val_loss") - _column(epochs, "train_loss"),
            "acc_gap": _column(epochs, "train_acc") - _column(epochs, "val_acc")}


def cumulative_seconds(epochs: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Wall-clock seconds since the start of training at the end of each epoch, shape ``(E,)``.

    >>> cumulative_seconds([{"time_s": 1.5}, {"time_s": 2.0}]).tolist()
    [1.5, 3.5]
    """
    return np.cumsum(_column(epochs, "time_s"))


@dataclass(frozen=True)
class Dynamics:
    """How one run trained; ``None`` where its history lacks the metric."""

    epochs: int
    final_val_acc: float | None
    epochs_to: dict[float, int | None] = field(default_factory=dict)  # share of final val acc -> first epoch
    steps_to: dict[float, int | None] = field(default_factory=dict)  # ... -> optimizer steps at that epoch's end
    seconds_to: dict[float, float | None] = field(default_factory=dict)  # ... -> wall-clock seconds by then
    train_risk_auc: float | None = None
    best_epoch: int | None = None  # lowest validation loss (highest accuracy when there is no loss)
    final_loss_gap: float | None = None  # val_loss - train_loss at the last epoch
    final_acc_gap: float | None = None  # train_acc - val_acc at the last epoch


def summarize_dynamics(epochs: Sequence[Mapping[str, float]], *, fractions: Sequence[float] = FRACTIONS
                       ) -> Dynamics:
    """All the scalar dynamics of one run's history.

    Steps and seconds to a share of the final accuracy are read at the end of the epoch that reaches it: the
    validation accuracy is only measured once per epoch, so that is their resolution.

    Args:
        epochs: the run's per-epoch dicts, in order.
        fractions: shares of the final validation accuracy.
    """
    n = len(epochs)
    if n == 0:
        return Dynamics(epochs=0, final_val_acc=None)
    val_acc = _column(epochs, "val_acc")
    reached = epochs_to_reach(val_acc, fractions=fractions)
    steps, seconds = _column(epochs, "step"), cumulative_seconds(epochs)
    train_loss = _column(epochs, "train_loss")
    val_loss = _column(epochs, "val_loss")
    gap = generalization_gap(epochs)
    return Dynamics(
        epochs=n,
        final_val_acc=_finite(val_acc[-1]),
        epochs_to=reached,
        steps_to={f: None if e is None or not np.isfinite(steps[e - 1]) else int(steps[e - 1])
                  for f, e in reached.items()},
        seconds_to={f: None if e is None else _finite(seconds[e - 1]) for f, e in reached.items()},
        train_risk_auc=train_risk_auc(train_loss) if np.all(np.isfinite(train_loss)) else None,
        best_epoch=best_epoch(val_loss) if np.isfinite(val_loss).any() else best_epoch(val_acc, mode="max"),
        final_loss_gap=_finite(gap["loss_gap"][-1]),
        final_acc_gap=_finite(gap["acc_gap"][-1]),
    )


def _column(epochs: Sequence[Mapping[str, float]], name: str) -> np.ndarray:
    return np.array([e.get(name, np.nan) for e in epochs], dtype=np.float64)


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
