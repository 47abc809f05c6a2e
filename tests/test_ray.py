"""The Ray executor: a study run as Ray tasks on a local instance gives the results of the local executor."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_same_runs, run_cli
from lineup import Store

pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'lineup[ray]'")

STUDY = """
[study]
name = "ray"
seeds = [0, 1]

[data]
dataset = "mnist-5k"
classes = [4, 9]
train_size = 300
test_size = 100

[train]
epochs = 2
batch_size = 25
threads = 1   # what each Ray task gets with --cpus-per-run 1

[[models]]
name = "mlp"
model = "mlp"
options = { hidden = [32], dropout = 0.2 }
"""


def test_ray_executor_matches_local(tmp_path: Path) -> None:
    study = tmp_path / "ray.toml"
    study.write_text(STUDY)
    run_cli(study, tmp_path / "local")
    printed = run_cli(study, tmp_path / "ray", "--executor", "ray", "--cpus-per-run", "1")
    assert "2 trained now" in printed
    assert_same_runs(tmp_path / "local", tmp_path / "ray", "ray")
    with Store(tmp_path / "ray") as b:
        for r in b.runs("ray"):
            assert (b.artifact_dir(r.hash) / "final.pt").exists()  # written by the worker, in the store
    # run again with Ray: nothing left to do
    assert "0 trained now" in run_cli(study, tmp_path / "ray", "--executor", "ray")


LONG = (STUDY.replace("classes = [4, 9]\n", "").replace("seeds = [0, 1]", "seeds = [5]")
        .replace("epochs = 2", "epochs = 6").replace("train_size = 300", "train_size = 3000")
        .replace("batch_size = 25", "batch_size = 5"))  # long enough to be caught inside an epoch


def test_a_killed_ray_worker_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    study = tmp_path / "ray.toml"
    study.write_text(LONG)
    run_cli(study, tmp_path / "local")
    store = tmp_path / "ray"
    proc = subprocess.Popen([sys.executable, "-m", "lineup", "run", str(study), "--store", str(store),
                             "--no-progress", "--no-report", "--executor", "ray", "--checkpoint-every", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    killed = False
    while not killed and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        for ckpt in store.glob("artifacts/*/*/checkpoint.pt"):
            counters = torch.load(ckpt, weights_only=True)["counters"]
            if counters["step_in_epoch"] > 0:
                # Ray names a worker's process after the task it executes.
                killed = subprocess.run(["pkill", "-9", "-f", "ray::_ray_task"]).returncode == 0
        time.sleep(0.01)
    assert killed, "no Ray worker was found to kill"
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    with Store(tmp_path / "local") as a, Store(store) as b:
        (x,), (y,) = a.runs("ray"), b.runs("ray")
        assert y.status == "complete"
        np.testing.assert_array_equal(a.step_losses(x.hash), b.step_losses(y.hash))
        wa = torch.load(a.artifact_dir(x.hash) / "final.pt", weights_only=True)
        wb = torch.load(b.artifact_dir(y.hash) / "final.pt", weights_only=True)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
