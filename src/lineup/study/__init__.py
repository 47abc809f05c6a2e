"""Studies: the runner and the executors it hands runs to."""

from lineup._lazy import lazy_submodules
from lineup.study.runner import Plan, StudyOutcome, load_data, prepare, run_study
from lineup.study.worker import RunResult, execute_run

__all__ = ["Plan", "RunResult", "StudyOutcome", "execute_run", "load_data", "prepare", "run_study"]

__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.study.<submodule> without importing it first
