"""A triplet encoder, its fine-tuning and the same network from scratch in a study run through the command line: the
probe every run stores (cross-checked against scikit-learn on the run's saved weights) and the report's table
and views."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from lineup import Store, data
from lineup.cli import main
from lineup.models import create_model
from lineup.study.probe import PROBE_TRAIN_EXAMPLES, forward_features
from lineup.study.worker import embedding_rows

STUDY = """
[study]
name = "probe_study"
seeds = [0, 1]

[data]
dataset = "digits"

[train]
epochs = 3
batch_size = 64
threads = 1

[[models]]
name = "softmax-regression"
model = "softmax_regression"

[[models]]
name = "triplet"
model = "contrastive_encoder"
options = { channels = [8, 16], embedding_dim = 16, margin = 0.5, mining = "random" }
train = { objective = "triplet", lr = 3e-3 }

[[models]]
name = "fine-tuned"
base = "triplet"
init_from = "triplet"
train = { objective = "cross_entropy" }

[[models]]
name = "from-scratch"
base = "triplet"
train = { objective = "cross_entropy" }
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of the study above, run once with its report."""
    root = tmp_path_factory.mktemp("probe")
    (root / "study.toml").write_text(STUDY)
    result = CliRunner().invoke(main, ["run", str(root / "study.toml"), "--store", str(root / "r"), "--no-progress"])
    assert result.exit_code == 0, result.output
    return root / "r"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_run_stores_a_probe_equal_to_scikit_learn_on_its_saved_weights(study: Path) -> None:
    bundle = data.load("digits")
    with Store(study) as store:
        runs = {(r.label, r.seed): r for r in store.runs("probe_study")}
        assert len(runs) == 8 and all(r.status == "complete" for r in runs.values())
        for label in ("triplet", "from-scratch"):
            run = runs[(label, 1)]
            model = create_model("contrastive_encoder", bundle.input_shape, 10, **run.spec["model"]["options"])
            model.load_state_dict(torch.load(store.artifact_dir(run.hash) / "final.pt", weights_only=True))
            model.eval()
            train = bundle.train.take(embedding_rows(len(bundle.train), PROBE_TRAIN_EXAMPLES))
            f_train = forward_features(model, train, bundle.normalization, device=torch.device("cpu"), batch_size=512)
            f_test = forward_features(model, bundle.test, bundle.normalization, device=torch.device("cpu"),
                                      batch_size=512)
            scaler = StandardScaler().fit(f_train)
            reference = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(f_train), train.y.numpy())
            expected = float((reference.predict(scaler.transform(f_test)) == bundle.test.y.numpy()).mean())
            assert run.summary["probe_acc"] == pytest.approx(expected, abs=1e-12)
            assert run.summary["probe_dim"] == 16 and run.summary["probe_train_examples"] == len(bundle.train)
        # Softmax regression's features are its 64 pixels; the triplet encoder's probe beats chance (10%) widely.
        assert runs[("softmax-regression", 0)].summary["probe_dim"] == 64
        assert min(runs[("triplet", s)].summary["probe_acc"] for s in (0, 1)) > 0.5


def test_report_compares_probe_fine_tuning_and_training_from_scratch(study: Path) -> None:
    out = study / "reports" / "probe_study"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Linear probes and views" in html
    with Store(study) as store:
        summaries = {(r.label, r.seed): r.summary for r in store.runs("probe_study")}
    probes = {row["model"]: row for row in _rows(out / "tables" / "probes.csv")}
    assert list(probes) == ["softmax-regression", "triplet", "fine-tuned", "from-scratch"]
    mean = 100 * np.mean([summaries[("triplet", s)]["probe_acc"] for s in (0, 1)])
    assert probes["triplet"]["linear probe test acc % [95% CI]"].startswith(f"{mean:.2f} [")
    assert probes["fine-tuned"]["objective"] == "cross_entropy, from triplet"
    encoder = {row["model"]: row for row in _rows(out / "tables" / "encoder_00.csv")}
    assert list(encoder) == ["triplet", "fine-tuned", "from-scratch", "softmax-regression"]
    assert {m: r["evaluated as"] for m, r in encoder.items()} == {
        "triplet": "linear probe on the frozen embedding",
        "fine-tuned": "fine-tuned from triplet, every weight trained",
        "from-scratch": "the same network from scratch, cross_entropy",
        "softmax-regression": "linear model on the raw pixels",
    }
    scratch = 100 * np.mean([summaries[("from-scratch", s)]["test_acc"] for s in (0, 1)])
    assert encoder["from-scratch"]["test acc % [95% CI]"].startswith(f"{scratch:.2f} [")
    for name in ("features_pca", "features_tsne"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
    assert "PCA of each model&#39;s features" in html and "t-SNE of each model&#39;s features" in html
