"""Executors decide where runs happen; the driver that calls them stays the only writer of the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from lineup.data._types import DataBundle
from lineup.spec import RunSpec
from lineup.study.worker import RunContext, RunResult, execute_run

#: Called by the executor, in the driver, just before a run is dispatched: the run's context, or ``None`` when
#: the run must be skipped (another process holds it, or the study is being interrupted).
Claim = Callable[[RunSpec], RunContext | None]


class Executor(Protocol):
    def map(self, runs: Sequence[RunSpec], data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
        """Execute the ``runs`` that ``claim`` grants, yielding each result as it arrives."""
        ...


class LocalExecutor:
    """Runs one after the other in this process, using all of torch's threads."""

    def __init__(self, *, progress: bool = False) -> None:
        self.progress = progress

    def map(self, runs: Sequence[RunSpec], data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
        for run in runs:
            ctx = claim(run)
            if ctx is not None:
                yield run, execute_run(run, data, progress=self.progress, ctx=ctx)


EXECUTORS = {"local": LocalExecutor}
