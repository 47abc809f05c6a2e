"""The model registry (after timm's ``_registry``): builders registered by name, options checked on creation.

A builder is ``builder(input_shape, num_classes, *, option=default, ...)``. Because every option is
keyword-only and has a default, the builder's signature alone tells the command line and the study validator
which options a model takes, their defaults and their types; ``create_model`` rejects anything else before
building.

Every model with a ``width`` option (a multiplier of all its layer widths) also takes ``params``, a parameter
budget: ``create_model`` then chooses the width that brings the parameter count closest to it (see
``width_for_params``), so that models of different families can be compared at the same size.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import torch

from lineup._registry import did_you_mean
from lineup.errors import SpecError
from lineup.models._base import InputShape, LineupModel
from lineup.plugins import DiscoveringRegistry

ModelBuilder = Callable[..., LineupModel]
B = TypeVar("B", bound=ModelBuilder)

# Installed plugins are imported when a name is missing or the models are listed (see lineup.plugins).
_models: DiscoveringRegistry[ModelBuilder] = DiscoveringRegistry("model")

_POSITIONAL = ("input_shape", "num_classes")

PARAMS_TOLERANCE = 0.10
"""Largest relative difference between a ``params`` budget and the parameter count of the model built for it."""

# log2 of the smallest and largest width multiplier ``params`` searches: at 2**-12 every layer of every family
# here has 1 channel or unit (4096 · 2**-12 rounds to 1); 2**6 is 64 times the default model.
_LOG2_WIDTH_RANGE = (-12.0, 6.0)
_LOG2_WIDTH_PRECISION = 1e-3


def register_model(fn: B) -> B:
    """Register a model builder under its function name; registering a name twice raises ``ValueError``.

    A builder whose options include ``width`` (a float multiplier of every layer's width, whose parameter count
    never decreases as it grows) gets the ``params`` option for free; see ``width_for_params``. Such a builder
    must also build under ``torch.device("meta")``, where tensors have shapes but no values: a dry run to
    measure a layer's input size is fine, reading a value (``.item()``) is not.

    A class may be registered directly (its ``__init__`` is the builder); it must then subclass ``LineupModel``
    and define ``forward_features`` and ``forward_head`` (or ``forward``), which is checked here. A function's
    model is checked when it is first built (``create_model``) and run on two examples before any study trains
    it (``lineup.study.runner.check_contract``).

    Args:
        fn: ``fn(input_shape, num_classes, *, option=default, ...) -> LineupModel``.

    Raises:
        TypeError: ``fn`` does not have that signature, or is a class that breaks the model contract (a
            programming error, caught at import).
        ValueError: a model of that name is already registered.
    """
    if isinstance(fn, type):
        missing = _missing_pieces(fn)
        if missing:
            raise TypeError(f"model class {fn.__module__}.{fn.__qualname__} cannot be registered: {missing}")
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
    checked = _check_options(name, builder, options)
    try:
        params = checked.pop("params", None)
        if params is not None:
            if "width" in checked:
                raise SpecError("give width or params, not both: params chooses the width")
            checked["width"] = _search_width(builder, shape, num_classes, checked, params)
        model = builder(shape, num_classes, **checked)
    except SpecError as e:
        # Builders do not know the name they were registered under; the user needs it to find the culprit.
        raise type(e)(f"model {name!r}: {e.detail}", file=e.file, key=e.key) from e
    missing = _missing_pieces(type(model))
    if missing:
        builder_name = f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', name)}"
        raise SpecError(f"model {name!r} (built by {builder_name}) breaks the model contract: {missing}")
    return model


def _missing_pieces(cls: type) -> str:
    """What model class ``cls`` lacks of the contract every model keeps, in words; empty when nothing."""
    if not issubclass(cls, LineupModel):
        has = "it has forward_features" if callable(getattr(cls, "forward_features", None)) else \
            "it has no forward_features either"
        return (f"{cls.__qualname__} is not a lineup.models.LineupModel ({has}); subclass LineupModel and define "
                "forward_features(x) -> (N, D) features and forward_head(features) -> logits")
    missing = []
    if cls.forward_features is LineupModel.forward_features:
        missing.append("forward_features(x) -> (N, D) features, which every analysis reads")
    if cls.forward_head is LineupModel.forward_head and cls.forward is LineupModel.forward:
        missing.append("forward_head(features) -> logits (or its own forward)")
    return f"{cls.__qualname__} does not define " + " nor ".join(missing) if missing else ""


def width_for_params(
    name: str, input_shape: Sequence[int], num_classes: int, params: int, **options: Any
) -> float:
    """The ``width`` that ``create_model(name, ..., params=params)`` builds with.

    The width multiplier is found by bisection on ``log2(width)`` between 2**-12 and 2**6, counting the
    parameters of models built on PyTorch's ``meta`` device (shapes without storage, so even a huge candidate
    costs nothing). Parameter counts are a step function of the width, since channel counts are rounded, and
    never decrease as it grows, so the bisection brackets the budget between two widths 0.1% apart, one whose
    count is below it and one whose count is not; the one whose count is closer wins (the smaller on a tie).
    The result is a pure function of the arguments.

    Args:
        name: a model that has a ``width`` option.
        input_shape: ``(channels, height, width)`` of one example.
        num_classes: number of classes of the task.
        params: the parameter budget, a positive int.
        **options: the model's other options (not ``width``).

    Returns:
        The width multiplier; its model's parameter count is within ``PARAMS_TOLERANCE`` of ``params``.

    Raises:
        SpecError: the model has no ``width`` option, or no width comes within 10% of ``params``; the message
            names the smallest and largest counts the model reaches, or the two closest ones.
    """
    builder = _models.get(name)
    shape = _check_input_shape(input_shape)
    checked = _check_options(name, builder, {**options, "params": params})
    checked.pop("params")
    if "width" in checked:
        raise SpecError(f"model {name!r}: give width or params, not both: params chooses the width")
    try:
        return _search_width(builder, shape, num_classes, checked, params)
    except SpecError as e:
        raise type(e)(f"model {name!r}: {e.detail}", file=e.file, key=e.key) from e


def _check_options(name: str, builder: ModelBuilder, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against the builder's signature, lists turned into tuples."""
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
    return checked


