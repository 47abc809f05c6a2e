"""The [search] section as users meet it: validation messages that name the key, the published schema, the command
line, the report, parallel trials in a process pool, and stores written before searches existed."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from lineup import Store, load_study, run_study
from lineup.cli import main
from lineup.errors import SpecError
from lineup.schema import PUBLISHED
from lineup.spec import parse_study
from lineup.study.runner import prepare

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = jsonschema.Draft4Validator(json.loads((ROOT / PUBLISHED).read_text(encoding="utf-8")))

STUDY = """
[study]
name = "tuned"
seeds = [0, 1]

[data]
dataset = "digits"
classes = [0, 1, 2, 3]
val_fraction = 0.2

[train]
epochs = 3
batch_size = 32
threads = 1

[search]
{search}

[[models]]
name = "softmax"
model = "softmax_regression"

[[models]]
name = "mlp"
model = "mlp"
options = {{ hidden = [16] }}
"""

GOOD = """protocol = "both"
searcher = "tpe"
startup_trials = 2
pruner = "median"
prune_after_trials = 2
budget = { trials = 4 }
space.lr = { log_uniform = [1e-3, 0.3] }
space.options.dropout = { uniform = [0.0, 0.5] }"""


def _doc(search: str) -> dict:
    return tomllib.loads(STUDY.format(search=search))


# (change to GOOD, key named, words in the message, whether the published schema refuses it too)
BAD = [
    (("lr = {", "learning_rate = {"), "search.space.learning_rate", "unknown search dimension", True),
    (("options.dropout", "options.dropuot"), "search.space.options.dropuot", "Did you mean 'dropout'", False),
    (("{ uniform = [0.0, 0.5] }", "{ choices = [] }"), "search.space.options.dropout.choices", "empty choices", True),
    (("[1e-3, 0.3]", "[0.3, 1e-3]"), "search.space.lr.log_uniform", "low must be below high", False),
    (("[1e-3, 0.3]", "[0.0, 0.3]"), "search.space.lr.log_uniform", "needs low > 0", False),
    (("trials = 4", "trials = 0"), "search.budget.trials", "at least 1", True),
    (("budget = { trials = 4 }", "budget = {}"), "search.budget", "in trials or in epochs", True),
    (("{ log_uniform = [1e-3, 0.3] }", "{ log_uniform = [1e-3, 0.3], uniform = [0.0, 1.0] }"), "search.space.lr",
     "exactly one of", True),
    (('searcher = "tpe"', 'searcher = "bayes"'), "search.searcher", "'bayes' is not allowed", True),
    (('pruner = "median"', 'pruner = "asha"'), "search.pruner", "'asha' is not allowed", True),
    (("space.lr = { log_uniform = [1e-3, 0.3] }\nspace.options.dropout = { uniform = [0.0, 0.5] }", ""),
     "search.space", "needs a search space", False),
    (('searcher = "tpe"', 'searcher = "grid"'), "search.space.lr", "needs points = N", False),
    (("space.lr", "space.optimizer = { choices = [\"adam\", \"lbfgs\"] }\nspace.lr"), "search.space.optimizer",
     "'lbfgs' is not allowed", False),
    (("space.lr", "space.device = { choices = [\"cpu\"] }\nspace.lr"), "search.space.device",
     "unknown search dimension", True),
]


@pytest.mark.parametrize(("change", "key", "text", "schema"), BAD, ids=[b[2] for b in BAD])
def test_bad_searches_are_refused_with_the_key_and_the_fix(change: tuple[str, str], key: str, text: str,
                                                           schema: bool) -> None:
    assert change[0] in GOOD
    doc = _doc(GOOD.replace(*change, 1))
    with pytest.raises(SpecError) as err:
        parse_study(doc, file="study.toml")
    assert err.value.key == key and text in err.value.detail, (err.value.key, err.value.detail)
    refused = list(VALIDATOR.iter_errors(doc))
    assert bool(refused) is schema  # the schema says what it can; lineup says the rest


def test_the_good_search_validates_against_the_schema_and_lineup() -> None:
    assert list(VALIDATOR.iter_errors(_doc(GOOD))) == []
    study = parse_study(_doc(GOOD))
    assert study.search is not None and [d.name for d in study.search.dims] == ["lr", "options.dropout"]
    assert study.search.seeds == (0,)  # the study's first seed, unless [search] seeds says otherwise


def test_a_study_built_in_code_searches_as_its_file_does() -> None:
    import lineup

    doc = _doc(GOOD)
    built = lineup.make_study("tuned", data=doc["data"], seeds=[0, 1], train=doc["train"], search=doc["search"],
                              models=[lineup.model("softmax", "softmax_regression"),
                                      lineup.model("mlp", options={"hidden": [16]})])
    assert built.search == parse_study(doc).search


def test_a_model_option_of_no_model_is_refused_with_the_options_there_are() -> None:
    with pytest.raises(SpecError) as err:
        parse_study(_doc(GOOD.replace("options.dropout", "options.depth")))
    assert err.value.key == "search.space.options.depth" and "dropout" in err.value.detail


def test_the_search_changes_no_hash_of_the_fixed_protocol() -> None:
    plain = parse_study({k: v for k, v in _doc(GOOD).items() if k != "search"})
    both = parse_study(_doc(GOOD))
    tuned = parse_study(_doc(GOOD.replace('protocol = "both"', 'protocol = "tuned"')))
    data = prepare(plain)
    assert [r.hash for r in prepare(both).runs] == [r.hash for r in data.runs]
    assert prepare(tuned).runs == []  # tuned alone: only what the searches decide is trained


def test_run_ls_report_and_rerun_of_a_study_with_both_protocols(tmp_path: Path) -> None:
    path = tmp_path / "tuned.toml"
    path.write_text(STUDY.format(search=GOOD))
    store_dir = tmp_path / "results"
    cli = CliRunner()
    first = cli.invoke(main, ["run", str(path), "--store", str(store_dir), "--no-progress"])
    assert first.exit_code == 0, first.output
    # 4 fixed runs, 2 x 4 trials, 2 x 2 tuned runs
    assert "4 runs as written and 2 model searches, 16 trained now (of which 8 search trials)" in first.output
    assert "mlp: trial 1/4 (lr=" in first.output  # the search's progress, one line per trial
    assert "search mlp: 4 trials" in first.output and "done; best: trial" in first.output
    with Store(store_dir) as store:
        records = store.runs("tuned")
        assert sorted({r.role for r in records}) == ["run", "trial", "tuned"]
        assert store.studies()[0]["trials"] == 8 and store.studies()[0]["runs"] == 8
    listed = cli.invoke(main, ["ls", "tuned", "--store", str(store_dir)])
    assert listed.exit_code == 0
    head, trials = listed.output.split("search trials (8, scored on the validation split):")
    assert head.count("(tuned)") == 4 and head.count("test acc") == 8
    assert trials.count("trial ") == 8 and "test acc" not in trials and "val acc" in trials

    again = cli.invoke(main, ["run", str(path), "--store", str(store_dir), "--no-progress"])
    assert again.exit_code == 0 and "0 trained now, 4 already in the store" in again.output

    html = (store_dir / "reports" / "tuned" / "report.html").read_text()
    for section in ('id="search"', 'id="fixed-vs-tuned"', 'id="sensitivity"', 'id="search-history"',
                    'id="trials"'):
        assert section in html
    assert "4 trials" in html and "Kendall" in html
    tables = store_dir / "reports" / "tuned" / "tables"
    side = (tables / "fixed_vs_tuned.csv").read_text().splitlines()
    assert side[0].startswith("model,rank fixed,test acc % fixed") and len(side) == 3
    search_rows = (tables / "search.csv").read_text().splitlines()
    assert len(search_rows) == 3 and all(",4," in row for row in search_rows[1:])  # 4 trials each
    assert len((tables / "trials.csv").read_text().splitlines()) == 1 + 8


def test_trials_run_in_parallel_in_a_process_pool(tmp_path: Path) -> None:
    search = GOOD.replace('protocol = "both"', 'protocol = "tuned"').replace("trials = 4", "trials = 5")
    path = tmp_path / "tuned.toml"
    path.write_text(STUDY.format(search=search).replace("seeds = [0, 1]", "seeds = [0]"))
    with Store(tmp_path / "store") as store:
        outcome = run_study(load_study(path), store, executor="pool", executor_options={"workers": 2},
                            progress=False)
        records = store.runs("tuned")
        trials = [r for r in records if r.role == "trial"]
        # Each model's numbering is 0..4 without a gap or a repeat, every trial finished, each tuned run trained once.
        for label in ("softmax", "mlp"):
            assert sorted(r.spec["trial"]["number"] for r in trials if r.label == label) == list(range(5))
        assert {r.status for r in trials} <= {"complete", "pruned"}
        assert [r.status for r in records if r.role == "tuned"] == ["complete", "complete"]
        assert len(outcome.trained) == 10 + 2 and len({run.hash for run, _ in outcome.trained}) == 12
        assert all(s.done for s in outcome.searches)


def test_a_store_written_before_searches_is_upgraded_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(STUDY.format(search='protocol = "fixed"').replace("seeds = [0, 1]", "seeds = [0]"))
    with Store(tmp_path / "store") as store:
        run_study(load_study(path), store, progress=False)
        before = [(r.hash, r.label, r.status) for r in store.runs("tuned")]
    with sqlite3.connect(tmp_path / "store" / "lineup.sqlite") as db:  # the study_runs table of schema 4
        db.executescript("""
            ALTER TABLE study_runs RENAME TO new_study_runs;
            CREATE TABLE study_runs (study TEXT NOT NULL REFERENCES studies(name), run TEXT NOT NULL
                REFERENCES runs(hash), label TEXT NOT NULL, position INTEGER NOT NULL, setting TEXT NOT NULL
                DEFAULT '', PRIMARY KEY (study, run));
            INSERT INTO study_runs SELECT study, run, label, position, setting FROM new_study_runs;
            DROP TABLE new_study_runs;
            UPDATE meta SET value = '4' WHERE key = 'schema';""")
    with Store(tmp_path / "store") as store:
        assert [(r.hash, r.label, r.status) for r in store.runs("tuned")] == before
        assert {r.role for r in store.runs("tuned")} == {"run"}
    with sqlite3.connect(tmp_path / "store" / "lineup.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("5",)


def test_each_data_setting_gets_its_own_searches(tmp_path: Path) -> None:
    search = GOOD.replace('protocol = "both"', 'protocol = "tuned"').replace("trials = 4", "trials = 2")
    text = STUDY.format(search=search).replace("seeds = [0, 1]", "seeds = [0]") + """
[[settings]]
name = "clean"

[[settings]]
name = "noisy"
distortions = { label_noise = { rate = 0.3 } }
"""
    path = tmp_path / "tuned.toml"
    path.write_text(text)
    with Store(tmp_path / "store") as store:
        outcome = run_study(load_study(path), store, progress=False)
        assert [(s.setting, s.labels, s.trials) for s in outcome.searches] == [
            ("clean", ["softmax"], 2), ("clean", ["mlp"], 2), ("noisy", ["softmax"], 2), ("noisy", ["mlp"], 2)]
        records = store.runs("tuned")
        for setting in ("clean", "noisy"):
            mine = [r for r in records if r.setting == setting]
            assert sum(r.role == "trial" for r in mine) == 4 and sum(r.role == "tuned" for r in mine) == 2
            assert {r.spec["data"]["distortions"] != {} for r in mine} == {setting == "noisy"}
