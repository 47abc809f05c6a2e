"""TensorBoard export: event files read back with TensorBoard's own reader hold exactly what the store holds."""

from __future__ import annotations

import doctest
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lineup import Store, load_study, run_study
from lineup.cli import main
from lineup.report import export

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

STUDY = """
[study]
name = "tb"
seeds = [0, 1]

[data]
dataset = "digits"
train_size = 400

[train]
epochs = 3
batch_size = 64

[protocol]
refit = true

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "mlp <wide>"
model = "mlp"
options = { hidden = [32] }
train = { lr = 0.003 }
"""


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("tb")
    (root / "tb.toml").write_text(STUDY)
    with Store(root / "results") as store:
        run_study(load_study(root / "tb.toml"), store, progress=False)
    yield root / "results"


def _read(folder: Path) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def _series(acc: event_accumulator.EventAccumulator, tag: str) -> tuple[list[int], np.ndarray]:
    events = acc.Scalars(tag)
    return [e.step for e in events], np.array([e.value for e in events])


def test_event_files_hold_the_stored_metrics(store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tensorboard"
    args = ["report", "tb", "--store", str(store_dir), "--out", str(tmp_path / "report"), "--tensorboard", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"tensorboard: 4 runs in {out}" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["mlp__wide__seed0", "mlp__wide__seed1", "softmax_seed0",
                                                     "softmax_seed1"]
    with Store(store_dir) as store:
        for rec in store.runs("tb"):
            folder = out / export.run_folder(rec.label, rec.seed)
            assert len(list(folder.glob("events.out.tfevents.*"))) == 1
            acc = _read(folder)
            for phase, prefix in (("train", ""), ("refit", "refit/")):
                epochs = store.epochs(rec.hash, phase)
                assert len(epochs) == 3
                for metric in ("train_loss", "train_acc", "grad_norm", "time_s", *(["val_loss", "val_acc"]
                                                                                    if phase == "train" else [])):
                    steps, values = _series(acc, f"{prefix}epoch/{metric}")
                    assert steps == [1, 2, 3], metric
                    np.testing.assert_allclose(values, [e[metric] for e in epochs], rtol=1e-6, err_msg=metric)
                _, wall = _series(acc, f"{prefix}epoch/wall_time_s")
                np.testing.assert_allclose(wall, np.cumsum([e["time_s"] for e in epochs]), rtol=1e-6)
                steps, losses = _series(acc, f"{prefix}step/train_loss")
                stored = store.step_losses(rec.hash, phase)
                assert len(stored) > 3 and steps == list(range(1, len(stored) + 1))
                np.testing.assert_allclose(losses, stored, rtol=1e-6)
            assert "refit/epoch/val_loss" not in acc.Tags()["scalars"]  # the refit has no validation split
            _, final = _series(acc, "final/test_acc")
            assert final[0] == pytest.approx(rec.summary["test_acc"], rel=1e-6)

            content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
            start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}  # protobuf Values
            assert hp["label"] == rec.label and hp["seed"] == rec.seed and hp["model.name"] == rec.model
            assert hp["train.lr"] == pytest.approx(0.003 if rec.label.startswith("mlp") else 0.001)
            if rec.model == "mlp":
                assert hp["model.options.hidden"] == "[32]"

    # exporting again replaces the event files instead of adding a second copy of every curve
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    for folder in out.iterdir():
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert len(_read(folder).Scalars("epoch/train_loss")) == 3


def test_without_tensorboard_the_option_says_what_to_install(store_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the package were not installed: an import of a module whose sys.modules entry is None fails.
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    for name in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
    result = CliRunner().invoke(main, ["report", "tb", "--store", str(store_dir), "--out", str(tmp_path / "report"),
                                       "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 1
    assert "pip install 'lineup[tensorboard]'" in result.output
    assert not (tmp_path / "report").exists() and not (tmp_path / "tb").exists()  # failed before any work


def test_docstring_examples() -> None:
    assert doctest.testmod(export).failed == 0
