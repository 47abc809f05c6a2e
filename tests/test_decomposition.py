"""The error-decomposition protocol end to end: `[decomposition]` validated and kept out of run hashes, what a run on
data with a known distribution stores, and the report's numbers cross-checked against direct computations from the
stored predictions and the closed-form Bayes risk."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy import stats

from lineup import Store, load_study
from lineup.analysis.risk import expected_calibration_error, mean_kl_divergence
from lineup.cli import main
from lineup.data import load
from lineup.data.synthetic import decision_grid, two_gaussian_bayes_risk, xor_blobs
from lineup.errors import SpecError
from lineup.spec import expand
from lineup.study.runner import load_data, prepare
from lineup.study.worker import execute_run

PHI_MINUS_1 = 0.5 * math.erfc(1 / math.sqrt(2))  # Phi(-1) = 0.158655: R* of two unit Gaussians 2 apart

HEAD = """
[study]
name = "decomposition"
seeds = [0, 1, 2]

[data]
dataset = "gaussian-2"
options = {{ n_train = 200, n_test = 10000 }}

[train]
epochs = 8
batch_size = 64
lr = 0.05
threads = 1

[[models]]
name = "logistic"
model = "logistic_regression"
{rest}
"""

# Two distributions, each with its own reference: a learning curve on the two Gaussians, one size on XOR.
SETTINGS = """
[[settings]]
name = "g2-n40"
options = { n_train = 40 }

[[settings]]
name = "g2-n200"

[[settings]]
name = "g2-ref"
options = { n_train = 4000, train_seed = 1 }

[[settings]]
name = "xor-n200"
dataset = "gaussian-xor"

[[settings]]
name = "xor-ref"
dataset = "gaussian-xor"
options = { n_train = 4000, train_seed = 1 }

