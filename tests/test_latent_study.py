"""Autoencoders and VAEs in a study: their own objectives through the fit loop (logged terms, exact resume), the
latent read-outs a run stores beside the pixel and PCA baselines, and the report's "Latent spaces" section."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lineup import Store, data, load_study, run_study
from lineup.analysis.latent import latent_scores, pca_features
from lineup.models import create_model
from lineup.report import build_report
from lineup.report.collect import collect
from lineup.report.latent import latent_section
from lineup.study.latent import IMAGE_FILES, has_latent_space, latent_results
from lineup.train import Callback, create_objective, fit, list_objectives
from lineup.train.engine import TrainState
from lineup.train.objectives import batch_loss

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> data.DataBundle:
    return data.load("digits")  # 8x8 digits, 10 classes: 1,294 training, 144 validation, 359 test images


# ------------------------------------------------------------------------------------------------------------
# Objectives


def test_models_choose_their_own_objective_and_classifiers_keep_theirs() -> None:
    assert {"reconstruction", "elbo"} <= set(list_objectives())
    assert create_model("conv_autoencoder", (1, 8, 8), 3).default_objective == "reconstruction"
    assert create_model("conv_vae", (1, 8, 8), 3).default_objective == "elbo"
    assert create_model("lenet5", (1, 28, 28), 3).default_objective == "cross_entropy"
    assert has_latent_space(create_model("vae", (1, 8, 8), 3)) and has_latent_space(create_model("autoencoder",
                                                                                                 (1, 8, 8), 3))
    assert not has_latent_space(create_model("mlp", (1, 8, 8), 3))
    # On logits alone (no model at hand) both are the cross-entropy of the head.
    logits, y = torch.tensor([[2.0, -1.0], [0.5, 0.5]]), torch.tensor([0, 1])
    for name in ("reconstruction", "elbo"):
        torch.testing.assert_close(create_objective(name).loss(logits, y), create_objective("cross_entropy").loss(
            logits, y))


def test_a_classifier_batch_loss_is_exactly_its_objective_on_its_logits() -> None:
    torch.manual_seed(0)
    model = create_model("mlp", (1, 8, 8), 3)
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    r = batch_loss(create_objective("cross_entropy"), model, x, y, reduction="sum")
    assert r.parts == {}
    assert torch.equal(r.loss, torch.nn.functional.cross_entropy(model(x), y, reduction="sum"))


class _InterruptAt(Callback):
    """Asks the loop to stop after step ``step`` (as a signal handler would), once."""

    def __init__(self, step: int, event: threading.Event) -> None:
        self.step, self.event = step, event

    def on_step_end(self, state: TrainState, loss: torch.Tensor) -> None:
        if state.step == self.step:
            self.event.set()


def _fit_vae(bundle: data.DataBundle, *, stop_at: int = -1, resume: dict | None = None) -> TrainState:
    torch.manual_seed(0)
    model = create_model("vae", bundle.input_shape, bundle.num_classes, latent_dim=3, hidden=(32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    event = threading.Event()
    return fit(model, create_objective(model.default_objective), optimizer, bundle.train, bundle.normalization,
               epochs=2, batch_size=64, seed=0, device=CPU, val=bundle.val, callbacks=[_InterruptAt(stop_at, event)],
               resume=resume, interrupt=event)


def test_the_loop_logs_the_elbo_terms_and_resumes_them_bit_for_bit(digits: data.DataBundle) -> None:
    whole = _fit_vae(digits)
    for e in whole.history.epochs:
        for split in ("train", "val"):
            assert {f"{split}_cross_entropy", f"{split}_reconstruction", f"{split}_kl"} <= e.keys()
            assert e[f"{split}_kl"] > 0
        # loss = cross-entropy + elbo_weight (1) * (reconstruction + beta (1) * kl), term by term in the means
        total = e["train_cross_entropy"] + e["train_reconstruction"] + e["train_kl"]
        assert e["train_loss"] == pytest.approx(total, rel=1e-5)
        assert e["val_loss"] == pytest.approx(e["val_cross_entropy"] + e["val_reconstruction"] + e["val_kl"],
                                              rel=1e-5)

    # Stopped in the middle of the second epoch, saved and loaded as a checkpoint is ...
    stopped = _fit_vae(digits, stop_at=30)
    assert stopped.interrupted and stopped.epoch == 1
    assert len(stopped.epoch_parts["kl"]) == stopped.step_in_epoch and 0 < stopped.step_in_epoch < 21  # 21 a epoch
    buf = io.BytesIO()
    torch.save(stopped.state_dict(), buf)
    buf.seek(0)
    # ... and resumed, the run ends with the same weights and the same per-epoch terms as the one never stopped.
    resumed = _fit_vae(digits, resume=torch.load(buf, weights_only=True))
    strip = [{k: v for k, v in e.items() if k != "time_s"} for e in resumed.history.epochs]
    assert strip == [{k: v for k, v in e.items() if k != "time_s"} for e in whole.history.epochs]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# ------------------------------------------------------------------------------------------------------------
# What a run measures on a latent space


def _trained(name: str, bundle: data.DataBundle, **options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, bundle.input_shape, bundle.num_classes, supervised=False, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    fit(model, create_objective(model.default_objective), optimizer, bundle.train, bundle.normalization, epochs=6,
        batch_size=64, seed=0, device=CPU)
    return model.eval()


def test_a_vae_run_reads_its_code_beside_pixels_and_pca(digits: data.DataBundle, tmp_path: Path) -> None:
    model = _trained("vae", digits, latent_dim=4, hidden=(64,))
    out = latent_results(model, digits, device=CPU, batch_size=256, seed=0, artifact_dir=tmp_path)

    # The wiring: the code read-outs are those of the posterior means of the training and test splits, and the
    # PCA baseline is as wide as the code and fitted on the training split.
    norm = digits.normalization
    with torch.no_grad():
        z_train = model.encode(norm.apply(digits.train.x))[0].double().numpy()
        z_test = model.encode(norm.apply(digits.test.x))[0].double().numpy()
    y_train, y_test = digits.train.y.numpy(), digits.test.y.numpy()
    expected = latent_scores(z_train, y_train, z_test, y_test, k=10, seed=0)
    assert out["latent_svm_acc"] == pytest.approx(expected.svm_accuracy)
    assert out["latent_kmeans_nmi"] == pytest.approx(expected.kmeans.nmi)
    assert out["latent_gmm_ari"] == pytest.approx(expected.gmm.ari)
    a, b = pca_features(norm.apply(digits.train.x).double().numpy(), norm.apply(digits.test.x).double().numpy(),
                        dim=4)
    assert out["pca_dim"] == 4
    assert out["pca_svm_acc"] == pytest.approx(latent_scores(a, y_train, b, y_test).svm_accuracy)
    # The same estimators, fitted on the same training codes, scored on the validation split instead.
    with torch.no_grad():
        z_val = model.encode(norm.apply(digits.val.x))[0].double().numpy()
    y_val = digits.val.y.numpy()
    on_val = latent_scores(z_train, y_train, z_val, y_val, k=10, seed=0)
    assert out["latent_val_examples"] == len(y_val) == 144
    assert out["val_latent_kmeans_acc"] == pytest.approx(on_val.kmeans.accuracy)
    assert out["val_latent_svm_acc"] == pytest.approx(on_val.svm_accuracy)
    a_val = pca_features(norm.apply(digits.train.x).double().numpy(), norm.apply(digits.val.x).double().numpy(),
                         dim=4)[1]
    assert out["val_pca_gmm_acc"] == pytest.approx(latent_scores(a, y_train, a_val, y_val).gmm.accuracy)
    for rep in ("latent", "pixels", "pca"):
        for key in ("svm_acc", "kmeans_acc", "kmeans_nmi", "gmm_acc", "gmm_nmi"):
            assert 0.0 <= out[f"{rep}_{key}"] <= 1.0
    # A linear SVM separates the ten 8x8 digit classes on the pixels (measured: about 95%); a code learned without
    # labels in 6 epochs keeps much of that (measured: about 80%); ten clusters are far above chance (10%).
    assert out["pixels_svm_acc"] > 0.9
    assert out["latent_svm_acc"] > 0.5 and out["latent_kmeans_acc"] > 0.3

    kl = out["latent_kl_per_dim"]
    assert len(kl) == 4 and all(v >= 0 for v in kl)
    assert out["latent_active_dims"] == sum(v >= 0.01 for v in kl) and not out["posterior_collapsed"]

    # Mosaics: 10 test images over their reconstructions, 32 samples 8 a row, 4 dimensions x 9 steps; 8x8 images
    # with a 1-pixel gap: a mosaic of r rows and c columns is (9 r - 1) x (9 c - 1).
    assert out["latent_images"] == IMAGE_FILES
    shapes = {k: np.asarray(Image.open(tmp_path / f)).shape for k, f in IMAGE_FILES.items()}
    assert shapes == {"reconstructions": (17, 89), "samples": (35, 71), "traversal": (35, 80)}
    assert out["latent_traversal"]["kind"] == "dims"
    assert out["latent_traversal"]["dims"] == list(np.argsort(-np.asarray(kl), kind="stable"))  # most KL first


def test_an_autoencoder_run_has_no_prior_and_a_plane_traversal(digits: data.DataBundle, tmp_path: Path) -> None:
    model = _trained("autoencoder", digits, latent_dim=2, hidden=(64,))
    out = latent_results(model, digits, device=CPU, batch_size=256, seed=0, artifact_dir=tmp_path)
    assert "latent_kl_per_dim" not in out and set(out["latent_images"]) == {"reconstructions", "traversal"}
    assert out["latent_traversal"]["kind"] == "plane"
    assert np.asarray(Image.open(tmp_path / IMAGE_FILES["traversal"])).shape == (80, 80)  # 9 x 9 decoded points
    without_folder = latent_results(model, digits, device=CPU, batch_size=256, seed=0)
    assert "latent_images" not in without_folder and without_folder["latent_svm_acc"] == out["latent_svm_acc"]


# ------------------------------------------------------------------------------------------------------------
# Through a study to the report

STUDY = """
[study]
name = "latent"
seeds = [0]

