"""Reports: figures and the HTML page, built from the store alone (the report never trains)."""

from lineup._lazy import lazy_submodules
from lineup.report.build import build_report

__all__ = ["build_report"]

__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.report.<submodule> without importing it first
