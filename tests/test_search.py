"""The tuned protocol: a search lands where theory puts the best learning rate, pruning stops what the pruner
should stop, trials never touch the test split, and a tuned run is the run its configuration written by hand is."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lineup
from lineup import Store, load_study, run_study
from lineup.search.pruning import PruneCallback, PruningContext
from lineup.search.trials import Backend, TrialRecord
from lineup.spec import expand, parse_study
from lineup.study.runner import load_data, prepare
from registry_helpers import isolated_registries


class SquaredError:
    """Squared error between the outputs and the one-hot labels (least-squares classification)."""

    name = "squared_error"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_sum(outputs, y) / len(y)

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((outputs - F.one_hot(y, outputs.shape[1]).to(outputs.dtype)) ** 2).sum()

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(dim=1)


@pytest.fixture
def squared_error() -> Iterator[None]:
    with isolated_registries():
        lineup.register_objective(SquaredError)
        yield


# Least squares on two Gaussians, by full-batch gradient descent: the loss is a quadratic whose Hessian H is
# 2/n X^T X (X the inputs with a column of ones), so the learning rate that contracts fastest is 2/(l_min + l_max),
# rates above 2/l_max diverge and rates far below it barely move in 12 steps. (Logistic regression under
# cross-entropy has no such rate on separable data: its loss keeps falling as its weights grow, at any rate.)
KNOWN = """
[study]
name = "known-lr"
seeds = [0]

[data]
dataset = "gaussian-2"
options = {{ n_train = 400, n_val = 400, n_test = 400, separation = 2.0 }}

[train]
objective = "squared_error"
optimizer = "sgd"
momentum = 0.0
batch_size = 400        # the whole training split: gradient descent
epochs = 12

[search]
metric = "val_loss"
{search}

[[models]]
name = "least-squares"
model = "softmax_regression"
"""


def _lr_theory(study: lineup.Study) -> tuple[float, float]:
    """(fastest rate 2/(l_min + l_max), divergence threshold 2/l_max) of the study's training data."""
    data = load_data(study)
    x = data.normalization.apply(data.train.x).reshape(len(data.train), -1).double()
    x = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    eig = torch.linalg.eigvalsh(2 * x.T @ x / len(x))
    return 2 / float(eig[0] + eig[-1]), 2 / float(eig[-1])


def _trials(store: Store, study: str) -> list[lineup.store.RunRecord]:
    return [r for r in store.runs(study) if r.role == "trial"]


def _best_lr(store: Store, study: str) -> float:
    (tuned,) = [r for r in store.runs(study) if r.role == "tuned"]
    return float(tuned.spec["train"]["lr"])


def test_an_lr_sweep_finds_the_rate_theory_predicts_and_sees_both_failures(tmp_path: Path,
                                                                           squared_error: None) -> None:
    path = tmp_path / "known.toml"
    path.write_text(KNOWN.format(search='preset = "lr_sweep"\n'
                                        'space.lr = { log_uniform = [1e-4, 1e2], points = 25 }'))
    study = load_study(path)
    assert study.search is not None and study.search.searcher == "grid" and study.search.pruner == "none"
    fastest, threshold = _lr_theory(study)
    assert 0.1 < fastest < threshold < 1.0  # the data make the problem what the test says it is
    with Store(tmp_path / "store") as store:
        outcome = run_study(study, store, progress=False)
        trials = _trials(store, "known-lr")
        assert len(trials) == 25 and len(outcome.trained) == 25 + 1  # the grid, then the best rate on seed 0
        best = _best_lr(store, "known-lr")
        assert abs(math.log10(best / fastest)) < 0.5  # the right decade, centred on theory's rate
        scores = {float(r.spec["trial"]["params"]["lr"]): r for r in trials}
        best_loss = scores[best].summary["val_loss"]
        for lr, r in scores.items():
            if lr >= 30:  # 60x the threshold: the loss grows 100-fold a step and overflows float32 in 12
                assert r.status == "diverged", (lr, r.status)
            elif lr > threshold:
                assert r.status == "diverged" or r.summary["val_loss"] > 10 * best_loss, lr
            elif lr <= 1e-3:  # too small to get anywhere in 12 steps
                assert r.summary["val_loss"] > 5 * best_loss, lr
        for r in trials:  # the search never looked at the test split
            assert "test_acc" not in r.summary and store.predictions(r.hash, "test") is None
            assert store.embeddings(r.hash) is None and r.spec["protocol"]["refit"] is False
        lineup.build_report(store, "known-lr")


