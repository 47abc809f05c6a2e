"""Datasets defined in user code: a builder function registered by name, checked against the data contract.

A builder takes keyword-only options with defaults (``[data.options]`` of a study) and returns
``DatasetTensors``: a training and a test split as tensors, plus the class names. lineup derives everything
else as it does for its own datasets: class subsets, the stratified validation split, subsets, and for uint8
images also ``resize``, ``channels`` and ``[data.distortions]``.

Example (``[data] dataset = "two_squares"`` in a study, once the module that holds it is imported)::

    @register_dataset
    def two_squares(*, n: int = 40, size: int = 8) -> DatasetTensors:
        '''Bright or dark squares: the smallest 2-class image task.'''
        y = torch.arange(n) % 2
        x = (y * 200 + 20).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, size, size).contiguous()
        return DatasetTensors(train=(x, y), test=(x[:10], y[:10]), classes=("dark", "bright"))
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
import torch

from lineup._registry import did_you_mean
from lineup.data import synthetic
from lineup.data._source import RawDataset, Source, content_version, in_file_order
from lineup.data._types import DataBundle, Normalization, Split
from lineup.data.catalog import DATASETS
from lineup.data.splits import stratified_split
from lineup.data.tasks import select_classes, stratified_subsample
from lineup.errors import SpecError

DatasetBuilder = Callable[..., "DatasetTensors"]
F = TypeVar("F", bound=DatasetBuilder)

_KEY = "data.options"


@dataclass(frozen=True)
class DatasetTensors:
    """What a registered dataset builder returns.

    Attributes:
        train: ``(x, y)`` of the training split; lineup holds out the validation split from it.
        test: ``(x, y)`` of the test split, never trained on.
        classes: one name per class; labels index it.
        notes: facts about the data for the report (where it came from, how it was made).

    ``x`` is ``(N, C, H, W)``, either uint8 images (0..255, normalised per batch with the training split's
    channel statistics, like every image dataset) or float32 values (standardised per channel the same way);
    ``y`` is ``(N,)`` int64 in ``[0, len(classes))``. Both splits have the same ``(C, H, W)`` and dtype.
    """

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: Sequence[str]
    notes: Sequence[str] = ()


class CustomSource(Source):
    """A catalog entry whose arrays come from a registered builder instead of files."""

    builder: DatasetBuilder
    takes_options = True  # [data.options] are the builder's keyword arguments

    def __init__(self, root: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(root)
        self.options = dict(options or {})

    def locate(self) -> Path | None:
        return None  # made in memory: nothing on disk to find

    def check(self) -> list[str]:
        t = build(self.name, self.options)
        return [f"{self.name}: built by {_where(self.builder)}",
                f"train {tuple(t.train[0].shape)} {t.train[0].dtype}, test {tuple(t.test[0].shape)}, "
                f"{len(t.classes)} classes: the data contract holds"]

    def fetch(self) -> Path:
        build(self.name, self.options)
        return Path(inspect.getsourcefile(self.builder) or "<unknown>")  # there is nothing to download

    def load(self, *, download: bool = True) -> RawDataset:
        t = build(self.name, self.options)
        x, y = (t.train[0].numpy(), t.train[1].numpy()), (t.test[0].numpy(), t.test[1].numpy())
        train_x = x[0].astype(np.float64) / 255.0
        mean = tuple(float(train_x[:, c].mean()) for c in range(train_x.shape[1]))
        std = tuple(max(float(train_x[:, c].std()), 1e-6) for c in range(train_x.shape[1]))
        return in_file_order(self.name, x, y, classes=tuple(t.classes), mean=mean, std=std,
                             version=_version(self.name, t), notes=(*t.notes, f"built by {_where(self.builder)}"))


@overload
def register_dataset(fn: F, *, name: str | None = None) -> F: ...


@overload
def register_dataset(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def register_dataset(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register a dataset builder under ``name`` (default: the function's name); usable as a decorator.

    The builder's options must be keyword-only with defaults, as for model builders, so that its signature
    tells ``lineup datasets`` and the validator what ``[data.options]`` it takes. What it returns is checked
    when a study loads it, before any model is built (see ``DatasetTensors``).

    Raises:
        TypeError: ``fn`` is not such a function.
        ValueError: a dataset of that name already exists.
    """

    def add(f: F) -> F:
        key = name or f.__name__
        if not callable(f) or isinstance(f, type):
            raise TypeError(f"dataset builder {key!r} must be a function returning DatasetTensors")
        loose = [p.name for p in inspect.signature(f).parameters.values()
                 if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is p.empty]
        if loose:
            raise TypeError(f"dataset builder {f.__qualname__}: options {loose} must be keyword-only with a default "
                            "(def builder(*, size: int = 16, ...))")
        if synthetic.is_synthetic(key):
            raise ValueError(f"dataset {key!r} is already registered (a synthetic dataset)")
        source = type(f"Custom_{key}", (CustomSource,), {"name": key, "builder": staticmethod(f),
                                                          "__doc__": f.__doc__, "__module__": f.__module__})
        DATASETS.register(source, name=key)
        _built.clear()
        return f

    return add(fn) if fn is not None else add


