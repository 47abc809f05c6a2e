"""A search killed half-way continues from its stored trials: no finished trial is trained again, the trial that
was running resumes from its checkpoint, and the search ends where an uninterrupted one ends."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from lineup import Store, load_study, run_study
from test_resume import _cli

STUDY = """
[study]
name = "search-resume"
seeds = [0]

[data]
dataset = "digits"
val_fraction = 0.2

[train]
epochs = 4
batch_size = 4          # small steps, so a trial lasts long enough to be killed inside it
threads = 1             # the same arithmetic in the test process and in the command-line processes

[search]
searcher = "tpe"
startup_trials = 3
pruner = "median"
prune_after_trials = 2
budget = { trials = 7 }
space.lr = { log_uniform = [1e-4, 0.3] }
space.weight_decay = { uniform = [0.0, 1e-3] }

[[models]]
name = "mlp"
model = "mlp"
options = { hidden = [32] }
"""


def _trials(store_dir: Path) -> dict[str, tuple[int, str, float | None]]:
    """hash -> (trial number, status, validation accuracy) of every stored trial."""
    with Store(store_dir) as store:
        return {r.hash: (r.spec["trial"]["number"], r.status, r.summary.get("val_acc"))
                for r in store.runs("search-resume") if r.role == "trial"}


def _times(store_dir: Path) -> dict[str, tuple[float, float]]:
    """hash -> (started, finished) of every finished run, straight from the database."""
    with closing(sqlite3.connect(store_dir / "lineup.sqlite")) as db:
        rows = db.execute("SELECT hash, started, finished FROM runs WHERE status IN ('complete', 'pruned')")
        return {h: (s, f) for h, s, f in rows}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, str, float | None]]]:
    root = tmp_path_factory.mktemp("reference")
    study = root / "search.toml"
    study.write_text(STUDY)
    with Store(root / "store") as store:
        run_study(load_study(study), store, progress=False)
    return study, _trials(root / "store")


def _wait_inside_a_trial(proc, store: Path, number: int, timeout: float = 240) -> str:  # type: ignore[no-untyped-def]
    """Poll until trial ``number`` or a later one has checkpointed inside its run (the local executor runs trials one
    after the other, so every trial before it is finished); its hash."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search finished before it could be killed"
        if (store / "lineup.sqlite").exists():
            try:
                with closing(sqlite3.connect(store / "lineup.sqlite", timeout=1)) as db:
                    running = [h for (h,) in db.execute(
                        "SELECT hash FROM runs WHERE status = 'running' AND json_extract(spec, '$.trial.number') >= ?",
                        (number,))]
            except sqlite3.OperationalError:  # the schema is being created
                running = []
            for h in running:
                ckpt = store / "artifacts" / h[:2] / h / "checkpoint.pt"
                try:
                    state = torch.load(ckpt, weights_only=True) if ckpt.exists() else None
                except (OSError, RuntimeError, EOFError):  # replaced while it was read
                    state = None
                # Before two thirds of an epoch of 288 steps: the trial cannot end before it is killed.
                if state is not None and 0 < state["counters"]["step_in_epoch"] < 200:
                    return h
        time.sleep(0.01)
    raise AssertionError(f"trial {number} did not start in time")


def test_a_killed_search_continues_from_its_stored_trials(reference: tuple, tmp_path: Path) -> None:
    study, expected = reference
    assert len(expected) == 7 and any(status == "pruned" for _, status, _ in expected.values())
    store = tmp_path / "store"
    proc = _cli(["run", str(study), "--store", str(store), "--no-progress", "--checkpoint-every", "0.05"])
    inside = _wait_inside_a_trial(proc, store, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _times(store)
    killed = _trials(store)
    finished = {h for h, (_, status, _) in killed.items() if status in ("complete", "pruned")}
    assert 2 <= len(finished) < 7
    assert inside not in finished and killed[inside][1] == "running"  # left behind mid-trial, with a checkpoint

    printed = run_cli(study, store)
    after = _trials(store)
    # The same search as one that never stopped: the same trials, the same outcomes.
    assert after == expected
    # No finished trial was trained again: each kept the times it had when the first process died ...
    times = _times(store)
    for h in finished:
        assert times[h] == before[h]
    # ... and the second process trained only the rest, then the tuned run.
    assert f"1 model searches, {7 - len(finished) + 1} trained now (of which {7 - len(finished)} search trials)" \
        in printed
    with Store(store) as s:
        (tuned,) = [r for r in s.runs("search-resume") if r.role == "tuned"]
        assert tuned.status == "complete"
