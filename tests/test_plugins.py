"""Your own parts: registration with the built-in contracts, refusal before the first step, and plugins found by
entry point (an installed package) or named by a study, in every process that needs them and nowhere else."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import lineup
from lineup import DatasetTensors, LineupModel, Store
from lineup.errors import SpecError
from lineup.study import prepare
from registry_helpers import isolated_registries

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_model"


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_registries():
        yield


def _digits_study(*models: dict[str, object], **train: object) -> lineup.spec.Study:
    return lineup.make_study("parts", data={"dataset": "digits", "train_size": 200, "test_size": 100},
                             models=list(models), train={"epochs": 1, "batch_size": 50, **train})


# ---------------------------------------------------------------------------------------------------- models


class _Flat(LineupModel):
    """Linear classifier on the flattened image."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, *, out: int | None = None) -> None:
        super().__init__()
        self.feature_dim = math.prod(input_shape)
        self.fc = nn.Linear(self.feature_dim, out or num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


class _NoFeatures(LineupModel):
    """Overrides forward but forgets forward_features."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_a_decorated_model_trains_beside_built_in_ones(tmp_path: Path) -> None:
    @lineup.register_model
    def test_flat(input_shape: tuple[int, int, int], num_classes: int, *, out: int | None = None) -> _Flat:
        """A linear classifier on pixels, registered by a test."""
        return _Flat(input_shape, num_classes, out=out)

    from lineup.api import describe_models

    listed = {p.name: p for p in describe_models()}
    assert listed["test_flat"].options == {"out": None}
    assert listed["test_flat"].description == "A linear classifier on pixels, registered by a test."
    assert listed["test_flat"].origin == "test_plugins" and listed["lenet5"].origin == "lineup"

    results = lineup.run(_digits_study(lineup.model("flat", "test_flat"), lineup.model("softmax_regression")),
                         store=tmp_path / "store", report=False)
    runs = results.runs()
    assert list(runs["status"]) == ["complete", "complete"]
    with Store(tmp_path / "store") as store:
        provenance = store.runs("parts")[0].provenance
    plugins = {p["module"]: p for p in provenance["plugins"]}
    assert plugins["test_plugins"]["sha256"] == hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    assert plugins["test_plugins"]["origin"] == "registered in code"


def test_a_model_class_without_forward_features_is_refused_at_registration() -> None:
    with pytest.raises(TypeError, match=r"_NoFeatures does not define forward_features\(x\)"):
        lineup.register_model(_NoFeatures)
    assert "_NoFeatures" not in lineup.models.list_models()


def test_models_that_break_the_contract_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    @lineup.register_model  # type: ignore[type-var]  # the point: it does not build a LineupModel
    def test_plain(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

    @lineup.register_model
    def test_nofeat(input_shape: tuple[int, int, int], num_classes: int) -> _NoFeatures:
        return _NoFeatures(input_shape, num_classes)

    @lineup.register_model
    def test_wrong_shape(input_shape: tuple[int, int, int], num_classes: int) -> _Flat:
        return _Flat(input_shape, num_classes, out=num_classes + 1)

    cases = [("test_plain", "not a lineup.models.LineupModel (it has no forward_features either)"),
             ("test_nofeat", "_NoFeatures does not define forward_features(x) -> (N, D) features"),
             ("test_wrong_shape", "returns (2, 11) for a batch of 2 inputs (2, 1, 8, 8); cross_entropy needs "
                                  "logits of shape (2, 10)")]
    for name, missing in cases:
        study = _digits_study(lineup.model("ok", "softmax_regression"), lineup.model("bad", name))
        with pytest.raises(SpecError) as err:
            lineup.run(study, store=tmp_path / "store")
        assert err.value.key == "models[1] (bad)"
        assert f"model {name!r}" in err.value.detail and missing in err.value.detail
    assert not (tmp_path / "store").exists()  # refused before the store was even opened


def test_a_notebook_may_run_a_registering_cell_again_but_other_duplicates_fail() -> None:
    def make() -> Any:
        def test_again(input_shape: tuple[int, int, int], num_classes: int) -> _Flat:
            return _Flat(input_shape, num_classes)

        test_again.__qualname__ = "test_again"
        return test_again

    first, second = make(), make()
    first.__module__ = second.__module__ = "__main__"  # as a notebook cell defines it
    lineup.register_model(first)
    lineup.register_model(second)  # the cell run again: replaces
    assert lineup.models._registry._models.get("test_again") is second
    third = make()
    third.__module__ = "somewhere_else"
    with pytest.raises(ValueError, match="already registered"):
        lineup.register_model(third)


# ---------------------------------------------------------------------------------------------------- datasets


def _blobs(n: int, *, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = y.view(n, 1, 1, 1).float() + 0.3 * torch.randn(n, 3, 4, 4, generator=g)  # (n, 3, 4, 4)
    return (x if dtype == torch.float32 else (x * 60 + 40).clamp(0, 255).to(torch.uint8)), y


def test_a_registered_float_dataset_is_split_like_a_built_in_one_and_trains(tmp_path: Path) -> None:
    @lineup.register_dataset
    def test_blobs(*, n: int = 300, scale: float = 1.0) -> DatasetTensors:
        """Three classes of blobs."""
        x, y = _blobs(n, dtype=torch.float32, seed=0)
        xt, yt = _blobs(90, dtype=torch.float32, seed=1)
        return DatasetTensors(train=(x * scale, y), test=(xt * scale, yt), classes=["a", "b", "c"])

    from lineup.data import load

    data = load("test_blobs", options={"n": 300}, val_fraction=0.2, classes=[2, 0], test_size=30)
    assert (len(data.train), len(data.val), len(data.test)) == (160, 40, 30)  # 200 of classes 0, 2; 20% held out
    assert data.classes == ["c", "a"] and data.input_shape == (3, 4, 4) and data.train.x.dtype == torch.float32
    assert torch.bincount(data.val.y).tolist() == [20, 20]
    normalised = data.normalization.apply(data.train.x)
    assert torch.allclose(normalised.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)  # standardised per channel
    again = load("test_blobs", options={"n": 300}, val_fraction=0.2, classes=[2, 0], test_size=30)
    assert again.version == data.version
    assert load("test_blobs", options={"n": 300, "scale": 2.0}, val_fraction=0.2).version != data.version

    study = lineup.make_study("blobs", data={"dataset": "test_blobs", "options": {"n": 240}},
                              models=[lineup.model("mlp", options={"hidden": [8]})], train={"epochs": 2})
    assert lineup.run(study, store=tmp_path / "s", report=False).runs()["status"].tolist() == ["complete"]


def test_a_registered_uint8_dataset_takes_the_image_options_and_distortions() -> None:
    @lineup.register_dataset
    def test_pixels(*, n: int = 120) -> DatasetTensors:
        x, y = _blobs(n, dtype=torch.uint8, seed=0)
        return DatasetTensors(train=(x, y), test=_blobs(30, dtype=torch.uint8, seed=1), classes=["a", "b", "c"])

    from lineup.data import load

    data = load("test_pixels", options={"resize": [8, 8], "channels": 1},
                distortions={"label_noise": {"rate": 0.5}})
    assert data.input_shape == (1, 8, 8) and data.train.x.dtype == torch.uint8
    assert any("label noise" in note.lower() for note in data.notes)
    clean = load("test_pixels", options={"resize": [8, 8], "channels": 1})
    assert clean.version != data.version and not torch.equal(clean.train.y, data.train.y)


def test_datasets_that_break_the_contract_are_refused_with_what_is_missing() -> None:
    x, y = _blobs(30, dtype=torch.float32, seed=0)
    broken: dict[str, tuple[Callable[[], Any], str]] = {
        "test_ndarray": (lambda: DatasetTensors(train=(x.numpy(), y), test=(x, y),  # type: ignore[arg-type]
                                                classes=["a", "b", "c"]),
                         "train x is a ndarray, not a torch.Tensor (torch.from_numpy turns an array into one)"),
        "test_3d": (lambda: DatasetTensors(train=(x[:, 0], y), test=(x, y), classes=["a", "b", "c"]),
                    "train x must be (N, C, H, W), got shape (30, 4, 4)"),
        "test_labels": (lambda: DatasetTensors(train=(x, y), test=(x, y), classes=["a", "b"]),
                        "train y must be labels in 0..1 (one per class name), got 0..2"),
        "test_float64": (lambda: DatasetTensors(train=(x.double(), y), test=(x, y), classes=["a", "b", "c"]),
                         "train x must be uint8 images (0..255) or float32 values, got torch.float64"),
        "test_tuple": (lambda: ((x, y), (x, y)), "it returns tuple, not DatasetTensors(train=(x, y)"),
        "test_raises": (lambda: 1 / 0, "its builder test_plugins.test_datasets_that_break_the_contract_are_refused_"
                                       "with_what_is_missing.<locals>.<lambda> failed: ZeroDivisionError"),
    }
    for name, (builder, message) in broken.items():
        lineup.register_dataset(builder, name=name)
        study = lineup.make_study("broken", data={"dataset": name}, models=[lineup.model("softmax_regression")])
        with pytest.raises(SpecError) as err:
            prepare(study)
        assert err.value.key == "data.dataset", name
        assert f"dataset {name!r}" in err.value.detail and message in err.value.detail, err.value.detail

    @lineup.register_dataset
    def test_fine(*, n: int = 30) -> DatasetTensors:
        return DatasetTensors(train=(x, y), test=(x, y), classes=["a", "b", "c"])

    study = lineup.make_study("broken", data={"dataset": "test_fine", "options": {"nn": 3}},
                              models=[lineup.model("softmax_regression")])
    with pytest.raises(SpecError, match=r"dataset 'test_fine' has no option 'nn'\. Did you mean 'n'\?") as err:
        prepare(study)
    assert err.value.key == "data.options.nn"
    with pytest.raises(TypeError, match="keyword-only with a default"):
        lineup.register_dataset(lambda n=3: None, name="test_positional")  # type: ignore[type-var]
    with pytest.raises(ValueError, match="already registered"):
        lineup.register_dataset(test_fine, name="gaussian-2")


# ---------------------------------------------------------------------------------------------------- objectives


def test_a_registered_objective_trains_and_broken_ones_are_refused_at_registration(tmp_path: Path) -> None:
    import torch.nn.functional as F

    @lineup.register_objective
    class TestSmoothed:
        """Cross-entropy with 10% label smoothing."""

        name = "test_smoothed"

        def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(outputs, y, label_smoothing=0.1)

        def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(outputs, y, label_smoothing=0.1, reduction="sum")

        def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
            return outputs.softmax(dim=1)

    results = lineup.run(_digits_study(lineup.model("softmax_regression"), objective="test_smoothed"),
                         store=tmp_path / "s", report=False)
    assert results.runs()["objective"].tolist() == ["test_smoothed"]

    class NoName(TestSmoothed):
        name = ""

    class MeanAsSum(TestSmoothed):
        name = "test_mean_as_sum"

        def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.loss(outputs, y)

    class Detached(TestSmoothed):
        name = "test_detached"

        def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return super().loss(outputs, y).detach()

    class Logits(TestSmoothed):
        name = "test_logits"

        def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
            return outputs

    class Incomplete:
        name = "test_incomplete"

        def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return outputs.sum()

    for cls, message in [(NoName, "needs a class attribute name"),
                         (MeanAsSum, "loss_sum(outputs, y) must be the batch's summed loss"),
                         (Detached, "is detached from the outputs"),
                         (Logits, "must return probabilities: non-negative rows that sum to 1"),
                         (Incomplete, "lacks loss_sum, predict_proba")]:
        with pytest.raises(TypeError, match=re.escape(message)):
            lineup.register_objective(cls)
    registered = lineup.train.list_objectives()
    assert "test_smoothed" in registered and not {"test_mean_as_sum", "test_detached", "test_logits"} & set(registered)


# ---------------------------------------------------------------------------------------------------- metrics


def test_a_registered_metric_becomes_a_column_computed_from_stored_predictions(tmp_path: Path) -> None:
    @lineup.register_metric
    def macro_recall_score(y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int) -> float:
        """Mean recall over the classes."""
        recalls = [np.mean(y_pred[y_true == k] == k) for k in range(num_classes) if np.any(y_true == k)]
        return float(np.mean(recalls))

    results = lineup.run(_digits_study(lineup.model("softmax_regression"), lineup.model("mlp")),
                         store=tmp_path / "s", report=False)
    frame = results.runs()
    from sklearn.metrics import balanced_accuracy_score

    with Store(tmp_path / "s") as store:
        for _, row in frame.iterrows():
            p = store.predictions(row["hash"])
            assert p is not None
            assert row["test_macro_recall_score"] == pytest.approx(
                balanced_accuracy_score(p.y, p.probs.argmax(axis=1)))
            assert row["test_accuracy_score"] == pytest.approx(row["test_acc"])  # the built-in one, cross-checked

    for bad, message in [(lambda y_true, y_pred: 1.0, "must end in _score"),
                         (_named("test_extra_score", lambda y_true, y_pred, *, weights: 1.0), "must take"),
                         (_named("test_nan_loss", lambda y_true, y_pred: float("nan")), "must return a finite number"),
                         (_named("test_flag_score", lambda y_true, y_pred: True), "must return a finite number")]:
        with pytest.raises(TypeError, match=message):
            lineup.register_metric(bad)


def _named(name: str, fn: Any) -> Any:
    fn.__name__ = name  # type: ignore[attr-defined]
    return fn


# ---------------------------------------------------------------------------------------------------- plugins


def _install(package: Path, target: Path) -> Path:
    """Build ``package`` from a copy and install it into ``target`` only (the test environment is untouched)."""
    source = target.parent / f"{package.name}-src"
    shutil.copytree(package, source)
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(target), str(source)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return target


def _lineup(*args: str, path: Path | None = None, cwd: Path | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LINEUP_PLUGINS")}
    if path is not None:
        environ["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, "-m", "lineup", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**environ, **(env or {})})


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _install(EXAMPLE, tmp_path_factory.mktemp("example") / "site")


def test_the_example_plugin_is_listed_once_installed(example_site: Path) -> None:
    models = _lineup("models", path=example_site)
    assert models.returncode == 0, models.stderr
    line = next(ln for ln in models.stdout.splitlines() if ln.startswith("gapnet "))
    assert "global average pooling" in line and "[from mylab.models (mylab-lineup 0.1.0)]" in line
    assert "channels=(16, 32, 64), batch_norm=True, width=1.0, params=None" in models.stdout
    datasets = _lineup("datasets", path=example_site)
    assert datasets.returncode == 0, datasets.stderr
    assert "[from mylab.data (mylab-lineup 0.1.0)]" in datasets.stdout
    assert "n_train=2000, n_test=1000, size=16, noise=0.8, seed=0" in datasets.stdout
    without = _lineup("models")
    assert without.returncode == 0 and "gapnet" not in without.stdout  # not installed: not there


def test_the_example_study_runs_its_plugin_beside_built_in_models(example_site: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = _lineup("run", str(EXAMPLE / "study.toml"), "--store", str(store), "--no-progress", path=example_site)
    assert out.returncode == 0, out.stdout + out.stderr
    report = (store / "reports" / "custom_model" / "report.html").read_text(encoding="utf-8")
    for label in ("gapnet", "lenet5", "resnet9-20k", "stripes"):
        assert label in report
    with Store(store) as s:
        runs = {r.label: r for r in s.runs("custom_model")}
        assert {label: r.status for label, r in runs.items()} == {"lenet5": "complete", "gapnet": "complete",
                                                                   "resnet9-20k": "complete"}
        assert abs(runs["gapnet"].summary["params"] - 20_000) <= 2_000  # params = 20000 chose its width
        plugins = {p["module"]: p for p in runs["gapnet"].provenance["plugins"]}
    for module, file in (("mylab.models", "models.py"), ("mylab.data", "data.py")):
        assert plugins[module]["package"] == "mylab-lineup" and plugins[module]["version"] == "0.1.0"
        assert plugins[module]["origin"].startswith("entry point ")
        installed = example_site / "mylab" / file
        assert plugins[module]["sha256"] == hashlib.sha256(installed.read_bytes()).hexdigest()
    # The store is read without the plugin (the report too: see the study-plugins test below).
    listed = _lineup("ls", "custom_model", "--store", str(store))
    assert listed.returncode == 0 and "gapnet" in listed.stdout, listed.stderr


BAD_PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "badlab"
        version = "2.1.0"

        [project.entry-points.lineup]
        badlab = "badlab"
        """,
    "badlab/__init__.py": """
        import math

        from torch import nn

        from lineup import LineupModel, register_model


        class NoFeatures(LineupModel):
            def __init__(self, input_shape, num_classes):
                super().__init__()
                self.fc = nn.Linear(math.prod(input_shape), num_classes)

            def forward(self, x):
                return self.fc(x.flatten(1))


        class OneLogit(NoFeatures):
            def forward_features(self, x):
                return x.flatten(1)

            def forward(self, x):
                return super().forward(x)[:, :1]


        @register_model
        def nofeat(input_shape: tuple[int, int, int], num_classes: int) -> LineupModel:
            return NoFeatures(input_shape, num_classes)


        @register_model
        def onelogit(input_shape: tuple[int, int, int], num_classes: int) -> LineupModel:
            return OneLogit(input_shape, num_classes)
        """,
}