@pytest.mark.parametrize("seed", [0, 1])
def test_tpe_lands_in_the_right_decade(tmp_path: Path, squared_error: None, seed: int) -> None:
    path = tmp_path / "known.toml"
    path.write_text(KNOWN.format(search=f'searcher = "tpe"\nseed = {seed}\nstartup_trials = 6\npruner = "median"\n'
                                        'budget = {{ trials = 18 }}\nspace.lr = {{ log_uniform = [1e-4, 1e2] }}'
                                 .replace("{{", "{").replace("}}", "}")))
    study = load_study(path)
    fastest, _ = _lr_theory(study)
    with Store(tmp_path / "store") as store:
        run_study(study, store, progress=False)
        assert len(_trials(store, "known-lr")) == 18
        assert abs(math.log10(_best_lr(store, "known-lr") / fastest)) < 0.5


def test_the_median_pruner_stops_exactly_the_trials_below_the_median(tmp_path: Path, squared_error: None) -> None:
    """Every trial is checked against the rule itself: after its warm-up, a trial is pruned at the first epoch where
    its best value so far is worse than the median of the complete trials before it at that epoch."""
    path = tmp_path / "known.toml"
    path.write_text(KNOWN.format(search='searcher = "random"\nseed = 3\npruner = "median"\nprune_after_trials = 3\n'
                                        'warmup_epochs = 2\nbudget = { trials = 14 }\n'
                                        'space.lr = { log_uniform = [1e-5, 0.4] }'))
    study = load_study(path)
    with Store(tmp_path / "store") as store:
        run_study(study, store, progress=False)
        trials = sorted(_trials(store, "known-lr"), key=lambda r: r.spec["trial"]["number"])
        curves = {r.spec["trial"]["number"]: [e["val_loss"] for e in store.epochs(r.hash)] for r in trials}
        statuses = [r.status for r in trials]
        assert "pruned" in statuses and "complete" in statuses
        for r in trials:
            n = r.spec["trial"]["number"]
            earlier = [curves[t.spec["trial"]["number"]] for t in trials[:n] if t.status == "complete"]
            expected_stop = None
            if len(earlier) >= 3:
                for epoch in range(2, 13):  # warm-up: never before epoch 2
                    if epoch > len(curves[n]):
                        break
                    median = float(np.median([c[epoch - 1] for c in earlier if len(c) >= epoch]))
                    if min(curves[n][:epoch]) > median:
                        expected_stop = epoch
                        break
            if expected_stop is None:
                assert r.status == "complete" and len(curves[n]) == 12, (n, r.status)
            else:
                assert r.status == "pruned" and r.summary["epochs_trained"] == expected_stop < 12, (n, expected_stop)
                assert r.summary["stop_reason"].startswith("pruned: val_loss")


def _tiny_data() -> lineup.DataBundle:
    from lineup import data as datasets

    return datasets.load("gaussian-2", options={"n_train": 200, "n_val": 100, "n_test": 100})


@pytest.mark.parametrize(("others", "pruned"), [(0.99, True), (0.01, False)])
def test_the_prune_callback_judges_a_trial_against_the_trials_it_is_given(others: float, pruned: bool) -> None:
    """A trial in a worker builds its own in-memory study from the context: three finished trials far better than
    anything it can reach prune it after the warm-up; far worse ones let it train to the end."""
    from lineup.models import create_model
    from lineup.search.config import Dim
    from lineup.train import OptimConfig, build_optimizer, create_objective, fit

    data = _tiny_data()
    backend = Backend(name="s", dims=(Dim(name="lr", kind="log_uniform", low=1e-4, high=1.0, log=True),),
                      direction="maximize", searcher="random", pruner="median", seed=0, max_epochs=5,
                      options={"prune_after_trials": 3, "warmup_epochs": 1})
    records = tuple(TrialRecord(number=i, params={"lr": 0.01}, state="complete", value=others,
                                intermediate={e: others for e in range(1, 6)}) for i in range(3))
    callback = PruneCallback(PruningContext(backend=backend, number=3, metric="val_acc", trials=records))
    torch.manual_seed(0)
    model = create_model("softmax_regression", data.input_shape, data.num_classes)
    state = fit(model, create_objective("cross_entropy"), build_optimizer(model.parameters(), OptimConfig(lr=1e-4)),
                data.train, data.normalization, epochs=5, batch_size=50, seed=0, device=torch.device("cpu"),
                val=data.val, callbacks=[callback])
    assert callback.pruned is pruned
    assert state.epoch == (1 if pruned else 5)
    assert state.stop_reason.startswith("pruned") is pruned


