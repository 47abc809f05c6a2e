"""The published JSON Schema of study files: generated from the validator's own sections, accepted by every example,
and in agreement with lineup's validation on the malformed-study corpus; `lineup init` writes a study that passes
both."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

import test_bad_input
import test_spec
from lineup import spec
from lineup.cli import main
from lineup.errors import SpecError
from lineup.schema import PUBLISHED, schema_text, starter_study, study_schema

ROOT = Path(__file__).resolve().parents[1]
# The published file, as an editor reads it (a test below keeps it equal to what lineup generates).
VALIDATOR = jsonschema.Draft4Validator(json.loads((ROOT / PUBLISHED).read_text(encoding="utf-8")))


def test_the_schema_is_valid_draft_4_and_the_published_copy_is_current() -> None:
    schema = study_schema()
    jsonschema.Draft4Validator.check_schema(schema)  # Taplo reads draft 4 and nothing newer
    published = ROOT / PUBLISHED
    assert published.read_text(encoding="utf-8") == schema_text(), (
        f"{PUBLISHED} is out of date: regenerate it with `lineup schema --out {PUBLISHED}`")
    out = CliRunner().invoke(main, ["schema"])
    assert out.exit_code == 0 and json.loads(out.output) == schema


@pytest.mark.parametrize("cls", [spec.StudySection, spec.DataSection, spec.TrainSection, spec.ProtocolSection,
                                 spec.ModelEntry, spec.EarlyStoppingSection], ids=lambda c: c.__name__)
def test_every_field_of_every_section_is_in_the_schema_with_its_help_and_constraints(cls: type) -> None:
    schema = study_schema()["properties"]
    where = {spec.StudySection: schema["study"], spec.DataSection: schema["data"], spec.TrainSection: schema["train"],
             spec.ProtocolSection: schema["protocol"], spec.ModelEntry: schema["models"]["items"],
             spec.EarlyStoppingSection: schema["train"]["properties"]["early_stopping"]}[cls]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(where["properties"]) == set(fields)
    assert where["additionalProperties"] is False
    for name, f in fields.items():
        prop = where["properties"][name]
        assert prop["description"] == f.metadata["help"]
        if "choices" in f.metadata:
            assert prop["enum"] == list(f.metadata["choices"])
        if "max" in f.metadata:
            assert (prop.get("items") or prop)["maximum"] == f.metadata["max"]
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    assert where.get("required", []) == required


def test_top_level_sections_match_what_the_validator_allows() -> None:
    with pytest.raises(SpecError, match="Allowed sections: ") as err:
        spec.parse_study({"no-such-section": {}})
    allowed = err.value.detail.split("Allowed sections: ")[1].rstrip(".").split(", ")
    assert set(study_schema()["properties"]) == set(allowed)


def _example_studies() -> list[Path]:
    return sorted(p for p in (ROOT / "examples").rglob("*.toml") if p.name != "pyproject.toml")


@pytest.mark.parametrize("path", _example_studies(), ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_every_example_study_validates_against_the_schema_and_lineup(path: Path) -> None:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    errors = [f"{_key(e)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert errors == []
    spec.parse_study(doc, file=str(path))


def test_the_examples_include_the_plugin_study() -> None:
    assert ROOT / "examples" / "custom_model" / "study.toml" in _example_studies()


# ---------------------------------------------------------------------------------------------- the bad corpus


def _key(error: jsonschema.ValidationError) -> str:
    """The dotted key (lineup's spelling: ``models[1].train.epoch``) that a schema error is about."""
    key = ""
    for part in error.absolute_path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    extra: list[str] = []
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
    elif error.validator == "required":
        extra = [k for k in error.validator_value if k not in error.instance]
    if extra:
        key = f"{key}.{extra[0]}" if key else extra[0]
    return key


# Each corpus case that JSON Schema cannot express, with the reason; lineup's own validation refuses all of them.
CANNOT = {
    "TOML syntax error": "not a TOML document: a schema applies to parsed data",
    "syntax error": "not a TOML document: a schema applies to parsed data",
    "Did you mean 'base'": "base must name another entry of the same file: a reference between array items",
    "variant of a missing base": "base must name another entry of the same file: a reference between array items",
    "duplicate model name": "distinct names across the items of an array (uniqueItems compares whole items)",
    "duplicate names": "distinct names across the items of an array (uniqueItems compares whole items)",
    "variant cycle": "a cycle through base references between entries",
    "unknown model": "model names come from the model registry, which plugins extend",
    "unknown dataset": "dataset names come from the dataset registry, which plugins extend",
    "unknown model option": "a model's options come from its builder's signature; a variant inherits its model",
    "wrong option type": "a model's option types come from its builder's signature",
    "impossible input size": "depends on the dataset's image size and the model's layers together",
    "class out of range": "depends on how many classes the dataset has",
    "more examples than exist": "depends on how many examples the dataset has",
}


def _corpus() -> list[tuple[str, str]]:
    """(case name, study text) for every malformed study of test_spec and test_bad_input."""
    cases = [(text, test_spec.GOOD.replace(*change, 1)) for change, _, text in test_spec.BAD]
    cases += [(name, test_bad_input.GOOD.replace(*change, 1)) for name, change, _ in test_bad_input.CASES]
    no_models = test_spec.GOOD.split("[[models]]")[0]
    cases += [("no models", no_models), ("empty models", no_models + "models = []\n"),
              ("missing dataset key", test_spec.GOOD.replace('dataset = "digits"', "")),
              ("variant cycle", test_spec.GOOD.replace('model = "mlp"', 'base = "wide-es"'))]
    return cases


def test_the_corpus_is_complete_and_every_exception_is_a_case() -> None:
    names = [name for name, _ in _corpus()]
    assert len(names) == len(test_spec.BAD) + len(test_bad_input.CASES) + 4
    assert set(CANNOT) <= set(names)


@pytest.mark.parametrize(("name", "text"), _corpus(), ids=[n for n, _ in _corpus()])
def test_schema_and_lineup_agree_on_the_malformed_corpus(name: str, text: str) -> None:
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert name in CANNOT
        return
    schema_keys = [_key(e) for e in VALIDATOR.iter_errors(doc)]
    if name in CANNOT:
        # The schema does accept it (else it belongs below); lineup refuses it when the study is checked.
        assert schema_keys == [], f"the schema now expresses {name!r}: remove it from CANNOT"
        return
    assert schema_keys, f"the schema accepts {name!r}"
    with pytest.raises(SpecError) as err:
        spec.parse_study(doc, file="study.toml")
    assert err.value.key in schema_keys, (err.value.key, schema_keys)


# The cases above that lineup refuses while parsing; the others depend on registries or data and are refused by
# `lineup run` before anything is stored (test_bad_input).
PARSE_TIME = ("Did you mean 'base'", "variant of a missing base", "duplicate model name", "duplicate names",
              "variant cycle")


def test_cases_the_schema_cannot_express_are_refused_when_the_study_is_parsed() -> None:
    texts = dict(_corpus())
    for name in PARSE_TIME:
        assert name in CANNOT
        with pytest.raises(SpecError):
            spec.parse_study(tomllib.loads(texts[name]))


# ---------------------------------------------------------------------------------------------- lineup init


def test_init_writes_a_commented_starter_that_validates_and_builds(tmp_path: Path) -> None:
    from lineup.study import prepare

    path = tmp_path / "studies" / "first-try.toml"
    out = CliRunner().invoke(main, ["init", str(path)])
    assert out.exit_code == 0, out.output
    text = path.read_text(encoding="utf-8")
    assert text.count("\n#") > 20  # the settings left at their default are listed as comments
    doc = tomllib.loads(text)
    assert list(VALIDATOR.iter_errors(doc)) == []
    study = spec.load_study(path)
    assert study.name == "first-try" and [m.name for m in study.models] == ["softmax-regression", "mlp", "mlp-wide"]
    plan = prepare(study)  # its data loads and its models build: it would train
    assert len(plan.runs) == 6
    # Every default it shows is the real default: uncommenting them all changes nothing.
    uncommented = "\n".join(line[2:] if re.match(r"# [a-z_]+ = ", line) else line for line in text.splitlines())
    assert uncommented.count("\n#") < text.count("\n#") - 10
    assert spec.expand(spec.parse_study(tomllib.loads(uncommented)), data_version="v") == \
        spec.expand(study, data_version="v")

    again = CliRunner().invoke(main, ["init", str(path)])
    assert again.exit_code == 1 and "exists" in again.output and "--force" in again.output
    assert CliRunner().invoke(main, ["init", str(path), "--force"]).exit_code == 0


def test_starter_falls_back_to_a_valid_name() -> None:
    doc = tomllib.loads(starter_study("not a name!"))
    assert doc["study"]["name"] == "my_study"
    assert typing.cast(dict[str, Any], doc)["data"]["dataset"] == "digits"
