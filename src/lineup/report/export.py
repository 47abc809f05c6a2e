"""A study's training histories as TensorBoard event files, one folder per run, for people who browse runs there.

Each run's folder (``<model label>_seed<seed>``, under ``<setting>/`` in a study with several data settings) holds
the per-epoch metrics under ``epoch/<metric>`` with the epoch as the step (``train_loss``, ``val_loss``,
``train_acc``, ``val_acc``, ``grad_norm``, ``lr``, ``time_s`` and whatever else the history holds, plus
``epoch/wall_time_s``, the cumulative seconds), the training loss of every optimizer step under
``step/train_loss``, the refit's under ``refit/...`` when the study refits, and the resolved run spec as
hyper-parameters with the final metrics (``final/test_acc``, ...) for TensorBoard's HParams tab. Values are read
from the store, so the export says exactly what the report does (TensorBoard keeps scalars as float32).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from lineup.errors import LineupError
from lineup.store import FINISHED, RunRecord, Store

#: Final metrics of a run's summary shown beside its hyper-parameters.
FINAL = ("test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss", "refit_test_acc",
         "epochs_trained", "params")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def require_tensorboard() -> type:
    """The ``SummaryWriter`` class, or a ``LineupError`` that says how to install what it needs.

    Called before any work so that a missing package fails at once, not after the report is written.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch raises it when the tensorboard package is missing
        raise LineupError("exporting to TensorBoard needs the tensorboard package: "
                          "pip install 'lineup[tensorboard]'") from e
    return SummaryWriter


def run_folder(label: str, seed: int, setting: str = "") -> str:
    """A run's folder name under the export directory: the label and seed, made safe as a path.

    >>> run_folder("lenet5 <bn>", 2), run_folder("../x", 0)
    ('lenet5__bn__seed2', '_.._x_seed0')
    >>> run_folder("m", 1, "noisy 10%")
    'noisy_10_/m_seed1'
    """
    name = _safe(f"{label}_seed{seed}")
    return f"{_safe(setting)}/{name}" if setting else name


def _safe(text: str) -> str:
    text = _UNSAFE.sub("_", text)
    return "_" + text if text.startswith(".") or not text else text  # never "..", never hidden


def export_tensorboard(store: Store, study: str, out_dir: str | Path) -> dict[str, Path]:
    """Write one TensorBoard event-file folder per finished run of ``study`` under ``out_dir``.

    Exporting again replaces the event files of the folders it writes, so TensorBoard never shows a run twice.

    Args:
        store: the results store (read only).
        study: the study's name.
        out_dir: the folder to point ``tensorboard --logdir`` at; created if needed.

    Returns:
        ``{run hash: its folder}`` for every run written (complete or diverged; others have no history).

    Raises:
        LineupError: the tensorboard package is not installed, or the study is not in the store.
    """
    writer_class = require_tensorboard()
    from torch.utils.tensorboard.summary import hparams

    out = Path(out_dir)
    written: dict[str, Path] = {}
    for rec in store.runs(study):
        if rec.status not in FINISHED:
            continue
        folder = out / run_folder(rec.label, rec.seed, rec.setting)
        if folder in written.values():  # two labels that differ only in unsafe characters
            folder = folder.with_name(f"{folder.name}-{rec.hash[:8]}")
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        writer = writer_class(log_dir=str(folder))
        try:
            for phase, prefix in (("train", ""), ("refit", "refit/")):
                _write_history(writer, store, rec.hash, phase, prefix)
            metrics = {f"final/{k}": float(v) for k, v in rec.summary.items()
                       if k in FINAL and isinstance(v, (int, float)) and math.isfinite(v)}
            for summary in hparams(hyperparameters(rec), metrics):
                writer.file_writer.add_summary(summary)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, 0)
        finally:
            writer.close()
        written[rec.hash] = folder
    return written


def _write_history(writer: Any, store: Store, run_hash: str, phase: str, prefix: str) -> None:
    elapsed = 0.0
    for e in store.epochs(run_hash, phase):
        epoch = int(e["epoch"])
        for metric, value in e.items():
            if metric not in ("epoch", "step"):  # the step at the epoch's end is no curve of its own
                writer.add_scalar(f"{prefix}epoch/{metric}", value, epoch)
        if "time_s" in e:
            elapsed += e["time_s"]
            writer.add_scalar(f"{prefix}epoch/wall_time_s", elapsed, epoch)
    for step, loss in enumerate(store.step_losses(run_hash, phase), start=1):
        writer.add_scalar(f"{prefix}step/train_loss", loss, step)


def hyperparameters(rec: RunRecord) -> dict[str, bool | int | float | str]:
    """The run's resolved spec flattened to dotted keys (``train.lr``, ``model.options.dropout``), with its label
    and seed; lists as JSON text and unset (None) values left out, as TensorBoard takes only scalars and text.

    >>> from lineup.store import RunRecord
    >>> rec = RunRecord(hash="ab", label="bn", seed=1, model="lenet5", status="complete", summary={},
    ...                 spec={"model": {"name": "lenet5", "options": {"channels": [4, 8]}}, "train": {"lr": 0.1,
    ...                       "early_stopping": None}, "format": 2}, provenance={}, device=None, error=None,
    ...                 wall_time=None)
    >>> hyperparameters(rec)
    {'label': 'bn', 'seed': 1, 'model.name': 'lenet5', 'model.options.channels': '[4, 8]', 'train.lr': 0.1}
    """
    out: dict[str, bool | int | float | str] = {"label": rec.label, "seed": rec.seed}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        elif value is not None:
            out[prefix] = json.dumps(value)

    walk("", {k: v for k, v in rec.spec.items() if k not in ("format", "seed")})
    return out
