"""The study file as a JSON Schema, and a commented starter study, both generated from the section dataclasses.

``study_schema()`` walks the same typed sections that ``lineup.spec`` validates with (``StudySection``,
``DataSection``, ``TrainSection`` ...): each field's type, default, help text and constraints (``min``, ``max``,
``gt``, ``choices``) become its JSON Schema, so the schema cannot drift from the validator. The few rules that the
validator checks in code rather than in field metadata (the study name's pattern, distinct seeds, an entry that
names a model or a base) are added here next to a reference to that code. Editors that speak JSON Schema (Taplo /
Even Better TOML, IntelliJ) then complete keys, show the help texts and flag mistakes as you type.

The schema is JSON Schema draft 4, the newest that Taplo reads. It cannot express what depends on the registries
or on other entries (an unknown model or dataset, model options, a variant of a missing base, a cycle of variants,
duplicate entry names); lineup's own validation still checks those when the study is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from lineup import spec
from lineup.data.distortions import KINDS
from lineup.data.transform import ImageTransform
from lineup.plugins import _MODULE

DRAFT = "http://json-schema.org/draft-04/schema#"

#: Where the published copy of ``study_schema()`` lives in the repository (a test keeps it up to date).
PUBLISHED = Path("schema") / "study.schema.json"


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _value_schema(tp: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of one value of Python type ``tp`` with the field constraints ``meta``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # TOML has no null: an optional key is one that is absent, so None is left out.
        options = [_value_schema(a, meta) for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": _value_schema(item, meta)}  # constraints hold for each item
    if origin is dict or tp is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(tp):
        return section_schema(tp)  # type: ignore[arg-type]
    if tp is Any:
        return {}
    out: dict[str, Any] = {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
                           str: {"type": "string"}}[tp].copy()
    if "choices" in meta:
        out["enum"] = list(meta["choices"])
    if tp in (int, float):
        if "min" in meta:
            out["minimum"] = meta["min"]
        if "gt" in meta:  # draft 4: exclusiveMinimum is a flag on minimum
            out["minimum"], out["exclusiveMinimum"] = meta["gt"], True
        if "max" in meta:
            out["maximum"] = meta["max"]
    return out


def section_schema(cls: type, *, required: bool = True) -> dict[str, Any]:
    """The JSON Schema of a section dataclass: its fields, nothing else.

    Args:
        required: list the fields without a default as required (not for tables that override another, such as
            a model entry's ``train``).
    """
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    needed = []
    for f in dataclasses.fields(cls):
        s = _value_schema(hints[f.name], dict(f.metadata))
        if "help" in f.metadata:
            s["description"] = f.metadata["help"]
        default = _default(f)
        if default is dataclasses.MISSING:
            needed.append(f.name)
        elif default is not None:
            s["default"] = list(default) if isinstance(default, tuple) else default
        properties[f.name] = s
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if needed and required:
        out["required"] = needed
    return out


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with nothing required, at any depth: a table that overrides some keys of another."""
    out = {k: v for k, v in schema.items() if k != "required"}
    if "properties" in out:
        out["properties"] = {k: _optional(v) for k, v in out["properties"].items()}
    return out


def study_schema() -> dict[str, Any]:
    """The JSON Schema (draft 4) of a study file; ``lineup schema`` prints it."""
    study = section_schema(spec.StudySection)
    # The rules spec._check_entries enforces in code.
    study["properties"]["name"]["pattern"] = spec._NAME.pattern
    study["properties"]["seeds"].update(minItems=1, uniqueItems=True)
    study["properties"]["plugins"]["items"]["pattern"] = _MODULE.pattern

    data = section_schema(spec.DataSection)
    data["properties"]["options"]["properties"] = section_schema(ImageTransform)["properties"]
    data["properties"]["distortions"].update(
        properties={name: section_schema(kind) for name, kind in KINDS.items()}, additionalProperties=False)

    train = section_schema(spec.TrainSection)
    entry = section_schema(spec.ModelEntry)
    entry["properties"]["train"] = {**_optional(train), "description": entry["properties"]["train"]["description"]}
    entry["anyOf"] = [{"required": ["model"]}, {"required": ["base"]}]  # spec._check_entries: model or base

    properties: dict[str, Any] = {
        "study": study,
        "data": data,
        "train": train,
        "protocol": section_schema(spec.ProtocolSection),
        "models": {"type": "array", "minItems": 1, "items": entry,
                   "description": "the model entries: each a registered model or a variant (base) of another entry"},
    }
    setting_keys = getattr(spec, "SETTING_KEYS", None)
    if setting_keys is not None:  # [[settings]]: [data] keys overridden per data setting
        setting = _optional(data)
        setting["properties"] = {
            "name": {"type": "string", "pattern": spec._NAME.pattern, "description": setting_keys["name"]},
            "description": {"type": "string", "description": setting_keys["description"]},
            **setting["properties"],
        }
        setting["required"] = ["name"]
        properties["settings"] = {"type": "array", "minItems": 1, "items": setting,
                                  "description": "data settings: every model is trained on each"}
    decomposition = getattr(spec, "DecompositionSection", None)
    if decomposition is not None:  # [decomposition]: the excess risk split into estimation and approximation error
        properties["decomposition"] = {**section_schema(decomposition),
                                       "description": " ".join((decomposition.__doc__ or "").split())}
    properties["search"], dimension = _search_schema()
    return {
        "$schema": DRAFT,
        "title": "lineup study",
        "description": "A lineup study file: data x models x seeds trained under one protocol "
                       "(lineup run STUDY.toml).",
        "type": "object",
        "properties": properties,
        "required": ["study", "data", "models"],
        "additionalProperties": False,
        "definitions": {"search_dimension": dimension},  # one copy, referred to by every dimension of a space
    }


def _search_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """``[search]``: its keys, and a space whose dimensions are [train] settings or model options under ``options``;
    and the schema of one dimension, which the space refers to (``#/definitions/search_dimension``)."""
    from lineup.search.config import _NOT_SEARCHED, KINDS, BudgetSection, DimSection, SearchSection

    search = section_schema(SearchSection)
    search["description"] = " ".join((SearchSection.__doc__ or "").split())
    search["properties"]["budget"] = {**section_schema(BudgetSection), "minProperties": 1, "maxProperties": 1,
                                      "description": search["properties"]["budget"]["description"]}
    search["properties"]["seeds"].update(minItems=1, uniqueItems=True)
    dim = section_schema(DimSection)
    for kind in ("uniform", "log_uniform", "integer"):  # [low, high]
        dim["properties"][kind].update(minItems=2, maxItems=2)
    dim["properties"]["choices"].update(minItems=1, items={"type": ["number", "string", "boolean"]})
    dim["oneOf"] = [{"required": [kind]} for kind in KINDS]  # parse_search: exactly one kind per dimension
    train = [f.name for f in dataclasses.fields(spec.TrainSection) if f.name not in _NOT_SEARCHED]
    space = search["properties"]["space"]
    ref = {"$ref": "#/definitions/search_dimension"}
    space["properties"] = {name: ref for name in train}
    space["properties"]["options"] = {"type": "object", "additionalProperties": ref, "minProperties": 1,
                                      "description": "model options, each a dimension"}
    space["additionalProperties"] = False
    return search, dim


def schema_text() -> str:
    """``study_schema()`` as the text of the published file."""
    return json.dumps(study_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------- starter


def _toml(value: Any) -> str:
    """``value`` as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string uses JSON's escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML for {value!r}")


def _section_lines(cls: type, values: dict[str, Any]) -> list[str]:
    """One line per field: ``values`` set, every other field commented out with its default and help."""
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        if f.name in values:
            lines.append(f"{f.name} = {_toml(values[f.name])}")
            continue
        default = _default(f)
        if any(dataclasses.is_dataclass(t) for t in (hints[f.name], *typing.get_args(hints[f.name]))):
            continue  # a table of its own: the starter writes it out where it matters
        if default is None or default is dataclasses.MISSING:
            text = f"# {f.name + ':':<28} # {help_text} (unset by default)"
        else:
            text = f"# {f.name + ' = ' + _toml(default):<28} # {help_text}"
        lines += textwrap.wrap(text, width=118, subsequent_indent="#" + " " * 30 + "# ", break_on_hyphens=False)
    return lines


def starter_study(name: str = "my_study", *, path: str | None = None) -> str:
    """A commented study file that validates and trains in about a minute on a laptop's CPU.

    It compares softmax regression with an MLP and a wider variant of it on scikit-learn's 8x8 digits, which
    need no download; every other setting is listed, commented out, with its default and meaning.

    Args:
        name: the study's name (``my_study`` when it is not a valid one).
        path: where the file will be written, for the command shown in its first lines.
    """
    if not spec._NAME.match(name):
        name = "my_study"
    parts = [
        "# A lineup study: data x models x seeds, trained under one protocol and compared in one report.",
        f"#   lineup run {path or name + '.toml'}    trains what the store lacks and writes the report",
        "#   lineup models | lineup datasets   what can be named below, with their options",
        "# For completion and checks in your editor, point it at the study schema (`lineup schema`), e.g. a first",
        "# line `#:schema ./study.schema.json` for Taplo / Even Better TOML.",
        "",
        "[study]",
        *_section_lines(spec.StudySection, {
            "name": name, "title": "Softmax regression vs MLPs on 8x8 digits",
            "description": "Does a hidden layer help on scikit-learn's digits, and does width matter?",
            "seeds": [0, 1]}),
        "",
        "[data]",
        *_section_lines(spec.DataSection, {"dataset": "digits"}),
        "",
        "[train]",
        *_section_lines(spec.TrainSection, {"epochs": 10, "batch_size": 32}),
        "# Stop when the validation loss has not improved for 3 epochs, keeping the best epoch's weights; remove the",
        "# line to train every epoch.",
        'early_stopping = { monitor = "val_loss", patience = 3 }',
        "",
        "[protocol]",
        *_section_lines(spec.ProtocolSection, {}),
        "",
        "# Each [[models]] entry is a registered model (model = ...) or a variant of another entry (base = ...).",
        "[[models]]",
        'name = "softmax-regression"',
        'model = "softmax_regression"',
        'description = "a linear classifier on the 64 pixels: the reference"',
        "",
        "[[models]]",
        'name = "mlp"',
        'model = "mlp"',
        "options = { hidden = [64] }    # see `lineup models` for every option and its default",
        "",
        "[[models]]",
        'name = "mlp-wide"',
        'base = "mlp"                    # everything of "mlp", then:',
        "options = { hidden = [256] }",
        'description = "four times the hidden units"',
        "",
    ]
    return "\n".join(parts)
