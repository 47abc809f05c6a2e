"""Shared by the tests that drive `lineup run` in a separate process and compare two stores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from lineup import Store


def run_cli(study: Path, store: Path, *extra: str) -> str:
    """`lineup run STUDY --store STORE --no-progress --no-report EXTRA...` to the end; its standard output."""
    out = subprocess.run([sys.executable, "-m", "lineup", "run", str(study), "--store", str(store), "--no-progress",
                          "--no-report", *extra], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def assert_same_runs(store_a: Path, store_b: Path, study: str) -> None:
    """Both stores hold the study's runs, complete, with identical hashes, test accuracies and step losses."""
    with Store(store_a) as a, Store(store_b) as b:
        ra, rb = a.runs(study), b.runs(study)
        assert [r.hash for r in ra] == [r.hash for r in rb]
        for x, y in zip(ra, rb, strict=True):
            assert (x.status, y.status) == ("complete", "complete")
            assert x.summary["test_acc"] == y.summary["test_acc"]
            np.testing.assert_array_equal(a.step_losses(x.hash), b.step_losses(y.hash))
