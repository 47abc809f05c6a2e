"""The Python API: a study built in code or read from TOML runs under the same hashes, its DataFrames agree with the
store, it displays as a table in Jupyter, and the example notebook runs top to bottom."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lineup
from lineup import Store
from lineup.errors import LineupError, SpecError
from registry_helpers import isolated_registries

ROOT = Path(__file__).resolve().parents[1]

STUDY_TOML = """
[study]
name = "api_digits"
seeds = [0, 1]

[data]
dataset = "digits"
train_size = 300
test_size = 200

[train]
epochs = 2
batch_size = 50

[protocol]
failure_cases = 4

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "mlp"
model = "mlp"
options = { hidden = [32] }

[[models]]
name = "mlp-wide"
base = "mlp"
options = { hidden = [128] }
train = { lr = 0.003 }
"""


def _study() -> lineup.spec.Study:
    """STUDY_TOML, built in code."""
    return lineup.make_study(
        "api_digits",
        data={"dataset": "digits", "train_size": 300, "test_size": 200},
        models=[lineup.model("softmax", "softmax_regression"),
                lineup.model("mlp", options={"hidden": [32]}),
                lineup.variant("mlp-wide", base="mlp", options={"hidden": [128]}, train={"lr": 0.003})],
        seeds=[0, 1],
        train={"epochs": 2, "batch_size": 50},
        protocol={"failure_cases": 4},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, lineup.Results]:
    root = tmp_path_factory.mktemp("api")
    return root, lineup.run(_study(), store=root / "store", progress=False)


def test_the_runs_frame_agrees_with_the_store(trained: tuple[Path, lineup.Results]) -> None:
    root, results = trained
    frame = results.runs()
    with Store(root / "store") as store:
        records = store.runs("api_digits")
        assert len(frame) == len(records) == 6
        for (_, row), r in zip(frame.iterrows(), records, strict=True):
            assert (row["label"], row["seed"], row["hash"], row["model"]) == (r.label, r.seed, r.hash, r.model)
            assert row["status"] == r.status == "complete"
            for key in ("test_acc", "val_acc", "train_acc", "params", "epochs_trained"):
                assert row[key] == r.summary[key], key
            p = store.predictions(r.hash)
            assert p is not None
            # The registered built-in metric, recomputed by hand from the stored probabilities.
            assert row["test_accuracy_score"] == float(np.mean(p.probs.argmax(axis=1) == p.y))
            assert row["test_accuracy_score"] == pytest.approx(row["test_acc"])
        n_epochs = sum(len(store.epochs(r.hash)) for r in records)
    assert list(frame["label"]) == ["softmax", "softmax", "mlp", "mlp", "mlp-wide", "mlp-wide"]
    epochs = results.epochs()
    assert len(epochs) == n_epochs == 12 and set(epochs["epoch"]) == {1, 2}
    assert results.runs(metrics=[]).columns.tolist() == [c for c in frame.columns if c != "test_accuracy_score"]


def test_the_summary_is_the_mean_over_seeds_and_displays_as_a_table(trained: tuple[Path, lineup.Results]) -> None:
    _, results = trained
    summary = results.summary()
    frame = results.runs()
    assert summary["model"].tolist() == ["softmax", "mlp", "mlp-wide"] and set(summary["seeds"]) == {2}
    for _, row in summary.iterrows():
        mean = frame.loc[frame["label"] == row["model"], "test_acc"].mean()
        assert row["test_acc %"] == round(100 * mean, 2)
    page = results._repr_html_()
    assert page.count("<table") == 1 and all(f"<td>{m}</td>" in page for m in summary["model"])
    assert results.report_path is not None and results.report_path.name == "report.html"
    assert results.report_path.exists() and str(results.report_path) in page
    assert "api_digits" in repr(results) and "mlp-wide" in repr(results)


def test_the_same_study_as_a_file_reuses_every_run(trained: tuple[Path, lineup.Results]) -> None:
    root, _ = trained
    path = root / "study.toml"
    path.write_text(STUDY_TOML, encoding="utf-8")
    assert [r.hash for r in lineup.spec.expand(lineup.load_study(path), data_version="v")] == \
        [r.hash for r in lineup.spec.expand(_study(), data_version="v")]
    again = lineup.run(path, store=root / "store", report=False)
    assert again.outcome is not None and again.outcome.trained == [] and len(again.outcome.skipped) == 6
    assert lineup.open_results("api_digits", root / "store").runs()["hash"].tolist() == \
        again.runs()["hash"].tolist()


def test_a_study_built_in_code_is_refused_exactly_as_a_file_would_be() -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"train": {"epochs": 2, "lr": -1.0}}, "train.lr", "greater than 0"),
        ({"models": [{"name": "m", "model": "mlp", "optoins": {}}]}, "models[0].optoins", "Did you mean 'options'"),
        ({"models": [lineup.variant("v", base="nothing")]}, "models[0].base", "not the name of any entry"),
        ({"seeds": [1, 1]}, "study.seeds", "duplicate seeds"),
    ]
    for change, key, text in cases:
        arguments: dict[str, Any] = {"data": "digits", "models": [lineup.model("mlp")], **change}
        with pytest.raises(SpecError, match=text) as err:
            lineup.make_study("bad", **arguments)
        assert err.value.key == key


def test_results_of_a_store_that_is_not_there_say_so(tmp_path: Path) -> None:
    with pytest.raises(LineupError, match="no results store"):
        lineup.open_results("nothing", tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_progress_bars_default_to_widgets_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    from lineup.api import in_notebook

    assert not in_notebook()

    class ZMQInteractiveShell:  # what get_ipython() returns inside a Jupyter kernel
        pass

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ZMQInteractiveShell))
    assert in_notebook()

    class TerminalInteractiveShell:  # plain IPython in a terminal: text bars, not widgets
        pass

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=TerminalInteractiveShell))
    assert not in_notebook()


# ---------------------------------------------------------------------------------------------------- notebook

NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


@pytest.fixture
def _isolated() -> Iterator[None]:
    with isolated_registries():
        yield


def test_the_notebook_is_stored_without_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.usefixtures("_isolated")
def test_the_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each code cell in order, in one namespace, as a kernel would run them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name} cell {i}", "exec"), namespace)
    runs = typing.cast(pd.DataFrame, namespace["runs"])
    results = namespace["results"]
    assert isinstance(results, lineup.Results) and results.name == "notebook_digits"
    assert runs["status"].tolist() == ["complete"] * 8
    assert runs["test_macro_f1_score"].between(0, 1).all()
    from sklearn.metrics import f1_score

    with Store(tmp_path / "lineup-results") as store:
        for _, row in runs.iterrows():
            p = store.predictions(row["hash"])
            assert p is not None
            assert row["test_macro_f1_score"] == pytest.approx(f1_score(p.y, p.probs.argmax(axis=1), average="macro"))
        tiny = [r for r in store.runs("notebook_digits") if r.model == "tiny_cnn"]
        assert len(tiny) == 4 and all("__main__" in {p["module"] for p in r.provenance["plugins"]} for r in tiny)
    params = runs.groupby("label")["params"].first()
    assert abs(params["tiny"] - 5_000) <= 500 and abs(params["tiny-20k"] - 20_000) <= 2_000
    assert results.report_path is not None and results.report_path.exists()


def test_a_training_worker_does_not_import_the_report_or_the_analyses_until_asked() -> None:
    """``import lineup`` is lazy (PEP 562): a pool worker that imports the run code trains without matplotlib, pandas,
    scikit-learn or scipy in memory (about 190 MB); the public names and subpackages still resolve on first
    use."""
    code = ("import sys, lineup.study.worker, lineup.data\n"
            "heavy = ('matplotlib', 'pandas', 'sklearn', 'optuna', 'scipy')\n"
            "heavy = sorted(m for m in heavy if m in sys.modules)\n"
            "import lineup\n"
            "assert lineup.Store.__module__ == 'lineup.store' and callable(lineup.models.create_model)\n"
            "assert sorted(lineup.__all__[:-1]) == sorted(lineup._EXPORTS) and 'run_study' in dir(lineup)\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_submodule_is_an_attribute_of_its_package_after_import_lineup() -> None:
    """Laziness does not cost the user ``lineup.analysis.scores`` or ``lineup.train.stacked``: each public module
    of each subpackage resolves as an attribute in a fresh process that has only run ``import lineup``."""
    code = ("import importlib, pkgutil, lineup\n"
            "missing = []\n"
            "for sub in sorted(lineup._SUBMODULES):\n"
            "    package = getattr(lineup, sub)\n"
            "    for info in pkgutil.iter_modules(getattr(package, '__path__', [])):\n"
            "        if info.name.startswith('_'):\n"
            "            continue\n"
            "        module = getattr(package, info.name, None)\n"
            "        if module is not importlib.import_module(f'lineup.{sub}.{info.name}'):\n"
            "            missing.append(f'{sub}.{info.name}')\n"
            "print(missing)\n"
            "assert 'scores' in dir(lineup.analysis) and 'load' in dir(lineup.data)\n"
            "try:\n"
            "    lineup.analysis.no_such_module\n"
            "except AttributeError as error:\n"
            "    print(error)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "module 'lineup.analysis' has no attribute 'no_such_module'"]
