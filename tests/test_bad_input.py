"""Bad input is refused with one clear message (file, key, fix), exit code 2, and no change to the store."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lineup.cli import main

GOOD = """
[study]
name = "guarded"
seeds = [0]

[data]
dataset = "mnist-5k"
classes = [0, 1]
train_size = 100
test_size = 50

[train]
epochs = 1
batch_size = 50

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "mlp"
model = "mlp"
options = { hidden = [16] }
"""

# (replace this, with that) in GOOD, then the texts the message must contain
CASES = [
    ("syntax error", ("[study]", "[study"), ["TOML syntax error"]),
    ("unknown key", ("epochs = 1", "epochs = 1\nlearning_rate = 0.1"), ["train.learning_rate", "unknown key"]),
    ("wrong type", ("epochs = 1", 'epochs = "one"'), ["train.epochs", "expected an integer", "'one'"]),
    ("unknown model", ('model = "mlp"', 'model = "mpl"'), ["models[1]", "unknown model 'mpl'", "Did you mean 'mlp'"]),
    ("unknown dataset", ('dataset = "mnist-5k"', 'dataset = "mnist5k"'),
     ["unknown dataset", "Did you mean 'mnist-5k'"]),
    ("unknown optimizer", ("epochs = 1", 'epochs = 1\noptimizer = "adamw2"'), ["train.optimizer", "Allowed: 'adam'"]),
    ("unknown model option", ("hidden = [16]", "hiden = [16]"), ["models[1]", "hiden", "hidden"]),
    ("empty model list", ("[[models]]", "[[ignored]]"), ["unknown section 'ignored'"]),
    ("negative learning rate", ("epochs = 1", "epochs = 1\nlr = -0.001"), ["train.lr", "greater than 0"]),
    ("seeds as strings", ("seeds = [0]", 'seeds = ["zero"]'), ["study.seeds[0]", "expected an integer"]),
    ("variant of a missing base", ('model = "mlp"', 'base = "perceptron"'),
     ["models[1].base", "not the name of any entry"]),
    ("duplicate names", ('name = "mlp"', 'name = "softmax"'), ["models[1].name", "duplicate model name 'softmax'"]),
    ("impossible input size",
     ('model = "mlp"\noptions = { hidden = [16] }', 'model = "lenet5"\noptions = { kernel_size = 15 }'),
     ["models[1]", "too small"]),
    ("class out of range", ("classes = [0, 1]", "classes = [0, 12]"), ["classes", "0..9"]),
    ("more examples than exist", ("train_size = 100", "train_size = 100000"), ["train_size"]),
    ("path in the study name", ('name = "guarded"', 'name = "../../etc/passwd"'),
     ["study.name", "not a valid study name"]),
    ("wrong option type", ("hidden = [16]", 'hidden = "sixteen"'), ["models[1]", "hidden"]),
    ("missing dataset", ('dataset = "mnist-5k"\n', ""), ["data.dataset", "missing required key"]),
]


def _dump(store: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(store / "lineup.sqlite") as db:
        return list(db.iterdump())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guarded")
    (root / "good.toml").write_text(GOOD)
    out = CliRunner().invoke(main, ["run", str(root / "good.toml"), "--store", str(root / "store"), "--no-progress"])
    assert out.exit_code == 0, out.output
    return root / "store"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_study_is_refused_and_store_unchanged(store: Path, tmp_path: Path, change: tuple[str, str],
                                                 expected: list[str]) -> None:
    bad = GOOD.replace(*change, 1)
    assert bad != GOOD
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    before = _dump(store)
    out = CliRunner().invoke(main, ["run", str(path), "--store", str(store), "--no-progress"])
    assert out.exit_code == 2, out.output
    message = out.output.strip()
    assert message.startswith("error: ") and message.count("\n") == 0  # one line, no traceback
    assert str(path) in message
    for text in expected:
        assert text in message
    assert _dump(store) == before


def test_missing_study_file_and_store(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml"), "--store", str(tmp_path / "s")])
    assert out.exit_code == 2 and "cannot read the study file" in out.output
    out = CliRunner().invoke(main, ["report", "x", "--store", str(tmp_path / "s")])
    assert out.exit_code == 1 and "no results store" in out.output
    assert not (tmp_path / "s").exists()


class _NoFeatures(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(784, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class _WrongShape(_NoFeatures):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))[:, :1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_models_that_break_the_contract_are_refused_before_training() -> None:
    from lineup.data import load
    from lineup.errors import SpecError
    from lineup.study.runner import check_contract

    data = load("mnist-5k", classes=[0, 1], train_size=10, test_size=10)
    with pytest.raises(SpecError, match="'nofeat' has no forward_features"):
        check_contract(_NoFeatures(), "nofeat", data)
    with pytest.raises(SpecError, match=r"'wrong' returns \(2, 1\) .* needs logits of shape \(2, 2\)"):
        check_contract(_WrongShape(), "wrong", data)
    check_contract(_WrongShape(), "binary", data, "binary_cross_entropy")  # (N, 1) is right for this objective