BROKEN_PACKAGE = {
    "pyproject.toml": BAD_PACKAGE["pyproject.toml"].replace("badlab", "brokenlab"),
    "brokenlab/__init__.py": "import a_module_that_does_not_exist\n",
}


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("badlab")
    return _install(_write_package(root / "badlab", BAD_PACKAGE), root / "site")


STUDY = """
[study]
name = "{name}"
seeds = [0, 1]
{plugins}

[data]
dataset = "digits"
train_size = 200
test_size = 100

[train]
epochs = 1
batch_size = 50

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "{label}"
model = "{model}"
"""


@pytest.mark.parametrize(("model", "missing"), [
    ("nofeat", "model 'nofeat' (built by badlab.nofeat) breaks the model contract: NoFeatures does not define "
               "forward_features(x) -> (N, D) features"),
    ("onelogit", "model 'onelogit' returns (2, 1) for a batch of 2 inputs (2, 1, 8, 8); cross_entropy needs logits "
                 "of shape (2, 10)"),
])
def test_a_plugin_model_that_breaks_the_contract_is_refused_before_the_store(
        bad_site: Path, tmp_path: Path, model: str, missing: str) -> None:
    (tmp_path / "study.toml").write_text(STUDY.format(name="bad", plugins="", label=model, model=model))
    out = _lineup("run", str(tmp_path / "study.toml"), "--store", str(tmp_path / "store"), path=bad_site)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1  # one line, no traceback
    assert f"models[1] ({model})" in out.stderr and missing in out.stderr
    assert not (tmp_path / "store").exists()


