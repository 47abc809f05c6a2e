"""Executors decide where runs happen; the driver that calls them stays the only writer of the store."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from lineup.data._types import DataBundle
from lineup.spec import RunSpec
from lineup.study.worker import RunContext, RunResult, execute_group, execute_run, stack_groups

#: Called by the executor, in the driver, just before a run is dispatched: the run's context, or ``None`` when
#: the run must be skipped (another process holds it, or the study is being interrupted).
Claim = Callable[[RunSpec], RunContext | None]


@runtime_checkable
class RunFeed(Protocol):
    """Runs decided while others execute, as a hyper-parameter search decides its next trial from the results of the
    last ones (``lineup.study.search``). An executor takes a run whenever it has room for one, after handing back
    every result that has arrived, so the feed decides with the store up to date."""

    def take(self) -> RunSpec | None:
        """The next run to start; ``None`` when none can start before a running one finishes, or none is left."""
        ...

    def __iter__(self) -> Iterator[RunSpec]:
        """``take()`` until it gives ``None``: what an executor that runs one at a time iterates over."""
        ...

    def __len__(self) -> int:
        """At most how many runs it will give (to size a process pool)."""
        ...


#: What an executor runs: a list decided in advance, or a feed decided as results arrive.
Runs = Sequence[RunSpec] | RunFeed


def _source(runs: Runs) -> Callable[[], RunSpec | None]:
    """The next run of ``runs`` each call, ``None`` when it has none to start now."""
    if isinstance(runs, RunFeed):
        return runs.take
    queue = list(runs)
    return lambda: queue.pop(0) if queue else None


def _groups(runs: Runs, stack: str) -> Callable[[], list[RunSpec] | None]:
    """The next group of runs that may train as one stack (``worker.stack_groups``) each call; a feed's runs are
    decided one at a time and come alone."""
    if isinstance(runs, RunFeed):
        take = runs.take
        return lambda: [run] if (run := take()) is not None else None
    queue = stack_groups(list(runs), stack)
    return lambda: queue.pop(0) if queue else None


def _claim_all(group: list[RunSpec], claim: Claim) -> tuple[list[RunSpec], list[RunContext]]:
    granted = [(run, ctx) for run in group if (ctx := claim(run)) is not None]
    return [r for r, _ in granted], [c for _, c in granted]


class Executor(Protocol):
    def map(self, runs: Runs, data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
        """Execute the ``runs`` that ``claim`` grants, yielding each result as it arrives."""
        ...


class LocalExecutor:
    """Runs one after the other in this process, using all of torch's threads; on a GPU, runs that differ only in
    seed, learning rate or weight decay train as one stack where that is measured faster.

    Args:
        stack: ``auto``, ``always`` or ``off`` (see ``worker.STACK_MODES``).
    """

    def __init__(self, *, progress: bool = False, stack: str = "auto") -> None:
        self.progress, self.stack = progress, stack

    def map(self, runs: Runs, data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
        next_group = _groups(runs, self.stack)
        while (group := next_group()) is not None:
            granted, ctxs = _claim_all(group, claim)
            if granted:
                results = execute_group(granted, data, ctxs, mode=self.stack, progress=self.progress)
                yield from zip(granted, results, strict=True)


_worker_data: DataBundle | None = None
_worker_interrupt: object = None


def _init_pool_worker(data: DataBundle, interrupt: object, threads: int) -> None:
    import signal

    import torch

    global _worker_data, _worker_interrupt
    # The driver handles Ctrl-C and tells the workers through the shared event; a worker must not die of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _worker_data, _worker_interrupt = data, interrupt


def _pool_task(runs: list[RunSpec], ctxs: list[RunContext], stack: str) -> list[RunResult]:
    assert _worker_data is not None, "pool worker used before its initializer ran"
    ctxs = [dataclasses.replace(ctx, interrupt=_worker_interrupt) for ctx in ctxs]  # type: ignore[arg-type]
    return execute_group(runs, _worker_data, ctxs, mode=stack)


def plan_workers(n_runs: int, *, cores: int | None = None, workers: int | None = None) -> tuple[int, int]:
    """Processes and torch threads per process for ``n_runs`` small runs on ``cores`` CPU cores.

    Small CNNs use two threads poorly (one LeNet-5 epoch takes about 5.0 s with two threads on two cores, two
    single-threaded processes train two models in about 6.8 s), so the default is one process per core, one
    thread each, and never more processes than runs; leftover cores become threads.
    """
    cores = cores or os.cpu_count() or 1
    procs = max(1, min(workers or cores, n_runs, cores))
    return procs, max(1, cores // procs)


class PoolExecutor:
    """Runs in parallel worker processes on this machine, the dataset shared with them, not copied.

    The dataset's tensors are moved to shared memory once and mapped by every worker (torch's multiprocessing
    pickler passes shared storages by handle). Workers send results back to the driver, the only writer of the
    store. Ctrl-C or SIGTERM reaches the workers through a shared event: each checkpoints and stops.

    Args:
        workers: number of processes (default: see ``plan_workers``).
        threads: torch threads per process (default: see ``plan_workers``).
        stack: ``auto``, ``always`` or ``off`` (see ``worker.STACK_MODES``); a stacked group is one worker's task.
    """

    def __init__(self, *, progress: bool = False, workers: int | None = None, threads: int | None = None,
                 stack: str = "auto") -> None:
        self.workers, self.threads, self.stack = workers, threads, stack

    def map(self, runs: Runs, data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
        import concurrent.futures as cf

        import torch.multiprocessing as tmp

        procs, threads = plan_workers(len(runs), workers=self.workers)
        threads = self.threads or threads
        for split in (data.train, data.val, data.test):
            for t in (split.x, split.y, split.index):
                t.share_memory_()
        mp = tmp.get_context("spawn")  # fork is unsafe once torch's thread pools exist in the driver
        shared_interrupt = mp.Event()
        with cf.ProcessPoolExecutor(max_workers=procs, mp_context=mp, initializer=_init_pool_worker,
                                    initargs=(data, shared_interrupt, threads)) as pool:
            pending: dict[cf.Future[list[RunResult]], list[RunSpec]] = {}
            next_group = _groups(runs, self.stack)
            local_interrupt = None
            while True:
                # Claim only as many runs as there are free workers, so the others stay free for another process.
                while len(pending) < procs and (group := next_group()) is not None:
                    granted, ctxs = _claim_all(group, claim)
                    if not granted:
                        continue
                    local_interrupt = ctxs[0].interrupt
                    # An Event cannot cross processes: the worker gets its own, set from this one.
                    sent = [dataclasses.replace(ctx, interrupt=None) for ctx in ctxs]
                    pending[pool.submit(_pool_task, granted, sent, self.stack)] = granted
                if not pending:
                    break
                done, _ = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                if local_interrupt is not None and local_interrupt.is_set():
                    shared_interrupt.set()
                    next_group = lambda: None  # noqa: E731 - start nothing more
                for fut in done:
                    group = pending.pop(fut)
                    try:
                        results = fut.result()
                    except Exception as e:  # a worker died (killed, out of memory ...)
                        results = [RunResult(status="failed", error=f"worker process failed: {type(e).__name__}: {e}")
                                   for _ in group]
                    yield from zip(group, results, strict=True)


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

    def map(self, runs: Runs, data: DataBundle, *, claim: Claim) -> Iterator[tuple[RunSpec, RunResult]]:
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
            next_run = _source(runs)
            # A list is submitted at once; a feed only as far as the cluster has room, so it decides late.
            room = max(1, int(ray.cluster_resources().get("CPU", 1) // max(self.cpus, 1e-9))) \
                if isinstance(runs, RunFeed) else None

            def submit() -> None:
                while (room is None or len(pending) < room) and (run := next_run()) is not None:
                    ctx = claim(run)
                    if ctx is not None:
                        # A threading.Event cannot travel to another process; the driver cancels tasks instead.
                        remote_ctx = dataclasses.replace(ctx, interrupt=None)
                        pending[task.remote(run, data_ref, remote_ctx)] = (run, ctx)

            submit()
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
                submit()
        finally:
            if started_here:
                ray.shutdown()


EXECUTORS = {"local": LocalExecutor, "pool": PoolExecutor, "ray": RayExecutor}