[data]
dataset = "mnist-5k"
classes = [0, 1]
train_size = 300
test_size = 200

[train]
epochs = 3
batch_size = 32

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "vae-2"
model = "vae"
options = { latent_dim = 2, hidden = [64], supervised = false }
"""


def test_a_study_stores_latent_read_outs_and_reports_them(tmp_path: Path) -> None:
    path = tmp_path / "latent.toml"
    path.write_text(STUDY)
    with Store(tmp_path / "store") as store:
        run_study(load_study(path), store)
        softmax, vae = store.runs("latent")
        assert vae.status == "complete", vae.error
        assert "latent_svm_acc" not in softmax.summary  # a classifier has no latent space to read
        assert vae.summary["objective"] == "elbo" and vae.summary["latent_dim"] == 2
        assert {"test_reconstruction", "test_kl", "test_cross_entropy"} <= vae.summary.keys()
        assert {"train_kl", "val_kl"} <= store.epochs(vae.hash)[-1].keys()
        for file in vae.summary["latent_images"].values():
            assert (store.artifact_dir(vae.hash) / file).is_file()
        # Digits 0 vs 1 on pixels: a linear SVM gets nearly all 200 test images right.
        assert vae.summary["pixels_svm_acc"] >= 0.97

        report = build_report(store, "latent", format="md").read_text()
        section = report.split("## Latent spaces", 1)[1].split("\n## ", 1)[0]
        assert "**vae-2**" in section and "softmax" not in section
        assert "PCA-2 of the pixels" in section and "raw pixels" in section
        assert re.search(r"seed 0: (\d of 2 dimensions active|collapsed)", section)
        assert re.search(r"On the validation split \(\d+ examples a run;.*code: linear SVM \d+\.\d\d", section)
        out = store.root / "reports" / "latent"
        assert (out / "tables" / "latent_00.csv").read_text().startswith("representation,seeds,linear SVM acc %")
        assert (out / "figures" / "latent_scatter.png").is_file()
        assert (out / "figures" / "latent_images_00.png").is_file()

        data_ = collect(store, "latent")
        only_classifiers = replace(data_, runs=[r for r in data_.runs if r.label == "softmax"])
        assert latent_section(only_classifiers, lambda fig, name: "") is None


SPLITS_STUDY = """
[study]
name = "latent-splits"
seeds = [0, 1]

