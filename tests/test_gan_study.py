"""GANs trained by the one fit loop: a study through the command line, its report, and exact resumption."""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lineup import Store
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.spec import parse_study
from lineup.study import generative
from lineup.study.runner import prepare
from lineup.study.worker import RunContext, execute_run
from lineup.train import OptimConfig, create_objective, fit

# 16 × 16 contour images: 300 training (8 steps of 40 per epoch), 75 validation, 100 test images; tiny networks.
STUDY = """
[study]
name = "gans"
seeds = [0]

[data]
dataset = "polynomial-contours"
options = { n_train = 300, n_test = 100, size = 16, degrees = [1, 2, 3] }
val_fraction = 0.2

[train]
epochs = 3
batch_size = 40
threads = 1

[[models]]
name = "dcgan"
model = "dcgan"
options = { latent_dim = 8, channels = [4, 8] }

[[models]]
name = "wgan"
model = "wgan"
options = { latent_dim = 8, channels = [4, 8], n_critic = 2 }
train = { optimizer = "rmsprop", lr = 5e-5 }

[[models]]
name = "wgan-gp"
model = "dcgan"
options = { loss = "wgan-gp", latent_dim = 8, channels = [4, 8], n_critic = 2 }
train = { lr = 1e-4 }
"""


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gans")
    (root / "gans.toml").write_text(STUDY)
    proc = subprocess.run([sys.executable, "-m", "lineup", "run", str(root / "gans.toml"), "--store",
                           str(root / "store"), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "store"


def test_a_gan_study_runs_through_the_command_line_and_stores_losses_distances_and_grids(cli_store: Path) -> None:
    with Store(cli_store) as store:
        runs = {r.label: r for r in store.runs("gans")}
        assert [r.status for r in runs.values()] == ["complete"] * 3, [r.error for r in runs.values()]
        steps = 3 * math.ceil(300 / 40)
        for label, run in runs.items():
            s = run.summary
            assert s["objective"] == "gan" and s["quality_examples"] == 100
            # Untrained-looking samples after 3 epochs are far from the test images; training images are close.
            assert s["frechet_distance"] > 5 * s["frechet_real"] >= 0
            assert s["sliced_wasserstein"] > s["sliced_wasserstein_real"] > 0
            assert 0 <= s["judge_test_acc"] <= 1 and s["judge"]["features"] == 84
            curves = s["gan_steps"]
            assert curves["bin"] == 1 and curves["step"] == list(range(1, steps + 1))
            wasserstein = label != "dcgan"
            expected = {"critic_loss", "wasserstein", "generator_loss"} if wasserstein else \
                {"discriminator_loss", "generator_loss", "d_real", "d_fake"}
            if label == "wgan-gp":
                expected.add("gradient_penalty")
            assert set(curves) - {"bin", "step"} == expected
            assert all(len(curves[k]) == steps and all(map(math.isfinite, curves[k])) for k in expected)
            # The epoch means of the per-step terms are the logged train_<term>.
            epochs = store.epochs(run.hash)
            first = next(iter(expected))
            per_epoch = np.asarray(curves[first]).reshape(3, -1).mean(axis=1)
            np.testing.assert_allclose([e[f"train_{first}"] for e in epochs], per_epoch, rtol=1e-5)
            folder = store.artifact_dir(run.hash)
            assert set(s["gan_images"]) == {"epoch001", "epoch002", "epoch003", "final"}
            for file in s["gan_images"].values():
                grid = np.asarray(Image.open(folder / file))
                assert grid.shape == (8 * 17 - 1, 8 * 17 - 1)  # 8 × 8 samples of 16 × 16, 1 pixel apart
            weights = torch.load(folder / "final.pt", weights_only=True)
            critic = [v for k, v in weights.items() if k.startswith("discriminator.") and v.is_floating_point()
                      and "running" not in k]
            if label == "wgan":  # clipped after every critic update
                assert max(float(v.abs().max()) for v in critic) <= 0.01
            else:
                assert max(float(v.abs().max()) for v in critic) > 0.01


def test_the_report_has_a_generative_section_with_both_distances_and_the_sample_grids(cli_store: Path) -> None:
    report = cli_store / "reports" / "gans"
    html = (report / "report.html").read_text(encoding="utf-8")
    section = html[html.index('id="generative"'):]
    assert "Fréchet distance" in section and "Sliced Wasserstein distance" in section
    assert "not the FID" in section
    assert section.count("data:image/png;base64,") >= 4  # the per-step losses and one grid row per model
    for i in range(3):
        assert (report / "figures" / f"generative_samples_{i:02d}.png").is_file()
    assert (report / "figures" / "generative_steps.png").is_file()
    with (report / "tables" / "generative_distances.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == ["dcgan", "wgan", "wgan-gp", "training images (no generator)"]
    with Store(cli_store) as store:
        frechet = {r.label: r.summary["frechet_distance"] for r in store.runs("gans")}
    assert rows[1][2].startswith(f"{frechet['dcgan']:.3f}")


class InterruptAfter(threading.Event):
    """Set after ``steps`` checks: the loop asks once per step, so training stops after that many steps."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.left = steps

    def is_set(self) -> bool:
        self.left -= 1
        return self.left <= 0


def _result(label: str, plan, ctx: RunContext):  # type: ignore[no-untyped-def]
    (run,) = [r for r in plan.runs if r.label == label]
    return execute_run(run, plan.data, ctx=ctx)


@pytest.mark.parametrize("label", ["dcgan", "wgan-gp"])
def test_a_gan_run_resumed_mid_epoch_ends_exactly_as_one_that_never_stopped(label: str, tmp_path: Path) -> None:
    plan = prepare(parse_study(tomllib.loads(STUDY)))
    generative._judges.clear()  # the judge is trained again too: it must come out the same
    whole = _result(label, plan, RunContext(artifact_dir=tmp_path / "whole"))
    assert whole.status == "complete", whole.error

    generative._judges.clear()
    folder = tmp_path / "resumed"
    stopped = _result(label, plan, RunContext(artifact_dir=folder, interrupt=InterruptAfter(10), checkpoint_every_s=0))
    assert stopped.status == "interrupted"
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert state["counters"]["epoch"] == 1 and state["counters"]["step_in_epoch"] == 2  # 8 steps per epoch
    assert set(state["optimizer"]) == {"generator", "discriminator", "probe"}
    resumed = _result(label, plan, RunContext(artifact_dir=folder))
    assert resumed.status == "complete", resumed.error

    a = torch.load(tmp_path / "whole" / "final.pt", weights_only=True)
    b = torch.load(folder / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    ha, hb = whole.histories["train"], resumed.histories["train"]
    assert [{k: v for k, v in e.items() if k != "time_s"} for e in ha.epochs] == \
        [{k: v for k, v in e.items() if k != "time_s"} for e in hb.epochs]
    assert ha.step_loss == hb.step_loss and ha.step_parts == hb.step_parts
    for key in ("frechet_distance", "sliced_wasserstein", "judge_test_acc", "gan_steps", "test_acc"):
        assert whole.summary[key] == resumed.summary[key], key
    for file in whole.summary["gan_images"].values():
        assert (tmp_path / "whole" / file).read_bytes() == (folder / file).read_bytes(), file


def test_the_optimizer_group_follows_the_lr_schedule_and_round_trips_its_state() -> None:
    plan = prepare(parse_study(tomllib.loads(STUDY)))
    torch.manual_seed(0)
    model = create_model("wgan_gp", plan.data.input_shape, plan.data.num_classes, latent_dim=8, channels=(4, 8))
    objective = create_objective("gan")
    group = objective.configure_optimizers(model, OptimConfig(name="adam", lr=1e-3))
    # Gulrajani et al.'s betas for the two adversaries; the probe keeps Adam's own.
    assert [g["betas"] for g in group.param_groups] == [(0.0, 0.9), (0.0, 0.9), (0.9, 0.999)]
    state = fit(model, objective, group, plan.data.train, plan.data.normalization, epochs=2, batch_size=40, seed=0,
                device=torch.device("cpu"), lr_schedule="cosine")
    # Cosine over 16 steps, set before each: the last step ran at 0.5 (1 + cos(pi 15 / 16)) of the base rate.
    last = 1e-3 * 0.5 * (1 + math.cos(math.pi * 15 / 16))
    assert [g["lr"] for g in group.param_groups] == pytest.approx([last] * 3)
    assert state.history.epochs[-1]["lr"] == pytest.approx(last)
    saved = group.state_dict()
    other = objective.configure_optimizers(model, OptimConfig(name="adam", lr=1e-3))
    other.load_state_dict(saved)
    assert all(torch.equal(a, b) for name in saved for a, b in zip(
        other[name].state_dict()["state"][0].values(), group[name].state_dict()["state"][0].values(), strict=True)
        if isinstance(a, torch.Tensor))
    with pytest.raises(ValueError, match="generator"):
        other.load_state_dict({"probe": saved["probe"]})


def test_grid_pixels_come_from_the_model_inputs_range() -> None:
    plan = prepare(parse_study(tomllib.loads(STUDY)))
    low, high = generative.input_range(plan.data.train, plan.data.normalization)
    norm = plan.data.normalization
    # Contour images are stored as bytes 0..255: their normalised range is (0 - mean) / std .. (1 - mean) / std.
    assert low == pytest.approx([(0 - norm.mean[0]) / norm.std[0]])
    assert high == pytest.approx([(1 - norm.mean[0]) / norm.std[0]])
    model = create_model("dcgan", plan.data.input_shape, 3, latent_dim=8, channels=(4, 8))
    model.set_input_range(low, high)
    with torch.no_grad():
        x = model.sample(50, torch.Generator().manual_seed(0))
    assert float(x.min()) >= low[0] - 1e-5 and float(x.max()) <= high[0] + 1e-5
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)  # the range travels with the weights
    assert "input_low" in torch.load(io.BytesIO(buf.getvalue()), weights_only=True)


@pytest.mark.parametrize(("options", "message"), [
    ({"clip": 0.01}, "clip bounds a WGAN critic"),
    ({"loss": "wgan", "gp_weight": 10.0}, "gp_weight weights the gradient penalty"),
    ({"loss": "wgan-gp", "critic_batch_norm": True}, "critic_batch_norm = false"),
    ({"loss": "wgan", "clip": -1.0}, "clip must be positive"),
    ({"n_critic": 0}, "n_critic must be at least 1"),
])
def test_bad_gan_options_are_refused_with_the_fix(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        create_model("dcgan", (1, 28, 28), 10, **options)
