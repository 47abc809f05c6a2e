"""Pruning where the trial runs: a callback that reports the validation metric after each epoch to an in-memory
Optuna study and stops the trial when the pruner says so.

A trial runs in the driver, in a pool worker or on a Ray node, away from the driver's search. So the driver gives
the trial, through its ``RunContext``, the trials it knew of when it dispatched it (``PruningContext``, plain data);
the callback rebuilds the same in-memory study with the same pruner and asks ``should_prune()`` after every epoch.
Trials that run in parallel see the trials finished before they were dispatched, not each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineup.search.trials import Backend, TrialRecord, build_study
from lineup.train.callbacks import Callback

if TYPE_CHECKING:
    import optuna

    from lineup.train.engine import TrainState


@dataclass(frozen=True)
class PruningContext:
    """What a trial needs to judge itself: its search's backend, its number and the trials it is compared with."""

    backend: Backend
    number: int
    metric: str
    trials: tuple[TrialRecord, ...]


class PruneCallback(Callback):
    """Stop a search trial whose validation metric the pruner finds poor (Optuna's ``should_prune``).

    It keeps no state of its own: the values it reported are the history's, so a resumed trial reports them again
    and is judged the same way. Put it before the checkpoint callback.
    """

    def __init__(self, context: PruningContext) -> None:
        self.context = context
        self.pruned = False
        self._study: optuna.Study | None = None
        self._trial: optuna.Trial | None = None

    def on_fit_start(self, state: TrainState) -> None:
        ctx = self.context
        self._study, self._trial = build_study(ctx.backend, list(ctx.trials), number=ctx.number)
        for metrics in state.history.epochs:  # a resumed trial: what it reported before it stopped
            self._report(metrics)
        self.pruned = state.stop_reason.startswith("pruned")

    def _report(self, metrics: dict[str, float]) -> float | None:
        value = metrics.get(self.context.metric)
        if value is None or not math.isfinite(value):
            return None  # no validation, or a diverged epoch: the divergence guard decides
        assert self._trial is not None
        self._trial.report(float(value), int(metrics["epoch"]))
        return float(value)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if state.should_stop or self._trial is None:
            return
        value = self._report(metrics)
        if value is not None and self._trial.should_prune():
            self.pruned = True
            state.should_stop = True
            state.stop_reason = (f"pruned: {self.context.metric} {value:.4g} after epoch {int(metrics['epoch'])} is "
                                 f"poor next to the trials finished before this one ({self.context.backend.pruner})")

    def system_attrs(self) -> dict[str, Any]:
        """What the pruner recorded for this trial (the rungs of successive halving), for later trials to see."""
        if self._study is None or self._trial is None:
            return {}
        frozen = next(t for t in self._study.get_trials(deepcopy=False) if t.number == self._trial.number)
        return {k: v for k, v in frozen.system_attrs.items() if k.startswith("completed_rung_")}
