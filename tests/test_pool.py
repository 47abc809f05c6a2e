"""The process-pool executor: parallel runs on this machine give the results of one-after-another runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lineup import Store
from lineup.study.executors import plan_workers

STUDY = """
[study]
name = "pool"
seeds = [0, 1, 2]

[data]
dataset = "mnist-5k"
classes = [1, 7]
train_size = 300
test_size = 100

[train]
epochs = 2
batch_size = 25
threads = 1

[[models]]
name = "lenet"
model = "lenet5"
options = { channels = [4, 8], dropout = 0.2 }
"""


@pytest.mark.parametrize(("runs", "cores", "workers", "expected"), [
    (12, 2, None, (2, 1)),   # small runs on 2 cores: two single-threaded processes
    (1, 2, None, (1, 2)),    # a single run gets both cores as threads
    (3, 16, None, (3, 5)),   # never more processes than runs; spare cores become threads
    (12, 8, 2, (2, 4)),      # an explicit worker count wins
])
def test_plan_workers(runs: int, cores: int, workers: int | None, expected: tuple[int, int]) -> None:
    assert plan_workers(runs, cores=cores, workers=workers) == expected


def _run(study: Path, store: Path, *extra: str) -> str:
    out = subprocess.run([sys.executable, "-m", "lineup", "run", str(study), "--store", str(store), "--no-progress",
                          "--no-report", *extra], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_pool_matches_local(tmp_path: Path) -> None:
    study = tmp_path / "pool.toml"
    study.write_text(STUDY)
    _run(study, tmp_path / "local")
    assert "3 trained now" in _run(study, tmp_path / "pool", "--executor", "pool", "--workers", "2")
    with Store(tmp_path / "local") as a, Store(tmp_path / "pool") as b:
        for x, y in zip(a.runs("pool"), b.runs("pool"), strict=True):
            assert (x.hash, y.status) == (y.hash, "complete")
            assert x.summary["test_acc"] == y.summary["test_acc"]
            np.testing.assert_array_equal(a.step_losses(x.hash), b.step_losses(y.hash))
