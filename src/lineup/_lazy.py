"""Submodules reachable as attributes of their package, imported on first use (PEP 562).

A package's ``__init__`` imports only what its own names need, so that a training worker does not load the
analyses and the report; with ``__getattr__, __dir__ = lazy_submodules(__name__, __path__)`` a user's
``lineup.analysis.scores`` still resolves after a plain ``import lineup``, as it would if everything had been
imported up front.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable
from types import ModuleType


def lazy_submodules(package: str, path: Iterable[str]
                    ) -> tuple[Callable[[str], ModuleType], Callable[[], list[str]]]:
    """A module's ``__getattr__``, which imports the package's public submodules when they are first looked up,
    and its ``__dir__``, which lists them with the names the package already has (for ``dir`` and completion).

    A submodule that fails to import raises its ``ImportError`` from the lookup, not an ``AttributeError``.
    """
    names = frozenset(info.name for info in pkgutil.iter_modules(path) if not info.name.startswith("_"))

    def __getattr__(name: str) -> ModuleType:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return importlib.import_module(f"{package}.{name}")  # the import binds it on the package: runs once

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
