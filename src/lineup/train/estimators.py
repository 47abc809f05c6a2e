"""Fitting a model that no gradient trains (``fits_without_gradients``, e.g. ``lineup.models.estimators``).

Such a model is fitted once on the whole training split; its history is then a single "epoch" with the same metrics
as the fit loop records (training and validation loss and accuracy, seconds), so the report treats it like any run.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from lineup.data._types import Normalization, Split
from lineup.train.engine import History, TrainState, evaluate
from lineup.train.objectives import Objective


def fit_estimator(model: Any, objective: Objective, train: Split, norm: Normalization, *, seed: int,
                  device: torch.device, val: Split | None = None, eval_batch_size: int = 1024) -> TrainState:
    """Fit ``model`` (with ``fit_split(x, y, seed=...)``) on the normalised training split in one go.

    Returns:
        The state of a finished one-epoch fit: ``epoch`` 1, no steps, no optimiser, and the history entry.
    """
    t0 = time.perf_counter()
    model.fit_split(norm.apply(train.x), train.y, seed=seed)
    fitted = evaluate(model, objective, train, norm, device=device, batch_size=eval_batch_size)
    metrics: dict[str, float] = {"epoch": 1, "step": 0, "train_loss": fitted.loss, "train_acc": fitted.acc}
    if val is not None:
        ev = evaluate(model, objective, val, norm, device=device, batch_size=eval_batch_size)
        metrics.update(val_loss=ev.loss, val_acc=ev.acc)
    metrics["time_s"] = time.perf_counter() - t0
    return TrainState(model=model, optimizer=None, history=History(epochs=[metrics]),  # type: ignore[arg-type]
                      max_epochs=1, steps_per_epoch=0, epoch=1, stop_reason="fitted at once (no gradient steps)")
