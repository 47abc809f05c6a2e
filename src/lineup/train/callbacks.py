"""Callbacks: hooks into the fit loop (after Lightning and skorch).

Every hook of ``Callback`` is a documented no-op. A callback stops training by setting
``state.should_stop`` and ``state.stop_reason``; nothing stops by raising. Stateful callbacks implement
``state_dict``/``load_state_dict`` so that a run can resume.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from lineup.train.engine import TrainState


class Callback:
    def on_fit_start(self, state: TrainState) -> None:
        """Called once before the first epoch (also when resuming)."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Called before each epoch's first step."""

    def on_step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        """Called after each optimizer step with the step's loss (a tensor: reading it may synchronise)."""

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        """Called after validation with the epoch's metrics (already appended to the history)."""

    def on_fit_end(self, state: TrainState) -> None:
        """Called once after the last epoch, however training ended."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: an epoch metric of the history, e.g. ``"val_loss"`` or ``"val_acc"``.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for names containing "acc", min otherwise).
        patience: epochs without improvement tolerated; training stops at the ``patience``-th.
        min_delta: an improvement must exceed this.
        restore_best: load the best epoch's weights when training ends.
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "auto", patience: int = 3,
                 min_delta: float = 0.0, restore_best: bool = True) -> None:
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best_score = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _improved(self, score: float) -> bool:
        if self.mode == "min":
            return score < self.best_score - self.min_delta
        return score > self.best_score + self.min_delta

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if state.diverged:  # the loop stops anyway, and skipped validation: there is nothing to monitor
            return
        if self.monitor not in metrics:
            raise KeyError(
                f"early stopping monitors {self.monitor!r}, which this run does not log. "
                f"Logged metrics: {', '.join(sorted(metrics))}."
            )
        score = metrics[self.monitor]
        if self._improved(score):
            self.best_score, self.best_epoch, self.wait = score, int(metrics["epoch"]), 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(state.model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.should_stop = True
                state.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                    f"(best {self.best_score:.4g} at epoch {self.best_epoch})"
                )

    def on_fit_end(self, state: TrainState) -> None:
        if self.restore_best and self.best_weights is not None and not state.diverged:
            state.model.load_state_dict(self.best_weights)
            state.restored_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.wait, self.best_weights = state["wait"], state["best_weights"]


class DivergenceGuard(Callback):
    """Stop as soon as a loss or gradient norm is not finite, recording the step.

    Reading the loss synchronises with the device, so on a GPU it is checked every ``every`` steps and at
    each epoch's end instead of after every step.
    """

    def __init__(self, every: int = 1) -> None:
        self.every = every

    def on_step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        if state.step % self.every == 0 and not bool(torch.isfinite(loss)):
            state.mark_diverged(f"loss is {float(loss)} at step {state.step}")

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        bad = [k for k in ("train_loss", "grad_norm") if k in metrics and not math.isfinite(metrics[k])]
        if bad and not state.diverged:
            state.mark_diverged(f"{bad[0]} is {metrics[bad[0]]} in epoch {state.epoch}")


class Checkpoint(Callback):
    """Save the whole training state atomically at every epoch end, every ``every_s`` seconds inside an
    epoch, and when training is interrupted. Put it last, so that the other callbacks' state is current.

    Args:
        path: the checkpoint file; written through a temporary file, fsync and rename.
        every_s: seconds between checkpoints inside an epoch (``0``: only at epoch ends and interrupts).
    """

    def __init__(self, path: Path, *, every_s: float = 60.0) -> None:
        self.path, self.every_s = path, every_s
        self._last = time.monotonic()

    def save(self, state: TrainState) -> None:
        from lineup._io import atomic_write

        content = state.state_dict()
        atomic_write(self.path, lambda f: torch.save(content, f))
        self._last = time.monotonic()

    def on_step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        if state.interrupted or (self.every_s > 0 and time.monotonic() - self._last >= self.every_s):
            self.save(state)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        self.save(state)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The content of a checkpoint file, or ``None`` when there is none.

    Loaded with ``weights_only=True``: a checkpoint holds tensors and plain data, never code to execute.
    """
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


class ProgressBar(Callback):
    """A progress bar over the steps of each epoch, with the latest metrics."""

    def __init__(self, description: str = "", *, position: int = 1, leave: bool = False) -> None:
        self.description, self.position, self.leave = description, position, leave
        self._bar: Any = None

    def on_epoch_start(self, state: TrainState) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=state.steps_per_epoch, desc=f"{self.description} epoch {state.epoch + 1}/"
                         f"{state.max_epochs}", position=self.position, leave=self.leave, unit="step",
                         dynamic_ncols=True)

    def on_step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            shown = {k: f"{metrics[k]:.4f}" for k in ("train_loss", "val_loss", "val_acc") if k in metrics}
            self._bar.set_postfix(shown)
            self._bar.close()
            self._bar = None

    def on_fit_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.close()
