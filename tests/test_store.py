"""The SQLite store: a result written is the result read back."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lineup.errors import LineupError
from lineup.store import SCHEMA_VERSION, Failure, Store, owner_id
from lineup.study.worker import RunResult
from lineup.train import Evaluation, History


def _result() -> RunResult:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=5).astype(np.float32)
    return RunResult(
        status="complete",
        summary={"test_acc": 0.8, "params": 123, "stop_reason": "max epochs"},
        histories={"train": History(epochs=[{"epoch": 1, "train_loss": 1.5, "val_acc": 0.5},
                                            {"epoch": 2, "train_loss": 0.75, "val_acc": 0.625}],
                                    step_loss=[2.0, 1.0, 0.5])},
        evaluations={"test": Evaluation(loss=0.3, acc=0.8, probs=probs, y=np.array([0, 1, 2, 0, 1]),
                                        index=np.array([10, 11, 12, 13, 14]))},
        failures=[Failure(index=12, y=2, pred=0, confidence=0.9, image=np.arange(4, dtype=np.uint8).reshape(1, 2, 2))],
        provenance={"torch": "x"}, device="cpu", wall_time=1.25)


def test_round_trip(tmp_path: Path) -> None:
    h = "ab" * 32
    with Store(tmp_path) as store:
        store.register_study("s", {"study": {"name": "s"}}, None, [(h, "model-a", 0, "mlp", {"k": 1}, "")])
        assert store.status(h) == "pending"
        assert store.claim(h, owner_id())
        assert store.status(h) == "running"
        store.save_result(h, _result())
    with Store(tmp_path) as store:  # reopened: everything came from disk
        (rec,) = store.runs("s")
        assert (rec.label, rec.seed, rec.status, rec.model) == ("model-a", 0, "complete", "mlp")
        assert rec.summary == {"test_acc": 0.8, "params": 123, "stop_reason": "max epochs"}
        assert rec.spec == {"k": 1} and rec.wall_time == 1.25 and rec.provenance == {"torch": "x"}
        assert store.epochs(h) == [{"epoch": 1, "train_loss": 1.5, "val_acc": 0.5},
                                   {"epoch": 2, "train_loss": 0.75, "val_acc": 0.625}]
        np.testing.assert_array_equal(store.step_losses(h), [2.0, 1.0, 0.5])
        pred = store.predictions(h, "test")
        assert pred is not None
        np.testing.assert_array_equal(pred.probs, _result().evaluations["test"].probs)
        np.testing.assert_array_equal(pred.index, [10, 11, 12, 13, 14])
        (f,) = store.failures(h)
        assert (f.index, f.y, f.pred) == (12, 2, 0)
        np.testing.assert_array_equal(f.image, np.arange(4).reshape(1, 2, 2))
        assert store.run(h[:6]).hash == h
        assert store.studies()[0]["complete"] == 1


def test_reregistering_keeps_finished_runs(tmp_path: Path) -> None:
    h = "cd" * 32
    with Store(tmp_path) as store:
        store.register_study("s", {}, None, [(h, "a", 0, "mlp", {}, "")])
        store.save_result(h, _result())
        store.register_study("s", {}, None, [(h, "renamed", 0, "mlp", {}, "")])
        assert store.status(h) == "complete"
        assert store.runs("s")[0].label == "renamed"


def test_unknown_study_and_run_are_clear(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.register_study("fashion", {}, None, [])
        with pytest.raises(LineupError, match="Did you mean 'fashion'"):
            store.runs("fashon")
        with pytest.raises(LineupError, match="no run"):
            store.run("ffff")
        with pytest.raises(LineupError, match="not a run id"):
            store.run("../x")


def test_artifact_paths_come_from_hashes_only(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        h = "0f" * 32
        assert store.artifact_dir(h).resolve().is_relative_to(tmp_path.resolve())
        with pytest.raises(ValueError):
            store.artifact_dir("../../etc/passwd")


def test_leases_keep_a_run_with_one_live_process(tmp_path: Path) -> None:
    h = "ee" * 32
    with Store(tmp_path) as store:
        store.register_study("s", {}, None, [(h, "a", 0, "mlp", {}, "")])
        assert store.claim(h, owner_id())
        # This process is alive, so a second claimant is refused however it is called.
        assert not store.claim(h, "another-host:1")
        # A process of this machine that no longer exists holds nothing: its run is free at once.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        store._db.execute("UPDATE runs SET owner=? WHERE hash=?", (f"{socket.gethostname()}:{dead}", h))
        assert store.claim(h, "another-host:1", lease_s=0.2)
        # Another machine's process is trusted until its lease runs out, and renewing extends it.
        assert not store.claim(h, owner_id())
        store.renew("another-host:1", [h], lease_s=0.2)
        time.sleep(0.3)
        assert store.claim(h, owner_id())
        store.save_result(h, _result())
        assert not store.claim(h, "another-host:1")  # a complete run is never taken again


def test_older_stores_are_upgraded_in_place(tmp_path: Path) -> None:
    """A store written before run leases (schema 1) opens with its results intact and gains the new columns."""
    import sqlite3

    h = "cd" * 32
    with Store(tmp_path) as store:
        store.register_study("s", {"study": {"name": "s"}}, None, [(h, "m", 3, "mlp", {"k": 1}, "")])
        assert store.claim(h, owner_id())
        store.save_result(h, _result())
    db = sqlite3.connect(tmp_path / "lineup.sqlite")  # take the store back to schema 1
    db.execute("ALTER TABLE study_runs DROP COLUMN setting")
    db.execute("ALTER TABLE runs DROP COLUMN owner")
    db.execute("ALTER TABLE runs DROP COLUMN lease_until")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        (run,) = store.runs("s")
        assert (run.hash, run.label, run.seed, run.status, run.setting) == (h, "m", 3, "complete", "")
        assert store.predictions(h) is not None
        version = store._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        assert int(version) == SCHEMA_VERSION
        store.register_study("s", {"study": {"name": "s"}}, None, [(h, "m", 3, "mlp", {"k": 1}, "noisy")])
        assert store.runs("s")[0].setting == "noisy"
