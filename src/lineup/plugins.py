"""Plugins: models, datasets, objectives and metrics that live outside lineup.

Two ways in, both explicit:

- an installed package declares entry points in the ``lineup`` group (``[project.entry-points.lineup]`` in its
  ``pyproject.toml``); each names a module, imported for its registrations, or ``module:function``, called
  with no arguments after the import;
- a study file names modules in ``[study] plugins = ["mylab.models"]``; they are imported when the study is
  loaded, from the installed packages, ``PYTHONPATH`` or the study file's own folder.

Installed plugins are imported lazily, the first time a registry is listed or asked for a name it does not
hold, so ``lineup report`` and any run that uses only built-in parts never import them. Nothing read from a
store or a report is ever imported: a stored study's ``plugins`` list is data, not a command.

Worker processes (the process pool, Ray on this machine) rediscover the same plugins: entry points by
themselves, study-file modules through the ``LINEUP_PLUGINS`` environment variable (comma-separated module
names), which loading a study sets for the processes started after it. Each run's provenance lists every
plugin module with its package, version and the sha256 of its source (``plugin_provenance``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from lineup._registry import Registry
from lineup.errors import LineupError, SpecError

ENTRY_POINT_GROUP = "lineup"
ENV = "LINEUP_PLUGINS"

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

T = TypeVar("T", bound=Callable[..., object])


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin module came from, and what exactly was imported.

    Attributes:
        module: the imported module's name.
        origin: ``"entry point NAME"``, ``"study file"``, ``"LINEUP_PLUGINS"`` or ``"registered in code"``.
        package: the installed distribution that provides the module, if any.
        version: that distribution's version.
        sha256: of the module's source file; for ``__main__`` (a script, a notebook) or a module without a file, of
            the sources of the parts it registered (``None`` when they cannot be read back).
    """

    module: str
    origin: str
    package: str | None
    version: str | None
    sha256: str | None


_plugins: dict[str, PluginInfo] = {}
_registered_modules: dict[str, list[object]] = {}  # module -> the user parts it registered
_discovered = False
_discovering = False


class DiscoveringRegistry(Registry[T]):
    """A ``Registry`` that imports the installed plugins before it says a name is unknown or lists its names.

    It also remembers which module registered each part that is not lineup's own (for provenance) and lets a
    notebook or script re-run a cell that registers a part: the same definition in ``__main__`` replaces the
    old one, while any other duplicate name stays an error.
    """

    def register(self, fn: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
        def add(f: T) -> T:
            key = name or f.__name__  # type: ignore[attr-defined]
            old = self._items.get(key)
            module = getattr(f, "__module__", None) or ""
            if old is not None and module == "__main__" and _same_definition(old, f):
                del self._items[key]
                if old in _registered_modules.get(module, []):
                    _registered_modules[module].remove(old)
            Registry.register(self, f, name=key)
            if module and module != "lineup" and not module.startswith("lineup."):
                _registered_modules.setdefault(module, []).append(f)
            return f

        return add(fn) if fn is not None else add

    def get(self, name: str) -> T:
        if name not in self._items:
            discover()
        return super().get(name)

    def names(self) -> list[str]:
        discover()
        return super().names()

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            discover()
        return name in self._items


def _same_definition(a: object, b: object) -> bool:
    return getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)


def discover() -> None:
    """Import the installed plugins (entry points of the ``lineup`` group) and the modules in ``LINEUP_PLUGINS``.

    Runs once per process; cheap afterwards. A plugin that fails to import stops with a message naming it and
    its package, since silently missing models would only fail later with a confusing "unknown model".

    Raises:
        LineupError: a plugin could not be imported.
    """
    global _discovered, _discovering
    if _discovered or _discovering:  # a plugin that lists a registry while it is imported must not recurse
        return
    _discovering = True
    try:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            _load_entry_point(ep)
        for module in _env_modules():
            try:
                _import(module, origin=ENV)
            except Exception as e:
                raise LineupError(f"module {module!r}, named in {ENV}, failed to import: {type(e).__name__}: {e}; "
                                  f"fix it, or remove it from {ENV}") from e
        _discovered = True
    finally:
        _discovering = False


def _env_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]