def test_a_tuned_run_is_the_run_its_configuration_written_by_hand_is(tmp_path: Path) -> None:
    doc = {"study": {"name": "t", "seeds": [0, 1]}, "data": {"dataset": "digits", "classes": [0, 1, 2]},
           "train": {"epochs": 2, "batch_size": 32},
           "search": {"protocol": "both", "searcher": "random", "budget": {"trials": 3}, "pruner": "none",
                      "space": {"lr": {"log_uniform": [1e-3, 0.1]}, "optimizer": {"choices": ["adam", "sgd"]},
                                "options": {"dropout": {"uniform": [0.0, 0.5]}}}},
           "models": [{"name": "softmax", "model": "softmax_regression"},
                      {"name": "mlp", "model": "mlp", "options": {"hidden": [16]}}]}
    study = parse_study(doc)
    assert study.search is not None and study.search.entry_dims == {
        "softmax": ("lr", "optimizer"), "mlp": ("lr", "optimizer", "options.dropout")}
    plan = prepare(study)
    fixed_hashes = {r.hash for r in plan.runs}
    with Store(tmp_path / "store") as store:
        run_study(plan, store, progress=False)
        records = store.runs("t")
        tuned = {(r.label, r.seed): r for r in records if r.role == "tuned"}
        trials = [r for r in records if r.role == "trial"]
        assert {r.role for r in records} == {"run", "trial", "tuned"}
        assert len(trials) == 6 and len(tuned) == 4
        assert {r.hash for r in records if r.role == "run"} == fixed_hashes  # the fixed protocol is untouched
        # Each model's tuned runs: its best trial's configuration, over the study's seeds, as a file would write it.
        for label, arch in (("softmax", "softmax_regression"), ("mlp", "mlp")):
            mine = [t for t in trials if t.label == label]
            top = max(mine, key=lambda t: (t.summary["val_acc"], -t.spec["trial"]["number"]))
            params = top.spec["trial"]["params"]
            entry = {"name": label, "model": arch, "train": {k: v for k, v in params.items() if "." not in k},
                     "options": {**({"hidden": [16]} if label == "mlp" else {}),
                                 **{k.split(".")[1]: v for k, v in params.items() if "." in k}}}
            by_hand = parse_study({**{k: v for k, v in doc.items() if k != "search"}, "models": [entry]})
            expected = expand(by_hand, data_version=plan.data.version)
            assert [tuned[(label, s)].hash for s in (0, 1)] == [r.hash for r in expected]
        # A trial can never be an ordinary run: its spec is marked.
        assert not {t.hash for t in trials} & {r.hash for r in records if r.role != "trial"}
        assert all(t.spec["trial"]["search"] for t in trials)


def test_hyperband_prunes_only_at_the_rungs_of_its_brackets(tmp_path: Path, squared_error: None) -> None:
    """With a first rung of 1 epoch and a reduction factor of 3 over 12 epochs, Hyperband's brackets judge a trial
    after epoch 1, 3 or 9 (Li et al., 2018): a pruned trial stops at one of those and nowhere else, and each trial
    carries the rungs it reached for the trials after it."""
    path = tmp_path / "known.toml"
    path.write_text(KNOWN.format(search='searcher = "random"\nseed = 5\npruner = "hyperband"\nmin_epochs = 1\n'
                                        'reduction_factor = 3\nbudget = { trials = 16 }\n'
                                        'space.lr = { log_uniform = [1e-5, 0.4] }'))
    with Store(tmp_path / "store") as store:
        run_study(load_study(path), store, progress=False)
        trials = _trials(store, "known-lr")
        pruned = [r for r in trials if r.status == "pruned"]
        assert len(trials) == 16 and pruned
        assert {r.summary["epochs_trained"] for r in pruned} <= {1, 3, 9}
        for r in trials:
            rungs = r.summary["trial"]["system_attrs"]
            assert rungs and all(k.startswith("completed_rung_") for k in rungs)


def test_an_epoch_budget_is_never_overspent_and_pruning_buys_more_trials(tmp_path: Path, squared_error: None) -> None:
    """120 epochs at 12 a trial would be 10 trials without pruning; a trial starts only when it fits even if it runs
    to its last epoch, so the search stops when the next one might not fit, and pruned trials leave room for more."""
    path = tmp_path / "known.toml"
    path.write_text(KNOWN.format(search='searcher = "random"\nseed = 3\npruner = "median"\nprune_after_trials = 2\n'
                                        'warmup_epochs = 1\nbudget = { epochs = 120 }\n'
                                        'space.lr = { log_uniform = [1e-5, 0.4] }'))
    with Store(tmp_path / "store") as store:
        outcome = run_study(load_study(path), store, progress=False)
        trials = sorted(_trials(store, "known-lr"), key=lambda r: r.spec["trial"]["number"])
        epochs = [r.summary["epochs_trained"] for r in trials]
        for n in range(len(trials)):  # one after the other: each started with the epochs of those before it spent
            assert sum(epochs[:n]) + 12 <= 120
        assert sum(epochs) <= 120 < sum(epochs) + 12  # and no further trial could be sure to fit
        assert len(trials) > 10 and any(r.status == "pruned" for r in trials)
        (summary,) = outcome.searches
        assert summary.done and summary.epochs == sum(epochs) and summary.budget == "120 epochs"
