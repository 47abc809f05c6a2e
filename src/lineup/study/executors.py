"""Executors decide where runs happen; the driver that calls them stays the only writer of the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from lineup.data._types import DataBundle
from lineup.spec import RunSpec
from lineup.study.worker import RunResult, execute_run


class Executor(Protocol):
    def map(self, runs: Sequence[RunSpec], data: DataBundle, *,
            on_start: Callable[[RunSpec], None]) -> Iterator[tuple[RunSpec, RunResult]]:
        """Execute ``runs``, calling ``on_start`` in the driver as each is dispatched; yield results."""
        ...


class LocalExecutor:
    """Runs one after the other in this process, using all of torch's threads."""

    def __init__(self, *, progress: bool = False) -> None:
        self.progress = progress

    def map(self, runs: Sequence[RunSpec], data: DataBundle, *,
            on_start: Callable[[RunSpec], None]) -> Iterator[tuple[RunSpec, RunResult]]:
        for run in runs:
            on_start(run)
            yield run, execute_run(run, data, progress=self.progress)


EXECUTORS = {"local": LocalExecutor}
