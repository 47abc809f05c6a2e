"""Studies: the runner and the executors it hands runs to."""

from lineup.study.runner import Plan, StudyOutcome, load_data, prepare, run_study
from lineup.study.worker import RunResult, execute_run

__all__ = ["Plan", "RunResult", "StudyOutcome", "execute_run", "load_data", "prepare", "run_study"]