[decomposition]
reference = ["g2-ref", "xor-ref"]
"""


def _write(tmp_path: Path, rest: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD.format(rest=rest))
    return path


def _numbers(cell: str) -> list[float]:
    """'+1.20 [-0.40, +2.00]' -> [1.2, -0.4, 2.0]."""
    return [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?", cell)]


def _paired_t(diffs: np.ndarray) -> tuple[float, float, float]:
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    return float(diffs.mean()), float(diffs.mean() - half), float(diffs.mean() + half)


# ------------------------------------------------------------------------------------------------- the study file


def test_references_resolve_per_distribution_and_leave_run_hashes_alone(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, SETTINGS))
    plan = study.decomposition
    assert plan is not None and not plan.on_test and plan.added == []
    assert plan.references == {"g2-n40": "g2-ref", "g2-n200": "g2-ref", "xor-n200": "xor-ref"}
    assert study.to_dict()["decomposition"]["references"] == plan.references
    # The same study without [decomposition] has the very same runs: the section is not part of any run's spec.
    plain = load_study(_write(tmp_path, SETTINGS.split("[decomposition]")[0], "plain.toml"))
    versions = {st.name: f"v-{st.name}" for st in study.data_settings}
    runs = expand(study, data_version=versions)
    assert [r.hash for r in runs] == [r.hash for r in expand(plain, data_version=versions)]
    assert all("decomposition" not in r.spec for r in runs)


def test_reference_test_adds_a_setting_trained_on_the_test_sample(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, '[decomposition]\nreference = "test"\n'))
    assert [st.name for st in study.data_settings] == ["data", "train-on-test"]
    added = study.data_settings[1]
    assert added.data.options == {"n_train": 200, "n_test": 10000, "train_on_test": True}
    assert study.decomposition is not None and study.decomposition.references == {"data": "train-on-test"}
    data, reference = (load_data(study, st) for st in study.data_settings)
    assert torch.equal(reference.train.x, data.test.x) and torch.equal(reference.train.y, data.test.y)
    assert torch.equal(reference.test.x, data.test.x) and not torch.equal(reference.train.x[:200], data.train.x)
    # [data] keeps its runs: they are those of the same study without [decomposition].
    plain = load_study(_write(tmp_path, "", "plain.toml"))
    served = [r.hash for r in expand(study, data_version={"data": "v", "train-on-test": "w"}) if r.setting == "data"]
    assert served == [r.hash for r in expand(plain, data_version="v")]


def test_new_sample_options_keep_the_versions_of_data_drawn_before_them() -> None:
    # Measured before train_seed and train_on_test existed: data drawn without them keeps its version, and its runs.
    assert load("gaussian-2", options={"n_train": 100, "n_test": 100}).version == "synthetic-1+b0b0546ec23b"
    a = load("gaussian-xor", options={"n_train": 100, "n_test": 300})
    b = load("gaussian-xor", options={"n_train": 100, "n_test": 300, "train_seed": 1})
    assert torch.equal(a.test.x, b.test.x) and not torch.equal(a.train.x, b.train.x)  # same test, new training
    assert not torch.equal(a.val.x, b.val.x) and a.version != b.version
    with pytest.raises(SpecError, match="train_on_test trains on the whole test sample"):
        load("gaussian-xor", options={"n_train": 100, "n_test": 300, "train_on_test": True}, train_size=50)


@pytest.mark.parametrize(("rest", "key", "text"), [
    ('[decomposition]\nreference = "big"\n', "decomposition.reference",
     "reference 'big' is not a data setting"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "big"\noptions = { n_train = 999, train_seed = 1 }\n'
     '[decomposition]\nreference = "bigg"\n', "decomposition.reference", "Did you mean 'big'"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "big"\noptions = { n_train = 999, train_seed = 1 }\n'
     '[decomposition]\nreference = "big"\nsettings = ["b"]\n', "decomposition.settings[0]",
     "'b' is not a data setting"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "big"\noptions = { n_train = 999 }\n'
     '[decomposition]\nreference = "big"\n', "decomposition.reference", "train_seed = 1"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "big"\noptions = { n_train = 999, n_test = 500, train_seed = 1 }\n'
     '[decomposition]\nreference = "big"\n', "decomposition.reference", "same test sample"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "big"\ndataset = "gaussian-xor"\n'
     'options = { n_train = 999, train_seed = 1 }\n[decomposition]\nreference = "big"\n', "decomposition.reference",
     "same distribution"),
    ('[[settings]]\nname = "a"\ndataset = "polynomial-contours"\n[decomposition]\nreference = "test"\n',
     "decomposition", "dataset 'polynomial-contours' has none"),
    ('[decomposition]\nreference = "test"\nsetings = ["data"]\n', "decomposition.setings", "Did you mean 'settings'"),
    ('[decomposition]\nreference = ["test", "data"]\n', "decomposition.reference", "give it alone"),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "t"\noptions = { train_on_test = true }\n'
     '[decomposition]\nreference = "t"\n', "decomposition.reference", 'write reference = "test"'),
    ('[[settings]]\nname = "a"\n[[settings]]\nname = "t"\noptions = { train_on_test = true }\n'
     '[decomposition]\nreference = "test"\nsettings = ["a"]\n', "decomposition.reference", "remove it"),
])
def test_bad_decompositions_name_the_key_and_the_fix(tmp_path: Path, rest: str, key: str, text: str) -> None:
    with pytest.raises(SpecError) as err:
        load_study(_write(tmp_path, rest))
    assert err.value.key == key and text in str(err.value)


@pytest.mark.parametrize(("data", "rest", "text"), [
    ('dataset = "digits"', '[decomposition]\nreference = "test"\n', "dataset 'digits' has none"),
    ('dataset = "gaussian-2"', '[[settings]]\nname = "a"\n[decomposition]\nreference = "large"\n',
     "reference 'large' is not a data setting"),
])
def test_a_bad_decomposition_exits_with_2_and_stores_nothing(tmp_path: Path, data: str, rest: str, text: str) -> None:
    path = _write(tmp_path, rest)
    path.write_text(path.read_text().replace('dataset = "gaussian-2"', data, 1))
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert text in result.output and "decomposition" in result.output
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------- what a run stores


def test_a_run_on_known_data_stores_bayes_risk_kl_ece_and_grid(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, ""))
    plan = prepare(study)
    data = plan.data
    result = execute_run(plan.runs[0], data)
    s, test = result.summary, result.evaluations["test"]
    assert s["bayes_risk"] == pytest.approx(PHI_MINUS_1, abs=1e-12) and s["bayes_risk_method"] == "closed-form"
    assert s["bayes_risk_error_bound"] <= 1e-12 and s["bayes_risk_standard_error"] is None
    assert s["test_risk"] == pytest.approx(1 - s["test_acc"], abs=1e-12)
    assert s["posterior_kl"] == pytest.approx(mean_kl_divergence(data.distribution.posterior(data.test.x), test.probs))
    assert s["ece"] == pytest.approx(expected_calibration_error(test.y, test.probs, n_bins=15))
    # The true posterior of two unit Gaussians at -/+(1, 0) is sigmoid(2 x_1): a second, independent check of KL.
    x1 = data.test.x.reshape(-1, 2)[:, 0].double().numpy()
    p1 = 1 / (1 + np.exp(-2 * x1))
    assert s["posterior_kl"] == pytest.approx(mean_kl_divergence(np.stack([1 - p1, p1], 1), test.probs), rel=1e-9)
    grid = result.evaluations["grid"]
    n, extent = s["grid"]["cells"], s["grid"]["extent"]
    assert grid.probs.shape == (n * n, 2)
    np.testing.assert_array_equal(grid.y, decision_grid(data.distribution, tuple(extent), n=n).predict.ravel())
    # A logistic regression learns a linear rule close to the Bayes rule x_1 = 0: they agree on most of the grid.
    assert (grid.pred == grid.y).mean() > 0.9


def test_label_noise_gives_the_noisy_bayes_risk(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    path.write_text(path.read_text().replace("n_test = 10000", "n_test = 10000, label_noise = 0.1"))
    plan = prepare(load_study(path))
    s = execute_run(plan.runs[0], plan.data).summary
    # Symmetric noise at rate 0.1 on two classes: R~* = 0.1 + (1 - 2 * 0.1) R* = 0.1 + 0.8 Phi(-1) = 0.226924.
    assert s["bayes_risk"] == pytest.approx(0.1 + 0.8 * PHI_MINUS_1, abs=1e-12)
    # The test labels are noisy too, so the risk the run reports is measured against the noisy labels: a model
    # near the Bayes rule is near R~*, far above the clean R*.
    assert s["test_risk"] > PHI_MINUS_1 + 0.04


def test_the_pool_executor_hands_the_distribution_to_its_workers(tmp_path: Path) -> None:
    from lineup.study import run_study

    study = load_study(_write(tmp_path, ""))
    with Store(tmp_path / "r") as store:
        outcome = run_study(study, store, executor="pool", executor_options={"workers": 1})
        assert [res.status for _, res in outcome.trained] == ["complete"] * 3
        for record in store.runs("decomposition"):
            assert record.summary["bayes_risk"] == pytest.approx(PHI_MINUS_1, abs=1e-12)
            assert store.predictions(record.hash, "grid") is not None


def _forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=20, n_jobs=1, random_state=1)


def _svm() -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(C=2.0, gamma="scale"), method="sigmoid", ensemble=False)


@pytest.mark.parametrize(("model", "options", "same"), [("random_forest", "{ trees = 20 }", _forest),
                                                        ("rbf_svm", "{ c = 2.0 }", _svm)])
def test_a_scikit_learn_model_is_fitted_at_once_with_the_run_seed(tmp_path: Path, model: str, options: str,
                                                                  same: Callable[[], Any]) -> None:
    path = _write(tmp_path, f'\n[[models]]\nname = "sk"\nmodel = "{model}"\noptions = {options}\n')
    plan = prepare(load_study(path))
    run = next(r for r in plan.runs if r.label == "sk" and r.seed == 1)
    result = execute_run(run, plan.data)
    assert result.status == "complete" and result.summary["epochs_trained"] == 1
    assert result.summary["params"] == 0 and result.histories["train"].step_loss == []
    data = plan.data
    estimator = same().fit(data.train.x.reshape(len(data.train), -1).double().numpy(), data.train.y.numpy())
    expected = estimator.predict_proba(data.test.x.reshape(len(data.test), -1).double().numpy())
    np.testing.assert_allclose(result.evaluations["test"].probs, expected, atol=1e-6)
    assert result.summary["test_acc"] == pytest.approx((expected.argmax(1) == data.test.y.numpy()).mean())
    # Its log-probabilities are its logits: the stored test loss is its log-loss.
    y = data.test.y.numpy()
    log_loss = -np.log(np.maximum(expected[np.arange(len(y)), y], 1e-7)).mean()
    assert result.summary["test_loss"] == pytest.approx(log_loss, rel=1e-4)


# ------------------------------------------------------------------------------------------------- end to end


def test_study_report_decomposes_each_model_as_a_direct_computation_does(tmp_path: Path) -> None:
    path = _write(tmp_path, SETTINGS)
    store_dir = tmp_path / "results"
    result = CliRunner().invoke(main, ["run", str(path), "--store", str(store_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = store_dir / "reports" / "decomposition"
    with (report / "tables" / "decomposition.csv").open() as f:
        rows = {row["setting"]: row for row in csv.DictReader(f)}
    assert list(rows) == ["g2-n40", "g2-n200", "xor-n200"]

    with Store(store_dir) as store:
        risk: dict[tuple[str, int], float] = {}
        for rec in store.runs("decomposition"):
            p = store.predictions(rec.hash, "test")
            assert p is not None
            risk[(rec.setting, rec.seed)] = float((p.pred != p.y).mean())  # straight from the stored predictions
    bayes = {"g2": two_gaussian_bayes_risk(2.0), "xor": xor_blobs(3.0, 1.0).bayes_risk().value}
    for setting, ref in (("g2-n40", "g2-ref"), ("g2-n200", "g2-ref"), ("xor-n200", "xor-ref")):
        row, r_star = rows[setting], bayes[setting.split("-")[0]]
        h = np.array([risk[(setting, s)] for s in (0, 1, 2)])
        c = np.array([risk[(ref, s)] for s in (0, 1, 2)])
        assert _numbers(row["R(h) % [95% CI]"])[0] == pytest.approx(100 * h.mean(), abs=0.006)
        assert _numbers(row["R(h_class) % [95% CI]"])[0] == pytest.approx(100 * c.mean(), abs=0.006)
        assert float(row["R* %"]) == pytest.approx(100 * r_star, abs=0.006)
        est = _numbers(row["estimation error, points [95% CI]"])
        assert est == pytest.approx([100 * v for v in _paired_t(h - c)], abs=0.006)  # paired t over seeds
        approx = _numbers(row["approximation error, points [95% CI]"])
        assert approx[0] == pytest.approx(100 * (c.mean() - r_star), abs=0.006)
        assert row["reference"] == f"{ref} (n = 4,000)"

    # Logistic regression can represent the Bayes rule of two Gaussians with a shared covariance: its approximation
    # error is zero within its interval. On XOR no linear rule comes close: clearly positive.
    _, low, high = _numbers(rows["g2-n200"]["approximation error, points [95% CI]"])
    assert low <= 0.0 <= high
    xor_mean, xor_low, _ = _numbers(rows["xor-n200"]["approximation error, points [95% CI]"])
    assert xor_low > 10.0 and xor_mean > 25.0

    html = (report / "report.html").read_text()
    assert 'id="decomposition"' in html and "Error decomposition" in html and "Decision regions" in html
    for figure in ("decomposition", "decomposition_curves", "decision_regions_00", "decision_regions_02"):
        assert (report / "figures" / f"{figure}.png").stat().st_size > 1000
    assert "trained on the test sample" not in html and "(4,000 training examples)" in html


def test_reference_test_is_said_in_the_report_and_flatters_a_model_that_memorises(tmp_path: Path) -> None:
    rest = '[[models]]\nname = "forest"\nmodel = "random_forest"\noptions = { trees = 20 }\n\n' \
           '[decomposition]\nreference = "test"\n'
    store_dir = tmp_path / "results"
    result = CliRunner().invoke(main, ["run", str(_write(tmp_path, rest)), "--store", str(store_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = store_dir / "reports" / "decomposition"
    with (report / "tables" / "decomposition.csv").open() as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert {row["reference"] for row in rows.values()} == {"train-on-test: trained on the test sample"}
    html = (report / "report.html").read_text()
    assert "by training every model on the test sample itself" in html and "R(h_class) is optimistic" in html
    # A forest of fully grown trees nearly memorises the sample it is fitted on: trained on the test sample, its
    # "R(h_class)" falls far below R* = 15.87%, an approximation error below zero that no classifier can have.
    approx_mean, _, high = _numbers(rows["forest"]["approximation error, points [95% CI]"])
    assert approx_mean < -5.0 and high < 0.0
    assert _numbers(rows["logistic"]["approximation error, points [95% CI]"])[0] > -1.0
