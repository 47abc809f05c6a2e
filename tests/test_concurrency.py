"""Two `lineup run` processes on one study share the work: no run is trained twice, the store stays whole."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from lineup import Store

STUDY = """
[study]
name = "shared"
seeds = [0, 1, 2]

[data]
dataset = "mnist-5k"
classes = [3, 8]
train_size = 400
test_size = 100

[train]
epochs = 2
batch_size = 20
threads = 1

[[models]]
name = "../../etc/passwd"
model = "mlp"
options = { hidden = [32] }

[[models]]
name = "lenet"
model = "lenet5"
options = { channels = [4, 8] }
"""


def test_two_processes_share_a_study(tmp_path: Path) -> None:
    study = tmp_path / "shared.toml"
    study.write_text(STUDY)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "lineup", "run", str(study), "--store", str(store), "--no-progress", "--no-report"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out
    trained = [int(re.search(r"(\d+) trained now", out).group(1)) for out in outputs]  # type: ignore[union-attr]
    assert sum(trained) == 6, outputs  # every run exactly once, whichever process took it
    with Store(store) as s:
        assert [r.status for r in s.runs("shared")] == ["complete"] * 6
    with sqlite3.connect(store / "lineup.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_names_never_become_paths(tmp_path: Path) -> None:
    study = tmp_path / "shared.toml"
    study.write_text(STUDY.replace("seeds = [0, 1, 2]", "seeds = [0]"))
    store = tmp_path / "store"
    out = subprocess.run([sys.executable, "-m", "lineup", "run", str(study), "--store", str(store), "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in written)
    assert not [p for p in written if "passwd" in p.name or "etc" in p.parts]
    html = (store / "reports" / "shared" / "report.html").read_text()
    assert "../../etc/passwd" in html  # shown as the label it is
