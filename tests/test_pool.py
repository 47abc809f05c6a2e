"""The process-pool executor: parallel runs on this machine give the results of one-after-another runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import assert_same_runs, run_cli
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


def test_pool_matches_local(tmp_path: Path) -> None:
    study = tmp_path / "pool.toml"
    study.write_text(STUDY)
    run_cli(study, tmp_path / "local")
    assert "3 trained now" in run_cli(study, tmp_path / "pool", "--executor", "pool", "--workers", "2")
    assert_same_runs(tmp_path / "local", tmp_path / "pool", "pool")
