"""Analysis: pure functions over stored results (arrays in, numbers and tables out)."""

from lineup._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.analysis.<submodule> without importing it first
