"""Typed, commented configuration sections and one generic validator for them.

Each section of a study file is a dataclass whose fields carry their meaning, unit and constraints in
``metadata``; the validator turns a parsed TOML table into that dataclass or raises a ``SpecError`` that
names the key, what was expected and what is allowed. Unknown keys are errors with a "did you mean" hint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from lineup._registry import did_you_mean
from lineup.errors import SpecError

T = TypeVar("T")


def opt(default: Any, help: str, **constraints: Any) -> Any:
    """A dataclass field with its help text and constraints (``min``, ``max``, ``choices``, ``gt``)."""
    meta = {"help": help, **constraints}
    if default is ...:  # required: no default
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (arg,) = typing.get_args(tp)
        return f"a list of {_type_name(arg)}"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "absent"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, key: str, file: str | None) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, file)
            except SpecError as e:
                errors.append(e)
        if len(errors) == 1:  # one kind of value fits here (a table or absent): its own error says what is wrong
            raise errors[0]
        raise SpecError(f"expected {_type_name(tp)}, got {value!r}", file=file, key=key)
    if origin is list:
        (arg,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise SpecError(f"expected {_type_name(tp)}, got {value!r}", file=file, key=key)
        return [_convert(v, arg, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise SpecError(f"expected a table, got {value!r}", file=file, key=key)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, key=key, file=file)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise SpecError(f"expected {_type_name(tp)}, got {value!r}", file=file, key=key)


def _check_constraints(value: Any, meta: dict[str, Any], key: str, file: str | None) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        hint = did_you_mean(value, list(meta["choices"])) if isinstance(value, str) else ""
        raise SpecError(f"{value!r} is not allowed.{hint} Allowed: {allowed}.", file=file, key=key)
    items = value if isinstance(value, list) else [value]
    for v in items:
        if not isinstance(v, (int, float)):
            continue
        if "gt" in meta and not v > meta["gt"]:
            raise SpecError(f"must be greater than {meta['gt']}, got {v!r}", file=file, key=key)
        if "min" in meta and v < meta["min"]:
            raise SpecError(f"must be at least {meta['min']}, got {v!r}", file=file, key=key)
        if "max" in meta and v > meta["max"]:
            raise SpecError(f"must be at most {meta['max']}, got {v!r}", file=file, key=key)


def parse_section(cls: type[T], table: Any, *, key: str, file: str | None = None) -> T:
    """Validate ``table`` (a parsed TOML table) against dataclass ``cls`` and build it.

    Raises:
        SpecError: naming ``file`` and the dotted key of the first problem.
    """
    if not isinstance(table, dict):
        raise SpecError(f"expected a table, got {table!r}", file=file, key=key)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for k in table:
        if k not in fields:
            names = list(fields)
            raise SpecError(
                f"unknown key {k!r}.{did_you_mean(k, names)} Allowed keys: {', '.join(names)}.",
                file=file,
                key=f"{key}.{k}" if key else k,
            )
    values = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in table:
            v = _convert(table[name], hints[name], sub, file)
            _check_constraints(v, dict(f.metadata), sub, file)
            values[name] = v
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"missing required key {name!r} ({f.metadata.get('help', '')})", file=file, key=sub)
    return cls(**values)


def as_dict(obj: Any) -> dict[str, Any]:
    """A section as plain JSON-ready data."""
    return dataclasses.asdict(obj)