def _search_width(
    builder: ModelBuilder, shape: InputShape, num_classes: int, options: dict[str, Any], params: int
) -> float:
    """The width whose model's parameter count is closest to ``params``; see ``width_for_params``."""
    if params < 1:
        raise SpecError(f"params must be a positive number of parameters, got {params}")
    counts: dict[float, int] = {}

    def count(log2_width: float) -> int:
        if log2_width not in counts:
            # On the meta device parameters have shapes but no storage: nothing is allocated or initialised.
            with torch.device("meta"):
                model = builder(shape, num_classes, **options, width=2.0**log2_width)
            counts[log2_width] = sum(p.numel() for p in model.parameters())
        return counts[log2_width]

    lo, hi = _LOG2_WIDTH_RANGE
    if count(lo) >= params:
        hi = lo
    elif count(hi) < params:
        lo = hi
    else:
        # Invariant: count(lo) < params <= count(hi). Stop when the widths are within 0.1% of each other; between
        # them the count moves only by the rounding steps of channel counts that fall inside that 0.1%.
        while hi - lo > _LOG2_WIDTH_PRECISION:
            mid = (lo + hi) / 2
            if count(mid) < params:
                lo = mid
            else:
                hi = mid
    best = min((lo, hi), key=lambda w: (abs(count(w) - params), w))
    if abs(count(best) - params) <= PARAMS_TOLERANCE * params:
        return 2.0**best
    smallest, largest = count(_LOG2_WIDTH_RANGE[0]), count(_LOG2_WIDTH_RANGE[1])
    if params < smallest or params > largest:
        reach = (
            f"it reaches {smallest:,} parameters at the smallest width (2**{_LOG2_WIDTH_RANGE[0]:g}, one channel "
            f"per layer) and {largest:,} at the largest (width {2.0 ** _LOG2_WIDTH_RANGE[1]:g})"
        )
    else:
        reach = (
            f"the closest counts are {count(lo):,} (width {2.0**lo:.4g}) and {count(hi):,} (width {2.0**hi:.4g}), "
            "since channel counts are whole numbers"
        )
    raise SpecError(
        f"no width gives {params:,} parameters within {PARAMS_TOLERANCE:.0%} for input {'×'.join(map(str, shape))} "
        f"and {num_classes} classes: {reach}; change params or the other options"
    )


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    # eval_str resolves the string annotations ``from __future__ import annotations`` leaves, so types can be
    # checked; a class gives its __init__'s signature without ``self``.
    return inspect.signature(fn, eval_str=True)


def _options(builder: ModelBuilder) -> dict[str, inspect.Parameter]:
    options = {p.name: p for p in list(_signature(builder).parameters.values())[2:]}
    if "width" in options and "params" not in options:
        options["params"] = inspect.Parameter(
            "params", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=int | None
        )
    return options


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
