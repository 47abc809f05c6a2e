"""End to end: a study file on real MNIST digits through training, the store and the report."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lineup import Store, load_study, run_study, runs_frame
from lineup.cli import main
from lineup.report import build_report

STUDY = """
[study]
name = "tiny"
title = "Tiny <b>study</b>"
seeds = [0, 1]

[data]
dataset = "mnist-5k"
classes = [0, 1]
train_size = 300
test_size = 200

[train]
epochs = 2
batch_size = 32
early_stopping = {{ monitor = "val_loss", patience = 1 }}

[protocol]
refit = {refit}
failure_cases = 4

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "lenet5"
model = "lenet5"
options = {{ channels = [4, 8], fc = [16, 8] }}

[[models]]
name = "<script>alert(1)</script>"
base = "lenet5"
train = {{ lr = 0.01 }}
"""


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(STUDY.format(refit="false"))
    return p


def test_run_store_report_and_rerun(study_file: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "results"
    cli = CliRunner()
    first = cli.invoke(main, ["run", str(study_file), "--store", str(store_dir), "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "6 runs, 6 trained now, 0 already in the store" in first.output
    with Store(store_dir) as store:
        records = store.runs("tiny")
        assert [r.status for r in records] == ["complete"] * 6
        df = runs_frame(store, "tiny")
        # the DataFrame is the store's content, row for row
        assert list(df["hash"]) == [r.hash for r in records]
        assert list(df["test_acc"]) == [r.summary["test_acc"] for r in records]
        for r in records:
            pred = store.predictions(r.hash, "test")
            assert pred is not None and pred.probs.shape == (200, 2)
            assert r.summary["test_acc"] == pytest.approx(float((pred.pred == pred.y).mean()))
            assert r.provenance["torch"] and r.wall_time and r.wall_time > 0
            assert len(store.epochs(r.hash)) == r.summary["epochs_trained"]
            emb = store.embeddings(r.hash)
            assert emb is not None and emb[0].shape == (200,)
            np.testing.assert_array_equal(emb[0], pred.index)  # 200 test examples < 1000: all of them, in order
        assert store.embeddings(records[0].hash)[1].shape == (200, 784)  # softmax regression: the pixels
        assert store.embeddings(records[2].hash)[1].shape == (200, 8)  # LeNet: its last hidden layer
        assert records[0].summary["params"] == 784 * 2 + 2  # softmax regression, 2 classes
        # LeNet (4, 8) channels, fc (16, 8): 4*25+4 + 8*4*25+8 + 200*16+16 + 16*8+8 + 8*2+2 = 4,282
        assert records[2].summary["params"] == 4282
        # digits 0 vs 1 are almost linearly separable: even this tiny training gets far above chance
        assert max(r.summary["test_acc"] for r in records) > 0.95

    second = cli.invoke(main, ["run", str(study_file), "--store", str(store_dir), "--no-progress"])
    assert second.exit_code == 0, second.output
    assert "6 runs, 0 trained now, 6 already in the store" in second.output

    report = store_dir / "reports" / "tiny" / "report.html"
    html = report.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "Tiny &lt;b&gt;study&lt;/b&gt;" in html
    for section in ('id="summary"', 'id="accuracy"', 'id="curves"', 'id="per-class"', 'id="models"'):
        assert section in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 2 + 3  # curves, steps, per class, ...
    assert not re.search(r'(src|href)="https?://', html)  # self-contained: opens offline
    assert (store_dir / "reports" / "tiny" / "tables" / "accuracy.csv").exists()

    report.unlink()
    rebuilt = cli.invoke(main, ["report", "tiny", "--store", str(store_dir)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert report.exists()

    listed = cli.invoke(main, ["ls", "tiny", "--store", str(store_dir)])
    assert listed.exit_code == 0 and listed.output.count("complete") == 6
    shown = cli.invoke(main, ["show", records[0].hash[:8], "--store", str(store_dir)])
    assert shown.exit_code == 0 and records[0].hash in shown.output


def test_refit_keeps_both_results(tmp_path: Path) -> None:
    p = tmp_path / "tiny.toml"
    p.write_text(STUDY.format(refit="true").replace("seeds = [0, 1]", "seeds = [0]"))
    study = load_study(p)
    with Store(tmp_path / "results") as store:
        outcome = run_study(study, store, progress=False)
        for _, result in outcome.trained:
            assert result.status == "complete"
            assert result.summary["refit_epochs"] == result.summary["best_epoch"]
            assert 0.0 <= result.summary["refit_test_acc"] <= 1.0
            assert set(result.histories) == {"train", "refit"}
            assert len(result.histories["refit"].epochs) == result.summary["best_epoch"]
            assert "val_loss" not in result.histories["refit"].epochs[0]  # no validation data left to watch
        path = build_report(store, "tiny")
        assert "refit test acc" in path.read_text()


def test_bad_model_option_fails_before_the_store_is_created(study_file: Path, tmp_path: Path) -> None:
    study_file.write_text(study_file.read_text().replace("channels = [4, 8]", "chanels = [4, 8]"))
    store_dir = tmp_path / "results"
    out = CliRunner().invoke(main, ["run", str(study_file), "--store", str(store_dir)])
    assert out.exit_code == 2
    assert "chanels" in out.output and "channels" in out.output and str(study_file) in out.output
    assert not store_dir.exists()


def test_a_diverging_run_is_recorded_and_the_study_goes_on(study_file: Path, tmp_path: Path) -> None:
    study_file.write_text(study_file.read_text().replace("train = { lr = 0.01 }", "train = { lr = 1e6 }")
                          .replace("seeds = [0, 1]", "seeds = [0]"))
    with Store(tmp_path / "results") as store:
        run_study(load_study(study_file), store, progress=False)
        status = {r.label: r.status for r in store.runs("tiny")}
        assert status["softmax"] == "complete" and status["lenet5"] == "complete"
        assert status["<script>alert(1)</script>"] == "diverged"
        build_report(store, "tiny")  # a report with a diverged run still builds