def test_a_plugin_that_fails_to_import_is_named_with_its_package(tmp_path: Path) -> None:
    site = _install(_write_package(tmp_path / "brokenlab", BROKEN_PACKAGE), tmp_path / "site")
    out = _lineup("models", path=site)
    assert out.returncode == 1
    assert "plugin 'brokenlab' (brokenlab) of package brokenlab 2.1.0 failed to load: ModuleNotFoundError" \
        in out.stderr and "pip uninstall brokenlab" in out.stderr
    # Built-in names never need the plugins, so a run that uses only them is not held up by a broken one.
    (tmp_path / "study.toml").write_text(STUDY.format(name="fine", plugins="", label="mlp", model="mlp"))
    ok = _lineup("run", str(tmp_path / "study.toml"), "--store", str(tmp_path / "store"), "--no-report", path=site)
    assert ok.returncode == 0, ok.stderr


TINYLAB = """
import os

from lineup import LineupModel, register_model
from torch import nn

with open(os.environ["TINYLAB_IMPORTS"], "a") as f:  # one line per process that imports this module
    f.write(f"{os.getpid()}\\n")


class Tiny(LineupModel):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.feature_dim = 8
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], 8),
                                  nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, features):
        return self.head(features)


@register_model
def tiny(input_shape: tuple[int, int, int], num_classes: int) -> Tiny:
    '''A one-hidden-layer net of 8 units, kept beside the study file.'''
    return Tiny(input_shape, num_classes)
"""