def _load_entry_point(ep: metadata.EntryPoint) -> None:
    dist = getattr(ep, "dist", None)
    package, version = (dist.name, dist.version) if dist is not None else (None, None)
    if ep.module in _plugins:
        return
    try:
        target = ep.load()
        if ep.attr:  # module:function -> the function registers the plugin's parts
            target()
    except Exception as e:
        where = f" of package {package} {version}" if package else ""
        fix = f"fix it or uninstall it (pip uninstall {package})" if package else "fix it or uninstall it"
        raise LineupError(f"plugin {ep.name!r} ({ep.value}){where} failed to load: {type(e).__name__}: {e}; "
                          f"{fix}") from e
    _plugins[ep.module] = PluginInfo(ep.module, f"entry point {ep.name}", package, version,
                                     _module_sha256(ep.module))


def import_plugins(modules: Sequence[str], *, folder: str | os.PathLike[str] | None = None,
                   file: str | None = None, key: str = "study.plugins") -> list[PluginInfo]:
    """Import the modules a study file names, so that their registrations take effect.

    Each name is imported as Python would import it; ``folder`` (the study file's folder) is searched after
    every installed package, so a study can sit beside its own modules. The names are added to
    ``LINEUP_PLUGINS`` so that worker processes started later import them too.

    Raises:
        SpecError: a name that is not a module name, a module that does not exist or fails to import; the key
            is ``study.plugins[i]``.
    """
    if folder is not None and str(Path(folder).resolve()) not in sys.path:
        # Appended, not prepended: an installed package always wins over a same-named file beside the study.
        sys.path.append(str(Path(folder).resolve()))
    infos = []
    for i, module in enumerate(modules):
        where = f"{key}[{i}]"
        if not _MODULE.match(module):
            raise SpecError(f"{module!r} is not a Python module name (dotted identifiers, e.g. 'mylab.models')",
                            file=file, key=where)
        try:
            infos.append(_import(module, origin="study file"))
        except ModuleNotFoundError as e:
            if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
                raise SpecError(f"no module named {module!r}: install the package that provides it, add its folder "
                                "to PYTHONPATH, or put it beside the study file", file=file, key=where) from None
            raise SpecError(f"plugin {module!r} failed to import: {type(e).__name__}: {e}", file=file,
                            key=where) from None
        except LineupError:
            raise
        except Exception as e:
            raise SpecError(f"plugin {module!r} failed to import: {type(e).__name__}: {e}", file=file,
                            key=where) from None
    known = _env_modules()
    os.environ[ENV] = ",".join([*known, *(m for m in modules if m not in known)])
    return infos


def _import(module: str, *, origin: str) -> PluginInfo:
    importlib.import_module(module)
    if module not in _plugins:
        package, version = _distribution(module)
        _plugins[module] = PluginInfo(module, origin, package, version, _module_sha256(module))
    return _plugins[module]


def _distribution(module: str) -> tuple[str | None, str | None]:
    """The installed distribution that provides ``module`` and its version, or ``(None, None)``."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def _module_sha256(module: str) -> str | None:
    """sha256 of the module's source file (``__init__.py`` for a package), or ``None`` when it has none."""
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if not path or not path.endswith(".py") or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parts_sha256(parts: Iterable[object]) -> str | None:
    h = hashlib.sha256()
    for part in parts:
        part = getattr(part, "builder", part)  # a dataset's catalog entry: the function that builds it
        try:
            h.update(inspect.getsource(part).encode())  # type: ignore[arg-type]
        except (OSError, TypeError):
            return None
    return h.hexdigest()


def loaded_plugins() -> list[PluginInfo]:
    """Every plugin module imported in this process, and every other non-lineup module that registered a part."""
    out = dict(_plugins)
    for module, parts in _registered_modules.items():
        if module not in out:
            package, version = _distribution(module) if module != "__main__" else (None, None)
            # __main__ is a script, a notebook's kernel or whatever runs the code: the parts' own source says more.
            sha = _parts_sha256(parts) if module == "__main__" else _module_sha256(module) or _parts_sha256(parts)
            out[module] = PluginInfo(module, "registered in code", package, version, sha)
    return [out[m] for m in sorted(out)]


def plugin_provenance(spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The plugins of this process as plain data, for a run's provenance.

    Args:
        spec: a resolved run spec; its model, dataset and objective are looked up first, so that a worker
            process that has not needed a plugin yet imports the ones the run uses before they are listed.
    """
    if spec is not None:
        from lineup.data import synthetic
        from lineup.data.catalog import DATASETS
        from lineup.models._registry import _models
        from lineup.train.objectives import _objectives

        dataset = spec.get("data", {}).get("dataset")
        _ = synthetic.is_synthetic(dataset) or dataset in DATASETS
        _ = spec.get("model", {}).get("name") in _models
        objective = spec.get("train", {}).get("objective", "auto")
        _ = objective == "auto" or objective in _objectives
    return [asdict(p) for p in loaded_plugins()]
