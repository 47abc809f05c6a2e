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


def _ray_task(run: RunSpec, data: DataBundle, ctx: RunContext) -> RunResult:
    """One run inside a Ray worker, using as many torch threads as CPUs Ray assigned to the task."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    return execute_run(run, data, ctx=ctx)


class RayExecutor:
    """Runs as Ray tasks (https://docs.ray.io), on this machine or on a cluster.

    The dataset is put into Ray's object store once and shared by every task; each task returns its
    ``RunResult`` to the driver, which alone writes the store. A task whose worker dies is retried by Ray
    (``max_retries``) and resumes from its last checkpoint, provided the store's artifact folder is on a
    filesystem that the workers share (on one machine it always is).

    Args:
        address: a running cluster's address (``ray://host:10001`` or ``auto``); ``None`` starts a local
            instance for this study.
        cpus_per_run: CPUs Ray reserves for each run (and torch threads it uses).
        gpus_per_run: GPUs Ray reserves for each run (fractions let small runs share a GPU).
        max_retries: retries of a run whose worker died.
    """

    def __init__(self, *, progress: bool = False, address: str | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float = 0.0, max_retries: int = 2) -> None:
        self.address, self.cpus, self.gpus, self.max_retries = address, cpus_per_run, gpus_per_run, max_retries

    def map(self, runs: Sequence[RunSpec], data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
        try:
            import ray
        except ImportError:
            from lineup.errors import LineupError

            raise LineupError("the Ray executor needs Ray: pip install 'lineup[ray]' (or pip install ray)") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        try:
            task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.max_retries)(_ray_task)
            data_ref = ray.put(data)
            pending: dict[object, tuple[RunSpec, RunContext]] = {}
            for run in runs:
                ctx = claim(run)
                if ctx is not None:
                    # A threading.Event cannot travel to another process; the driver cancels tasks instead.
                    remote_ctx = RunContext(artifact_dir=ctx.artifact_dir, checkpoint_every_s=ctx.checkpoint_every_s)
                    pending[task.remote(run, data_ref, remote_ctx)] = (run, ctx)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                interrupt = next(iter(pending.values()))[1].interrupt
                if not done and interrupt is not None and interrupt.is_set():
                    for ref, (run, _) in list(pending.items()):
                        ray.cancel(ref)
                        del pending[ref]
                        yield run, RunResult(status="interrupted", error="interrupted; run again to resume")
                    return
                for ref in done:
                    run, _ = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # the task failed beyond its retries
                        result = RunResult(status="failed", error=f"{type(e).__name__}: {e}")
                    yield run, result
        finally:
            if started_here:
                ray.shutdown()


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
