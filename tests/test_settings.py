"""Data settings: every model trained on several variants of the data, compared in one report."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from lineup import Store, load_study
from lineup.cli import main
from lineup.errors import SpecError
from lineup.spec import expand

STUDY = """
[study]
name = "noisy"
seeds = [0, 1]

[data]
dataset = "digits"
classes = [0, 1, 2]
val_fraction = 0.2

[train]
epochs = 3
batch_size = 32
lr = 0.01
{settings}
[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "mlp"
model = "mlp"
options = {{ hidden = [16] }}
"""

SETTINGS = """
[[settings]]
name = "clean"
description = "the data as it is"

[[settings]]
name = "label-noise-0.4"
description = "40% of training labels flipped"
distortions = { label_noise = { rate = 0.4 } }
"""


def _write(tmp_path: Path, settings: str, name: str = "noisy.toml") -> Path:
    p = tmp_path / name
    p.write_text(STUDY.format(settings=settings))
    return p


def test_settings_expand_and_share_runs_with_the_plain_study(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, SETTINGS))
    runs = expand(study, data_version={"clean": "v", "label-noise-0.4": "w"})
    assert [(r.setting, r.label, r.seed) for r in runs][:4] == [
        ("clean", "softmax", 0), ("clean", "softmax", 1), ("clean", "mlp", 0), ("clean", "mlp", 1)]
    assert len(runs) == 8 and len({r.hash for r in runs}) == 8
    assert runs[4].spec["data"]["distortions"] == {"label_noise": {"rate": 0.4}}
    plain = expand(load_study(_write(tmp_path, "", "plain.toml")), data_version="v")
    # a setting with no overrides is the plain study's data: its runs are the same runs
    assert [r.hash for r in plain] == [r.hash for r in runs[:4]]


@pytest.mark.parametrize(("settings", "key", "text"), [
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "a"\ntrain_size = 100\n', "settings[1].name",
     "duplicate setting name"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "b"\n', "settings[1]", "gives the same data as setting 'a'"),
    ('[[settings]]\nname = "a"\ndistortion = { label_noise = { rate = 0.1 } }\n', "settings[0].distortion",
     "Did you mean 'distortions'"),
    ('[[settings]]\ntrain_size = 100\n', "settings[0].name", "each setting needs a name"),
    ('[[settings]]\nname = "a"\nval_fraction = 0.9\n', "settings[0].val_fraction", "at most 0.5"),
    ('[[settings]]\nname = "a"\ntest_split = { frac = 0.3 }\n', "settings[0].test_split.frac",
     "Did you mean 'fraction'"),
    ('[[settings]]\nname = "a"\ntest_split = { fraction = 1.5 }\n', "settings[0].test_split.fraction",
     "at most 0.9"),
])
def test_bad_settings(tmp_path: Path, settings: str, key: str, text: str) -> None:
    with pytest.raises(SpecError) as err:
        load_study(_write(tmp_path, settings))
    assert text in str(err.value) and err.value.key == key


def test_a_bad_distortion_in_a_setting_names_the_setting(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[settings]]\nname = "a"\ndistortions = { label_noise = { rat = 0.1 } }\n')
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2
    assert "settings[0].distortions" in result.output and "rate" in result.output
    assert not (tmp_path / "r").exists()  # nothing was stored


def test_settings_run_store_and_report(tmp_path: Path) -> None:
    path = _write(tmp_path, SETTINGS)
    store_dir = tmp_path / "results"
    cli = CliRunner()
    first = cli.invoke(main, ["run", str(path), "--store", str(store_dir), "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "8 runs, 8 trained now" in first.output
    with Store(store_dir) as store:
        records = store.runs("noisy")
        assert [r.setting for r in records] == ["clean"] * 4 + ["label-noise-0.4"] * 4
        assert all(r.status == "complete" for r in records)
        acc = {(r.setting, r.label, r.seed): r.summary["test_acc"] for r in records}
        spec = store.study_spec("noisy")
        assert set(spec["settings_info"]) == {"clean", "label-noise-0.4"}
        assert spec["settings_info"]["clean"]["sizes"] == spec["settings_info"]["label-noise-0.4"]["sizes"]
    second = cli.invoke(main, ["run", str(path), "--store", str(store_dir), "--no-progress"])
    assert "8 runs, 0 trained now, 8 already in the store" in second.output

    tables = store_dir / "reports" / "noisy" / "tables"
    with (tables / "settings_change.csv").open() as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    for label in ("softmax", "mlp"):
        expected = np.mean([acc[("label-noise-0.4", label, s)] - acc[("clean", label, s)] for s in (0, 1)])
        shown = rows[label]["Δ label-noise-0.4 − clean, points"]
        assert float(shown.split()[0]) == pytest.approx(100 * expected, abs=0.005)
    with (tables / "settings_accuracy.csv").open() as f:
        acc_rows = {row["model"]: row for row in csv.DictReader(f)}
    assert not any(key.startswith("mean over") for key in acc_rows["mlp"])  # distortions are not test splits
    clean_mean = np.mean([acc[("clean", "mlp", s)] for s in (0, 1)])
    assert float(acc_rows["mlp"]["clean test acc %"].split()[0]) == pytest.approx(100 * clean_mean, abs=0.005)
    html = (store_dir / "reports" / "noisy" / "report.html").read_text()
    assert 'id="settings"' in html and "40% of training labels flipped" in html
    with (tables / "runs.csv").open() as f:
        assert [row["setting"] for row in csv.DictReader(f)].count("label-noise-0.4") == 4


def test_settings_that_redraw_the_test_split_test_different_examples(tmp_path: Path) -> None:
    """Two draws of the test split: each setting's runs are tested on its own examples, the plain study's test
    split is neither, and the report compares the settings by seeds, not by McNemar on shared examples."""
    settings = ('[[settings]]\nname = "split-0"\ntest_split = { seed = 0 }\n\n'
                '[[settings]]\nname = "split-1"\ntest_split = { fraction = 0.2, seed = 1 }\n')
    path = _write(tmp_path, settings)
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 0, result.output
    with Store(tmp_path / "r") as store:
        records = store.runs("noisy")
        tested = {r.setting: set(store.predictions(r.hash).index.tolist()) for r in records}
        info = store.study_spec("noisy")["settings_info"]
    plain = load_study(_write(tmp_path, "", "plain.toml"))
    from lineup.study import load_data

    plain_test = set(load_data(plain).test.index.tolist())
    assert len({frozenset(t) for t in tested.values()}) == 2 and plain_test not in tested.values()
    assert len(tested["split-0"]) == len(tested["split-1"]) == round(0.2 * len(tested["split-0"]) / 0.2)
    assert any("test split drawn anew" in note and "(seed 1)" in note for note in info["split-1"]["notes"])
    # Settings that differ only in their test split are pooled: the mean over splits of each split's seed mean.
    acc = {(r.setting, r.label, r.seed): r.summary["test_acc"] for r in records}
    with (tmp_path / "r" / "reports" / "noisy" / "tables" / "settings_accuracy.csv").open() as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    n_train, n_test = info["split-0"]["sizes"]["train"], info["split-0"]["sizes"]["test"]
    for label in ("softmax", "mlp"):
        split_means = [np.mean([acc[(st, label, s)] for s in (0, 1)]) for st in ("split-0", "split-1")]
        shown = rows[label]["mean over the 2 test splits %"].replace("[", "").replace("]", "").replace(",", "")
        mean, low, high = (float(v) for v in shown.split())
        # Nadeau and Bengio: t with 1 degree of freedom, variance (1/2 + n_test/n_train) * s^2, clipped to [0, 1]
        half = stats.t.ppf(0.975, 1) * np.sqrt((1 / 2 + n_test / n_train) * np.var(split_means, ddof=1))
        assert mean == pytest.approx(100 * np.mean(split_means), abs=0.005)
        assert low == pytest.approx(100 * max(np.mean(split_means) - half, 0), abs=0.005)
        assert high == pytest.approx(100 * min(np.mean(split_means) + half, 1), abs=0.005)
    html = (tmp_path / "r" / "reports" / "noisy" / "report.html").read_text()
    assert "differ only in which examples they hold out for testing" in html


def test_a_setting_merges_its_test_split_into_the_studys(tmp_path: Path) -> None:
    """``[data] test_split = { fraction = 0.3 }`` and a setting's ``{ seed = 1 }``: the setting keeps the fraction."""
    text = STUDY.format(settings='[[settings]]\nname = "a"\n\n[[settings]]\nname = "b"\ntest_split = { seed = 1 }\n')
    path = tmp_path / "merge.toml"
    path.write_text(text.replace("val_fraction = 0.2", "val_fraction = 0.2\ntest_split = { fraction = 0.3 }"))
    splits = {s.name: s.data.test_split for s in load_study(path).data_settings}
    assert (splits["a"].fraction, splits["a"].seed) == (0.3, 0)
    assert (splits["b"].fraction, splits["b"].seed) == (0.3, 1)


@pytest.mark.parametrize(("settings", "sizes", "pooled"), [
    ([{"name": "a", "test_split": {"seed": 0}}, {"name": "b", "test_split": {"seed": 1}}], [200, 200], True),
    ([{"name": "fixed"}, {"name": "b", "test_split": {"seed": 1}}], [200, 200], True),  # the source's split, as large
    ([{"name": "fixed"}, {"name": "b", "test_split": {"seed": 1}}], [200, 250], False),  # not as large
    ([{"name": "a", "test_split": {"seed": 0}}, {"name": "b", "test_split": {"fraction": 0.3}}], [200, 300], False),
    ([{"name": "a", "test_split": {"seed": 0}}, {"name": "b", "train_size": 100}], [200, 200], False),
    ([{"name": "a"}, {"name": "b", "distortions": {"label_noise": {"rate": 0.1}}}], [200, 200], False),
])
def test_only_draws_of_one_test_split_are_pooled(settings: list[dict], sizes: list[int], pooled: bool) -> None:
    from lineup.report.collect import StudyData

    info = {st["name"]: {"sizes": {"train": 720, "val": 80, "test": n}} for st, n in zip(settings, sizes, strict=True)}
    spec = {"data": {"dataset": "mnist-5k"}, "settings": settings, "settings_info": info}
    first, *rest = (StudyData(name="s", spec=spec, runs=[], failures={}, setting=st["name"]) for st in settings)
    first.others = {d.setting: d for d in rest}
    assert first.test_split_draws is pooled