def test_study_plugins_are_imported_by_every_worker_and_never_by_the_report(tmp_path: Path) -> None:
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "tinylab.py").write_text(TINYLAB, encoding="utf-8")
    study = tmp_path / "studies" / "tiny.toml"
    study.write_text(STUDY.format(name="tiny", plugins='plugins = ["tinylab"]', label="tiny", model="tiny"))
    imports = tmp_path / "imports.txt"
    env = {"TINYLAB_IMPORTS": str(imports)}
    store = tmp_path / "store"
    out = _lineup("run", str(study), "--store", str(store), "--no-progress", "--no-report", "--executor", "pool",
                  "--workers", "2", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    with Store(store) as s:
        runs = [r for r in s.runs("tiny") if r.label == "tiny"]
        assert [r.status for r in runs] == ["complete", "complete"]
        plugins = [p for r in runs for p in r.provenance["plugins"]]
    source_sha = hashlib.sha256((tmp_path / "studies" / "tinylab.py").read_bytes()).hexdigest()
    assert {(p["module"], p["sha256"]) for p in plugins} == {("tinylab", source_sha)}
    assert {p["origin"] for p in plugins} == {"LINEUP_PLUGINS"}  # imported in the workers by the driver's word
    importers = imports.read_text().split()
    assert len(importers) >= 2 and len(set(importers)) == len(importers)  # the driver, then each worker that ran
    # The store keeps the study's plugins list, but reading the store never imports anything.
    for args in (["report", "tiny", "--store", str(store)], ["ls", "tiny", "--store", str(store)],
                 ["show", runs[0].hash, "--store", str(store)]):
        again = _lineup(*args, cwd=tmp_path / "studies", env=env)
        assert again.returncode == 0, again.stderr
    assert imports.read_text().split() == importers


def test_a_study_plugin_that_does_not_exist_is_a_study_error(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(STUDY.format(name="nope", plugins='plugins = ["nolab.models"]', label="x", model="mlp"))
    out = _lineup("run", str(study), "--store", str(tmp_path / "store"))
    assert out.returncode == 2
    assert "study.plugins[0]: no module named 'nolab.models'" in out.stderr