[data]
dataset = "mnist-5k"
classes = [0, 1]
train_size = 300

[[settings]]
name = "split-0"
test_split = { seed = 0 }

[[settings]]
name = "split-1"
test_split = { seed = 1 }

[train]
epochs = 2
batch_size = 32

[[models]]
name = "vae-wide"
model = "vae"
options = { latent_dim = 2, hidden = [64], supervised = false }

[[models]]
name = "vae-narrow"
model = "vae"
options = { latent_dim = 2, hidden = [16], supervised = false }
"""


def test_the_read_outs_of_every_data_setting_are_tabled_pooled_and_chosen_on_validation(tmp_path: Path) -> None:
    from lineup.analysis.stats import repeated_holdout_ci

    path = tmp_path / "splits.toml"
    path.write_text(SPLITS_STUDY)
    with Store(tmp_path / "store") as store:
        run_study(load_study(path), store)
        runs = store.runs("latent-splits")
        assert len(runs) == 8 and all(r.status == "complete" for r in runs)
        build_report(store, "latent-splits", format="md")
        table = (store.root / "reports" / "latent-splits" / "tables" / "latent_settings.csv").read_text()
        report = (store.root / "reports" / "latent-splits" / "report.md").read_text()
    rows = {(row[0], row[1]): row[2:] for row in csv.reader(io.StringIO(table))}
    assert rows.pop(("model", "setting"))[0] == "code k-means %"
    assert len(rows) == 6  # two models, two splits and the pooled row of each

    def of(label: str, split: str, key: str) -> list[float]:
        return [r.summary[key] for r in runs if r.label == label and r.setting == split]

    columns = ("latent_kmeans_acc", "pca_kmeans_acc", "latent_svm_acc", "pca_svm_acc", "val_latent_kmeans_acc",
               "val_latent_svm_acc")
    val_size = runs[0].summary["latent_val_examples"]
    assert val_size == 80  # 10% of the 800 kept for training, held out before train_size subsamples the rest
    for label in ("vae-wide", "vae-narrow"):
        means: dict[int, list[float]] = {}
        for split in ("split-0", "split-1"):
            for column, key in enumerate(columns):
                values = of(label, split, key)
                assert len(values) == 2
                assert float(rows[(label, split)][column].split()[0]) == pytest.approx(100 * np.mean(values), abs=0.006)
                means.setdefault(column, []).append(float(np.mean(values)))
        pooled = rows[(label, "mean over the 2 splits")]
        for column, key in enumerate(columns):  # the split is the unit; n_test is the split each was scored on
            expected = repeated_holdout_ci(means[column], n_train=300, n_test=val_size if "val" in key else 200)
            mean, low, high = (float(v.strip("[],")) for v in pooled[column].split())
            assert mean == pytest.approx(100 * expected.mean, abs=0.006)
            assert low == pytest.approx(100 * max(expected.low, 0.0), abs=0.006)
            assert high == pytest.approx(100 * min(expected.high, 1.0), abs=0.006)

    below = {label: sum(of(label, split, "latent_kmeans_acc")[i] < of(label, split, "pca_kmeans_acc")[i]
                        for split in ("split-0", "split-1") for i in range(2)) for label in ("vae-wide", "vae-narrow")}
    assert ("Runs whose code clusters (k-means) less accurately than the PCA of equal width: "
            f"vae-wide {below['vae-wide']} of 4; vae-narrow {below['vae-narrow']} of 4.") in report
    # The model with fewer validation errors over all its runs is named; equal counts name both.
    errors = {label: sum(val_size - round(v * val_size) for split in ("split-0", "split-1")
                         for v in of(label, split, "val_latent_kmeans_acc")) for label in ("vae-wide", "vae-narrow")}
    order = sorted(errors, key=lambda label: errors[label])
    chosen = " and ".join(label for label in order if errors[label] == errors[order[0]])
    assert (f"with k-means, {chosen} (errors in {4 * val_size} validation predictions: "
            f"{order[0]} {errors[order[0]]}, {order[1]} {errors[order[1]]})") in report
