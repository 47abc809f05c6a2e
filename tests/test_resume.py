"""Nothing lost: a study killed mid-epoch resumes to the same bits as one that never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lineup import Store, load_study, run_study

STUDY = """
[study]
name = "resume"
seeds = [3]

[data]
dataset = "mnist-5k"
train_size = 3000
test_size = 500

[train]
epochs = 4
batch_size = 16
threads = 1   # the same arithmetic in the test process and in the command-line process
early_stopping = { monitor = "val_loss", patience = 3 }

[[models]]
name = "lenet-dropout"
model = "lenet5"
options = { dropout = 0.3, batch_norm = true }   # dropout draws random numbers; batch norm keeps statistics
"""


def _cli(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lineup", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _run_to_the_end(study: Path, store: Path) -> None:
    proc = _cli(["run", str(study), "--store", str(store), "--no-progress", "--no-report"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()


def _wait_for_mid_epoch_checkpoint(proc: subprocess.Popen[bytes], store: Path, timeout: float = 120) -> dict:
    """Poll until the run has checkpointed inside its second (or later) epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be interrupted"
        for ckpt in store.glob("artifacts/*/*/checkpoint.pt"):
            state = torch.load(ckpt, weights_only=True)
            if state["counters"]["epoch"] >= 1 and state["counters"]["step_in_epoch"] > 0:
                return state
        time.sleep(0.02)
    raise AssertionError("no mid-epoch checkpoint appeared")


def _outcome(store_dir: Path) -> tuple[dict, list[dict], np.ndarray, np.ndarray]:
    with Store(store_dir) as store:
        (run,) = store.runs("resume")
        assert run.status == "complete", run.error
        weights = torch.load(store.artifact_dir(run.hash) / "final.pt", weights_only=True)
        epochs = [{k: v for k, v in e.items() if k != "time_s"} for e in store.epochs(run.hash)]
        pred = store.predictions(run.hash, "test")
        assert pred is not None
        return weights, epochs, store.step_losses(run.hash), pred.probs


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    root = tmp_path_factory.mktemp("reference")
    study = root / "resume.toml"
    study.write_text(STUDY)
    with Store(root / "store") as store:
        run_study(load_study(study), store, progress=False)
    return study, _outcome(root / "store")


def _assert_same(a: tuple, b: tuple) -> None:
    wa, ea, sa, pa = a
    wb, eb, sb, pb = b
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # bit for bit, not approximately
    assert ea == eb
    np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(pa, pb)


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(reference: tuple, tmp_path: Path) -> None:
    study, expected = reference
    store = tmp_path / "store"
    proc = _cli(["run", str(study), "--store", str(store), "--no-progress", "--checkpoint-every", "0.1"])
    state = _wait_for_mid_epoch_checkpoint(proc, store)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert state["counters"]["step_in_epoch"] > 0
    with Store(store) as s:
        assert [r.status for r in s.runs("resume")] == ["running"]  # left behind by the dead process
    _run_to_the_end(study, store)  # the dead owner's lease is recognised and the run resumes
    _assert_same(_outcome(store), expected)


def test_sigterm_checkpoints_marks_interrupted_and_resumes(reference: tuple, tmp_path: Path) -> None:
    study, expected = reference
    store = tmp_path / "store"
    proc = _cli(["run", str(study), "--store", str(store), "--no-progress", "--checkpoint-every", "0.1"])
    _wait_for_mid_epoch_checkpoint(proc, store)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out.decode()
    assert b"run the same command again to resume" in out
    with Store(store) as s:
        (run,) = s.runs("resume")
        assert run.status == "interrupted"
        ckpt = torch.load(s.artifact_dir(run.hash) / "checkpoint.pt", weights_only=True)
        assert ckpt["counters"]["step_in_epoch"] > 0 and ckpt["counters"]["stop_reason"] == "interrupted"
    _run_to_the_end(study, store)
    _assert_same(_outcome(store), expected)
    with Store(store) as s:  # the stored result made the checkpoint unnecessary
        assert not list((s.root / "artifacts").glob("*/*/checkpoint.pt"))