def is_custom(name: str) -> bool:
    """Whether ``name`` is a dataset registered with ``register_dataset``."""
    return name in DATASETS and issubclass(DATASETS.get(name), CustomSource)


def builder_options(name: str) -> dict[str, inspect.Parameter]:
    """The options of custom dataset ``name``: its builder's parameters."""
    return dict(inspect.signature(_builder(name), eval_str=True).parameters)


def _builder(name: str) -> DatasetBuilder:
    return DATASETS.get(name).builder  # type: ignore[attr-defined, no-any-return]


def _where(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


# (name, options as JSON) -> checked tensors: a study loads its data once per setting, the check and the listing
# may ask again.
_built: dict[tuple[str, str], DatasetTensors] = {}


def build(name: str, options: Mapping[str, Any] | None = None) -> DatasetTensors:
    """Call dataset ``name``'s builder with ``options`` and check what it returns against the data contract.

    Raises:
        SpecError: an unknown option or one of the wrong type (key ``data.options.<option>``), or a builder that
            fails or breaks the contract (key ``data.dataset``; the message names the builder and what is wrong).
    """
    from lineup.models._registry import _conforms, _describe  # the same type rules as model options

    fn = _builder(name)
    options = dict(options or {})
    params = builder_options(name)
    for key, value in options.items():
        if key not in params:
            listing = ", ".join(f"{k}={p.default!r}" for k, p in params.items()) or "none"
            raise SpecError(f"dataset {name!r} has no option {key!r}.{did_you_mean(key, list(params))} "
                            f"Options (with defaults): {listing}.", key=f"{_KEY}.{key}")
        if not _conforms(value, params[key].annotation):
            raise SpecError(f"option {key!r} of dataset {name!r} must be {_describe(params[key].annotation)}, got "
                            f"{type(value).__name__} {value!r}", key=f"{_KEY}.{key}")
    cache_key = (name, json.dumps(options, sort_keys=True, default=str))
    if cache_key in _built:
        return _built[cache_key]
    try:
        out = fn(**options)
    except SpecError:
        raise
    except Exception as e:
        raise SpecError(f"dataset {name!r}: its builder {_where(fn)} failed: {type(e).__name__}: {e}",
                        key="data.dataset") from e
    problem = contract_problem(out)
    if problem:
        raise SpecError(f"dataset {name!r} (built by {_where(fn)}) breaks the data contract: {problem}",
                        key="data.dataset")
    _built[cache_key] = out
    return out


def contract_problem(t: object) -> str:
    """What ``t`` lacks of the data contract, in words; empty when it keeps it."""
    if not isinstance(t, DatasetTensors):
        return (f"it returns {type(t).__name__}, not DatasetTensors(train=(x, y), test=(x, y), classes=[...]) "
                "(from lineup.data import DatasetTensors)")
    classes = list(t.classes) if isinstance(t.classes, (list, tuple)) else None
    if not classes or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        return f"classes must be a non-empty list of distinct class names (str), got {t.classes!r}"
    shapes = []
    for split in ("train", "test"):
        pair = getattr(t, split)
        if not isinstance(pair, tuple) or len(pair) != 2:
            return f"{split} must be a pair (x, y) of tensors, got {type(pair).__name__}"
        x, y = pair
        for what, v in (("x", x), ("y", y)):
            if not isinstance(v, torch.Tensor):
                fix = " (torch.from_numpy turns an array into one)" if isinstance(v, np.ndarray) else ""
                return f"{split} {what} is a {type(v).__name__}, not a torch.Tensor{fix}"
        if x.ndim != 4:
            return f"{split} x must be (N, C, H, W), got shape {tuple(x.shape)} (add a channel axis: x[:, None])"
        if x.dtype not in (torch.uint8, torch.float32):
            return f"{split} x must be uint8 images (0..255) or float32 values, got {x.dtype}"
        if y.dtype != torch.int64 or y.shape != (x.shape[0],):
            return f"{split} y must be (N,) = ({x.shape[0]},) int64 labels, got shape {tuple(y.shape)} of {y.dtype}"
        if x.shape[0] == 0:
            return f"{split} is empty"
        if int(y.min()) < 0 or int(y.max()) >= len(classes):
            return f"{split} y must be labels in 0..{len(classes) - 1} (one per class name), got {int(y.min())}.." \
                   f"{int(y.max())}"
        if x.dtype == torch.float32 and not bool(torch.isfinite(x).all()):
            return f"{split} x holds NaN or infinite values"
        shapes.append((tuple(x.shape[1:]), x.dtype))
    if shapes[0] != shapes[1]:
        return f"train and test differ in (C, H, W) or dtype: {shapes[0]} and {shapes[1]}"
    return ""


def _version(name: str, t: DatasetTensors) -> str:
    parts = [json.dumps(list(t.classes)).encode()]
    for x, y in (t.train, t.test):
        parts += [str(tuple(x.shape)).encode(), x.numpy().tobytes(), y.numpy().astype("<i8").tobytes()]
    return content_version(name, parts)


def gives_floats(name: str, options: Mapping[str, Any] | None) -> bool:
    """Whether custom dataset ``name`` with these options gives float32 inputs (rather than uint8 images)."""
    return is_custom(name) and build(name, options).train[0].dtype == torch.float32


def load_floats(
    name: str,
    *,
    options: Mapping[str, Any] | None,
    classes: Sequence[int] | None,
    train_size: int | None,
    val_fraction: float,
    test_size: int | None,
    split_seed: int,
    image_settings: bool,
    distortions: bool,
) -> DataBundle:
    """The splits of a custom dataset with float32 inputs, derived as ``lineup.data.load`` derives image data.

    Image settings (``resize``, ``channels``) and distortions work on uint8 images and are refused here.
    """
    if image_settings or distortions:
        what = "resize and channels" if image_settings else "[data.distortions]"
        raise SpecError(f"dataset {name!r} gives float32 inputs; {what} work on uint8 images only: remove them, or "
                        "return uint8 images from the builder", key=_KEY if image_settings else "data.distortions")
    t = build(name, options)
    (train_x, train_y), (test_x, test_y) = (t.train[0].numpy(), t.train[1].numpy()), (t.test[0].numpy(),
                                                                                       t.test[1].numpy())
    class_names, notes = list(t.classes), [*t.notes, f"built by {_where(_builder(name))}"]
    train_rows, test_rows = np.arange(len(train_y)), np.arange(len(test_y))
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < len(class_names)]
        if bad or not classes or len(set(classes)) != len(classes):
            raise SpecError(f"classes must be distinct labels in 0..{len(class_names) - 1} ({', '.join(class_names)}), "
                            f"got {list(classes)}", key="data.classes")
        train_rows, train_y, _ = select_classes(train_rows, train_y, classes)
        test_rows, test_y, _ = select_classes(test_rows, test_y, classes)
        class_names = [class_names[c] for c in classes]
        notes.append(f"classes: {len(classes)} of {len(t.classes)} kept, relabelled 0..{len(classes) - 1}")
    if not 0.0 <= val_fraction < 1.0:
        raise SpecError(f"val_fraction must be in [0, 1), got {val_fraction}", key="data.val_fraction")
    fit, val = stratified_split(train_y, val_fraction=val_fraction, seed=split_seed)
    (val_rows, val_y), (train_rows, train_y) = (train_rows[val], train_y[val]), (train_rows[fit], train_y[fit])
    for option, size, available in (("train_size", train_size, len(train_y)), ("test_size", test_size, len(test_y))):
        if size is not None and not 1 <= size <= available:
            raise SpecError(f"must be in 1..{available:,}, got {size:,}", key=f"data.{option}")
    if train_size is not None:
        keep = stratified_subsample(train_y, train_size, seed=split_seed)
        train_rows, train_y = train_rows[keep], train_y[keep]
    if test_size is not None:
        keep = stratified_subsample(test_y, test_size, seed=split_seed)
        test_rows, test_y = test_rows[keep], test_y[keep]
    notes.append(f"{len(train_y):,} training, {len(val_y):,} validation and {len(test_y):,} test examples "
                 f"(stratified, split seed {split_seed})")

    def split(x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Split:
        return Split(torch.from_numpy(x[rows].copy()), torch.from_numpy(np.asarray(y, dtype=np.int64)),
                     torch.from_numpy(rows.astype(np.int64)))

    splits = {"train": split(train_x, train_y, train_rows), "val": split(train_x, val_y, val_rows),
              "test": split(test_x, test_y, test_rows)}
    fit_x = splits["train"].x.double()  # (N, C, H, W): statistics per channel
    mean = tuple(float(m) for m in fit_x.mean(dim=(0, 2, 3)))
    std = tuple(max(float(s), 1e-6) for s in fit_x.std(dim=(0, 2, 3), correction=0))
    h = hashlib.sha256(json.dumps({"classes": classes, "val_fraction": val_fraction, "train_size": train_size,
                                   "test_size": test_size, "split_seed": split_seed}, sort_keys=True).encode())
    for s in splits.values():
        h.update(s.index.numpy().astype("<i8").tobytes())
    return DataBundle(name=name, **splits, classes=class_names,
                      input_shape=tuple(int(d) for d in train_x.shape[1:]),  # type: ignore[arg-type]
                      normalization=Normalization(mean=mean, std=std, scale=1.0),
                      version=f"{_version(name, t)}+{h.hexdigest()[:12]}", notes=notes)
