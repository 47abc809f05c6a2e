"""The model registry (after timm's ``_registry``): builders registered by name, options checked on creation.

A builder is ``builder(input_shape, num_classes, *, option=default, ...)``. Because every option is
keyword-only and has a default, the builder's signature alone tells the command line and the study validator
which options a model takes, their defaults and their types; ``create_model`` rejects anything else before
building.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from lineup._registry import Registry, did_you_mean
from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel

ModelBuilder = Callable[..., LineupModel]
B = TypeVar("B", bound=ModelBuilder)

_models: Registry[ModelBuilder] = Registry("model")

_POSITIONAL = ("input_shape", "num_classes")


def register_model(fn: B) -> B:
    """Register a model builder under its function name; registering a name twice raises ``ValueError``.

    Args:
        fn: ``fn(input_shape, num_classes, *, option=default, ...) -> LineupModel``.

    Raises:
        TypeError: ``fn`` does not have that signature (a programming error, caught at import).
        ValueError: a model of that name is already registered.
    """
    params = list(_signature(fn).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if tuple(p.name for p in params[:2]) != _POSITIONAL or any(p.kind not in positional for p in params[:2]):
        raise TypeError(f"model builder {fn.__name__} must take (input_shape, num_classes, *, options...)")
    loose = [
        p.name for p in params[2:] if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is p.empty
    ]
    if loose:
        raise TypeError(f"model builder {fn.__name__}: options {loose} must be keyword-only with a default")
    _models.register(fn)
    return fn


def register_variant(name: str, family: ModelBuilder, doc: str, /, **base: Any) -> ModelBuilder:
    """Register model ``name``: ``family`` built with some option defaults changed (none for a family's base).

    The builder is ``family(input_shape, num_classes, **dict(base, **options))``, the one-liner a timm variant
    is, and its signature is ``family``'s with ``base`` as the new defaults, so ``model_options(name)`` shows
    what the variant really builds with and the user can still override each of them.

    Args:
        name: the model name, unique in the registry.
        family: a builder or a ``LineupModel`` subclass whose options are keyword-only with defaults.
        doc: one line saying what the variant is, shown by ``model_doc`` and the command line.
        **base: the defaults this variant changes.

    Returns:
        The registered builder, to bind to a module-level name equal to ``name``.
    """
    signature = _signature(family)
    params = list(signature.parameters.values())
    unknown = sorted(set(base) - {p.name for p in params[2:]})
    if unknown:
        raise TypeError(f"variant {name}: {family.__name__} has no options {unknown}")
    mistyped = [
        k for k, p in signature.parameters.items() if k in base and not _conforms(base[k], p.annotation)
    ]
    if mistyped:
        raise TypeError(f"variant {name}: defaults {mistyped} do not match their annotations")

    def builder(input_shape: InputShape, num_classes: int, **options: Any) -> LineupModel:
        return family(input_shape, num_classes, **dict(base, **options))

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    builder.__module__ = family.__module__
    builder.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(default=base[p.name]) if p.name in base else p for p in params]
    )
    return register_model(builder)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return _models.names()


def model_options(name: str) -> dict[str, Any]:
    """The options model ``name`` takes, each with its default, in signature order.

    Raises:
        UnknownNameError: no model of that name (the message suggests close names).
    """
    return {key: p.default for key, p in _options(_models.get(name)).items()}


def model_doc(name: str) -> str:
    """The first line of model ``name``'s docstring: what it is, in one line."""
    doc = inspect.getdoc(_models.get(name)) or ""
    return doc.splitlines()[0] if doc else ""


def create_model(name: str, input_shape: Sequence[int], num_classes: int, **options: Any) -> LineupModel:
    """Build model ``name`` for inputs of ``input_shape`` and ``num_classes`` classes.

    Options are checked against the builder's signature before anything is built: an unknown option or one
    of the wrong type is a ``SpecError`` that names the model and what it accepts. Lists are accepted where a
    tuple is expected, since study files (TOML) have no tuples.

    Args:
        name: a name from ``list_models()``.
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of classes of the task.
        **options: the model's options; see ``model_options(name)``.

    Returns:
        The model, in training mode, with freshly initialised parameters.

    Raises:
        UnknownNameError: no model of that name (the message suggests close names).
        SpecError: a bad shape, class count, option name, option type or option value.
    """
    builder = _models.get(name)
    shape = _check_input_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError(f"num_classes must be a positive int, got {num_classes!r}")
    allowed = _options(builder)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if key not in allowed:
            listing = ", ".join(f"{k}={p.default!r}" for k, p in allowed.items())
            takes = f"Options (with defaults): {listing}." if allowed else "It takes no options."
            raise SpecError(
                f"model {name!r} has no option {key!r}.{did_you_mean(key, list(allowed))} {takes}"
            )
        hint = allowed[key].annotation
        if not _conforms(value, hint):
            got = f"{type(value).__name__} {value!r}"
            raise SpecError(f"option {key!r} of model {name!r} must be {_describe(hint)}, got {got}")
        checked[key] = tuple(value) if isinstance(value, list) else value
    try:
        model = builder(shape, num_classes, **checked)
    except SpecError as e:
        # Builders do not know the name they were registered under; the user needs it to find the culprit.
        raise type(e)(f"model {name!r}: {e.detail}", file=e.file, key=e.key) from e
    if not isinstance(model, LineupModel):
        raise TypeError(f"model builder {name} returned {type(model).__name__}, not a LineupModel")
    return model


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    # eval_str resolves the string annotations ``from __future__ import annotations`` leaves, so types can be
    # checked; a class gives its __init__'s signature without ``self``.
    return inspect.signature(fn, eval_str=True)


def _options(builder: ModelBuilder) -> dict[str, inspect.Parameter]:
    return {p.name: p for p in list(_signature(builder).parameters.values())[2:]}


def _check_input_shape(input_shape: Sequence[int]) -> InputShape:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise SpecError(
            f"input_shape must be (channels, height, width) of positive ints, got {input_shape!r}"
        )
    return shape  # type: ignore[return-value]


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint``; a hint this cannot check cheaply lets anything pass."""
    origin = get_origin(hint)
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    if origin is Union or origin is types.UnionType:
        return any(_conforms(value, h) for h in get_args(hint))
    if origin is Literal:
        # type() as well as ==, because True == 1 and 1 == 1.0.
        return any(value == v and type(value) is type(v) for v in get_args(hint))
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(_conforms(v, h) for v, h in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if hint is float:  # an int is a fine float (TOML writes ``dropout = 0``), a bool is not
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    """``hint`` in words for an error message."""
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_describe(h) for h in get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_describe(h) for h in args)})"
    if hint is type(None):
        return "None"
    return hint.__name__ if isinstance(hint, type) else str(hint)
