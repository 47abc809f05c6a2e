"""Submodules reachable as attributes of their package, imported on first use (PEP 562).

A package's ``__init__`` imports only what its own names need, so that a training worker does not load the
analyses and the report; with ``__getattr__ = lazy_submodules(__name__, __path__)`` a user's
``lineup.analysis.scores`` still resolves after a plain ``import lineup``, as it would if everything had been
imported up front.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from types import ModuleType


def lazy_submodules(package: str, path: Iterable[str]) -> Callable[[str], ModuleType]:
    """A module ``__getattr__`` that imports the package's public submodules when they are first looked up."""
    names = frozenset(info.name for info in pkgutil.iter_modules(path) if not info.name.startswith("_"))

    def __getattr__(name: str) -> ModuleType:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return importlib.import_module(f"{package}.{name}")  # the import binds it on the package: runs once

    return __getattr__
