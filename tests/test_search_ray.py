"""Search trials as Ray tasks: the feed keeps as many trials in flight as the cluster has room for, trials prune
themselves on the Ray workers, and the search ends with its tuned runs, as with the other executors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import run_cli
from lineup import Store

pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'lineup[ray]'")

STUDY = """
[study]
name = "ray-search"
seeds = [0, 1]

[data]
dataset = "digits"
classes = [0, 1, 2, 3]
val_fraction = 0.2

[train]
epochs = 3
batch_size = 32
threads = 1

[search]
searcher = "random"
pruner = "successive_halving"
budget = { trials = 5 }
space.lr = { log_uniform = [1e-4, 0.3] }

[[models]]
name = "mlp"
model = "mlp"
options = { hidden = [16] }
"""


def test_a_search_runs_as_ray_tasks(tmp_path: Path) -> None:
    study = tmp_path / "ray.toml"
    study.write_text(STUDY)
    printed = run_cli(study, tmp_path / "store", "--executor", "ray", "--cpus-per-run", "1")
    assert "1 model searches, 7 trained now (of which 5 search trials)" in printed
    with Store(tmp_path / "store") as store:
        records = store.runs("ray-search")
        trials = [r for r in records if r.role == "trial"]
        assert sorted(r.spec["trial"]["number"] for r in trials) == list(range(5))
        assert {r.status for r in trials} <= {"complete", "pruned"}
        # successive halving recorded each trial's rungs where it ran, for the trials after it
        assert all("completed_rung_0" in r.summary["trial"]["system_attrs"] for r in trials)
        assert [r.status for r in records if r.role == "tuned"] == ["complete", "complete"]
