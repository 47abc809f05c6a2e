"""Study files: validation messages that name file, key and fix; expansion and run hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineup.errors import SpecError
from lineup.spec import expand, load_study

GOOD = """
[study]
name = "s"
seeds = [0, 1]

[data]
dataset = "digits"

[train]
epochs = 2
early_stopping = { monitor = "val_acc", patience = 2 }

[[models]]
name = "base"
model = "mlp"
options = { hidden = [32] }

[[models]]
name = "wide"
base = "base"
options = { hidden = [64] }
train = { lr = 0.01 }

[[models]]
name = "wide-es"
base = "wide"
train = { early_stopping = { patience = 5 } }
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def test_good_study_expands_with_variants_resolved(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, GOOD))
    runs = expand(study, data_version="v1")
    assert [(r.label, r.seed) for r in runs] == [("base", 0), ("base", 1), ("wide", 0), ("wide", 1),
                                                 ("wide-es", 0), ("wide-es", 1)]
    wide = runs[2].spec
    assert wide["model"] == {"name": "mlp", "options": {"hidden": [64]}}
    assert wide["train"]["lr"] == 0.01 and wide["train"]["epochs"] == 2
    es = runs[4].spec["train"]["early_stopping"]
    assert es["patience"] == 5 and es["monitor"] == "val_acc"  # merged with the study's table, not replaced
    assert len({r.hash for r in runs}) == 6


def test_hash_depends_on_content_not_names(tmp_path: Path) -> None:
    a = expand(load_study(_write(tmp_path, GOOD)), data_version="v1")
    renamed = GOOD.replace('name = "s"', 'name = "other"').replace('"base"', '"b0"')
    b = expand(load_study(_write(tmp_path, renamed)), data_version="v1")
    assert [r.hash for r in a] == [r.hash for r in b]
    c = expand(load_study(_write(tmp_path, GOOD)), data_version="v2")
    assert not {r.hash for r in a} & {r.hash for r in c}  # new data never reuses results
    moved = GOOD.replace('dataset = "digits"', 'dataset = "digits"\nroot = "/elsewhere"')
    d = expand(load_study(_write(tmp_path, moved)), data_version="v1")
    assert [r.hash for r in a] == [r.hash for r in d]  # where the files live is not part of the run


def test_hash_ignores_settings_left_at_their_default(tmp_path: Path) -> None:
    """Writing a default out, or a section gaining a new setting whose default is the old behaviour, keeps
    the stored runs valid; any other value makes a new run."""
    from lineup.spec import run_hash

    a = expand(load_study(_write(tmp_path, GOOD)), data_version="v1")
    spelled = GOOD.replace("epochs = 2", "epochs = 2\nbatch_size = 64\noptimizer = \"adam\"")
    b = expand(load_study(_write(tmp_path, spelled)), data_version="v1")
    assert [r.hash for r in a] == [r.hash for r in b]
    spec = a[0].spec
    grown = {**spec, "protocol": {**spec["protocol"], "a_future_setting": None}}
    assert run_hash(grown) != run_hash(spec)  # unknown keys are not dropped: only defaults of known fields are
    changed = {**spec, "train": {**spec["train"], "batch_size": 32}}
    assert run_hash(changed) != run_hash(spec)


BAD = [
    # (what to change in GOOD, expected key in the message, expected text)
    (("[study]", "[study"), None, "TOML syntax error"),
    (("epochs = 2", "epochs = 2\nlrate = 0.1"), "train.lrate", "Did you mean 'lr'"),
    (("epochs = 2", 'epochs = "two"'), "train.epochs", "expected an integer"),
    (("epochs = 2", "epochs = 2\nlr = -0.1"), "train.lr", "greater than 0"),
    (("epochs = 2", 'epochs = 2\noptimizer = "adamm"'), "train.optimizer", "Did you mean 'adam'"),
    (("seeds = [0, 1]", 'seeds = ["a", "b"]'), "study.seeds[0]", "expected an integer"),
    (("seeds = [0, 1]", "seeds = [1, 1]"), "study.seeds", "duplicate seeds"),
    (('base = "base"', 'base = "bsae"'), "models[1].base", "Did you mean 'base'"),
    (('name = "wide"', 'name = "base"'), "models[1].name", "duplicate model name"),
    (('name = "s"', 'name = "../../etc/passwd"'), "study.name", "not a valid study name"),
    (("[data]", "[dta]"), "dta", "Did you mean 'data'"),
    (('train = { lr = 0.01 }', 'train = { lr = 0.01, epoch = 3 }'), "models[1].train.epoch", "Did you mean 'epochs'"),
    (('dataset = "digits"', 'dataset = "digits"\nval_fraction = 0.9'), "data.val_fraction", "at most 0.5"),
    # a table that may also be absent: the error inside it, not "expected a table or absent"
    (('patience = 2 }', 'patiense = 2 }'), "train.early_stopping.patiense", "Did you mean 'patience'"),
    (('dataset = "digits"', 'dataset = "digits"\ntest_split = { seed = -1 }'), "data.test_split.seed",
     "at least 0"),
]


@pytest.mark.parametrize(("change", "key", "text"), BAD, ids=[b[2] for b in BAD])
def test_bad_study_files(tmp_path: Path, change: tuple[str, str], key: str | None, text: str) -> None:
    path = _write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(SpecError) as err:
        load_study(path)
    msg = str(err.value)
    assert str(path) in msg
    assert text in msg
    if key is not None:
        assert err.value.key == key


def test_no_models(tmp_path: Path) -> None:
    text = GOOD.split("[[models]]")[0]
    with pytest.raises(SpecError, match="no models"):
        load_study(_write(tmp_path, text))
    with pytest.raises(SpecError, match="no models"):
        load_study(_write(tmp_path, text + "models = []\n"))


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="missing required key 'dataset'") as err:
        load_study(_write(tmp_path, GOOD.replace('dataset = "digits"', "")))
    assert err.value.key == "data.dataset"


def test_variant_cycle(tmp_path: Path) -> None:
    text = GOOD.replace('model = "mlp"', 'base = "wide-es"')
    with pytest.raises(SpecError, match="cycle"):
        load_study(_write(tmp_path, text))
