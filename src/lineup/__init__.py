"""lineup: train a line-up of classic deep-learning models under one protocol and compare them.

The Python API mirrors the command line (see ``lineup.api``)::

    import lineup
    study = lineup.load_study("examples/quickstart.toml")      # or lineup.make_study(...) in code
    results = lineup.run(study, store="lineup-results")        # lineup run: trains what is missing, writes the report
    df = results.runs()                                         # one row per run (pandas)

Your own parts register with ``lineup.register_model``, ``register_dataset``, ``register_objective`` and
``register_metric``, in your code or in an installed plugin (see ``lineup.plugins``).
"""

__version__ = "0.1.0"

import importlib as _importlib
from typing import TYPE_CHECKING

#: Where each name of the public API lives. They are imported on first use (PEP 562), so that ``import
#: lineup.models`` in a training worker does not also load the report's matplotlib and the analyses' pandas and
#: scikit-learn: about 130 MB of resident memory that a run needs, if at all, only after it has trained.
_EXPORTS = {
    "register_metric": "lineup.analysis.scores",
    "Results": "lineup.api", "make_study": "lineup.api", "model": "lineup.api", "open_results": "lineup.api",
    "run": "lineup.api", "variant": "lineup.api",
    "DatasetTensors": "lineup.data", "register_dataset": "lineup.data",
    "LineupModel": "lineup.models", "register_model": "lineup.models",
    "build_report": "lineup.report",
    "runs_frame": "lineup.results", "summary_table": "lineup.results",
    "load_study": "lineup.spec", "parse_study": "lineup.spec",
    "Store": "lineup.store",
    "prepare": "lineup.study", "run_study": "lineup.study",
    "register_objective": "lineup.train.objectives",
}

__all__ = ["DatasetTensors", "LineupModel", "Results", "Store", "build_report", "load_study", "make_study", "model",
           "open_results", "parse_study", "prepare", "register_dataset", "register_metric", "register_model",
           "register_objective", "run", "run_study", "runs_frame", "summary_table", "variant", "__version__"]


#: Subpackages reachable as attributes after a plain ``import lineup`` (``lineup.data.load(...)``), as when this
#: module imported them all.
_SUBMODULES = frozenset({"analysis", "api", "data", "decomposition", "errors", "models", "plugins", "report",
                         "results", "schema", "search", "spec", "store", "study", "train"})


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return _importlib.import_module(f"lineup.{name}")  # the import binds it here, so this runs once
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lineup' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


if TYPE_CHECKING:
    from lineup.analysis.scores import register_metric
    from lineup.api import Results, make_study, model, open_results, run, variant
    from lineup.data import DatasetTensors, register_dataset
    from lineup.models import LineupModel, register_model
    from lineup.report import build_report
    from lineup.results import runs_frame, summary_table
    from lineup.spec import load_study, parse_study
    from lineup.store import Store
    from lineup.study import prepare, run_study
    from lineup.train.objectives import register_objective
