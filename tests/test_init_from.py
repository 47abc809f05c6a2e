"""A model that starts from another entry's trained weights: a U-Net whose encoder is a trained ResNet-18."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lineup import Store
from lineup.cli import main
from lineup.errors import SpecError
from lineup.models import create_model

STUDY = """
[study]
name = "pretrained"
seeds = [0, 1]

[data]
dataset = "digits"
classes = [0, 1, 2]

[train]
epochs = 2
batch_size = 32

[[models]]
name = "resnet18"
model = "resnet18"
options = {{ width = 0.125 }}

[[models]]
name = "unet-scratch"
model = "unet"
options = {{ encoder = "resnet", depth = 3, width = 0.125 }}

[[models]]
name = "unet-pretrained"
base = "unet-scratch"
init_from = "{source}"
train = {{ lr = 1e-12 }}  # so small that the copied weights can be compared after training
"""


def test_unet_encoder_starts_from_the_trained_resnet(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(source="resnet18"))
    store_dir = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(store_dir), "--no-progress", "--no-report"])
    assert result.exit_code == 0, result.output
    with Store(store_dir) as store:
        runs = {(r.label, r.seed): r for r in store.runs("pretrained")}
        assert all(r.status == "complete" for r in runs.values())
        for seed in (0, 1):
            resnet, unet = runs[("resnet18", seed)], runs[("unet-pretrained", seed)]
            assert unet.provenance["init_from"] == {"run": resnet.hash}  # the same seed's run
            assert unet.spec["init"] == {"run": resnet.hash}
            source = torch.load(store.artifact_dir(resnet.hash) / "final.pt", weights_only=True)
            final = torch.load(store.artifact_dir(unet.hash) / "final.pt", weights_only=True)
            for key in ("stem.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"):
                level = 0 if key.startswith(("stem", "layer1")) else int(key[5]) - 1
                torch.testing.assert_close(final[f"encoder.{level}.{key}"], source[f"features.{key}"],
                                           atol=1e-6, rtol=0)
            scratch = torch.load(store.artifact_dir(runs[("unet-scratch", seed)].hash) / "final.pt",
                                 weights_only=True)
            assert not torch.allclose(scratch["encoder.0.stem.weight"], source["features.stem.weight"])
        assert runs[("unet-pretrained", 0)].hash != runs[("unet-scratch", 0)].hash


def test_weights_that_do_not_fit_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(source="resnet18").replace("depth = 3", "depth = 2"))
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2
    assert "models[2] (unet-pretrained)" in result.output and "does not fit" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("source", "text"), [("resnet-18", "Did you mean 'resnet18'"),
                                              ("unet-pretrained", "cannot start from its own weights")])
def test_bad_init_from(tmp_path: Path, source: str, text: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(source=source))
    from lineup import load_study

    with pytest.raises(SpecError) as err:
        load_study(path)
    assert text in str(err.value) and err.value.key == "models[2].init_from"


def test_plain_unet_cannot_take_resnet_weights() -> None:
    unet = create_model("unet", (1, 28, 28), 2, depth=3, width=0.125)
    resnet = create_model("resnet18", (1, 28, 28), 2, width=0.125)
    with pytest.raises(SpecError, match='encoder = "resnet"'):
        unet.load_pretrained(resnet.state_dict(), "resnet18")


def test_an_interrupted_source_leaves_the_runs_that_start_from_it_pending(tmp_path: Path) -> None:
    # Interrupted while the source trains: the runs of the second wave were never reached, so they must stay
    # pending (not failed) and train when the study is run again.
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(source="resnet18").replace("seeds = [0, 1]", "seeds = [0]")
                     .replace("epochs = 2", "epochs = 200"))
    store_dir = tmp_path / "store"
    args = [sys.executable, "-m", "lineup", "run", str(study), "--store", str(store_dir), "--no-progress",
            "--no-report", "--checkpoint-every", "0.1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not list(store_dir.glob("artifacts/*/*/checkpoint.pt")):
        assert proc.poll() is None, "the study finished before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    with Store(store_dir) as store:
        status = {r.label: r.status for r in store.runs("pretrained")}
    assert status["resnet18"] == "interrupted", (status, out.decode())
    assert status["unet-pretrained"] == "pending", (status, out.decode())
