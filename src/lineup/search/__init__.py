"""Hyper-parameter search as a study protocol: per-model searches on the validation split, then seeds.

``config`` parses the ``[search]`` section; ``trials`` rebuilds an in-memory Optuna study from stored trials;
``pruning`` stops poor trials where they run. The driver that runs searches through the executors is
``lineup.study.search``; the report's section is ``lineup.report.search``.
"""

from lineup._lazy import lazy_submodules
from lineup.search.config import PROTOCOLS, PRUNERS, SEARCHERS, Dim, SearchPlan, SearchSection, parse_search

__all__ = ["PROTOCOLS", "PRUNERS", "SEARCHERS", "Dim", "SearchPlan", "SearchSection", "parse_search"]

__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.search.<submodule> without importing it first
