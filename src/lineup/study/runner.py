"""Run a study: load its data once, expand it into runs, train what the store lacks, store every result."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lineup import data as datasets
from lineup.data._types import DataBundle
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.spec import RunSpec, Study, expand, resolve_entry
from lineup.store import FINISHED, LEASE_SECONDS, Store, owner_id
from lineup.study.executors import EXECUTORS, Executor
from lineup.study.worker import CHECKPOINT, RunContext, RunResult


@dataclass
class Plan:
    """A validated study with its data loaded and its runs expanded; nothing stored yet."""

    study: Study
    data: DataBundle
    runs: list[RunSpec]


def prepare(study: Study) -> Plan:
    """Load the data and build every model once, so bad input fails before the store is touched."""
    data = load_data(study)
    check_models(study, data)
    return Plan(study=study, data=data, runs=expand(study, data_version=data.version))


@dataclass
class StudyOutcome:
    """What ``run_study`` did: every run of the study, and which ones it trained now."""

    study: Study
    runs: list[RunSpec]
    trained: list[tuple[RunSpec, RunResult]]
    skipped: list[RunSpec]
    taken_elsewhere: list[RunSpec] = field(default_factory=list)  # held by another live process
    interrupted: bool = False


def load_data(study: Study) -> DataBundle:
    d = study.data
    try:
        return datasets.load(d.dataset, root=d.root, classes=d.classes, train_size=d.train_size,
                             val_fraction=d.val_fraction, test_size=d.test_size, split_seed=d.split_seed,
                             download=d.download, options=d.options, distortions=d.distortions)
    except SpecError as e:  # the data layer knows what is wrong, the study knows where it was written
        if e.file is not None:
            raise
        raise SpecError(e.detail, file=study.source, key=f"data.{e.key}" if e.key else "data") from None


def data_info(data: DataBundle) -> dict[str, object]:
    """What the report needs to know about the data, stored with the study."""
    return {"name": data.name, "classes": list(data.classes), "input_shape": list(data.input_shape),
            "notes": list(data.notes), "version": data.version,
            "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}}


def check_models(study: Study, data: DataBundle) -> None:
    """Build every entry's model and run two examples through it, so that a bad option, an impossible input
    size or a model that breaks the contract fails before anything is stored."""
    for i, entry in enumerate(study.models):
        arch, options, train = resolve_entry(study, i)
        try:
            model = create_model(arch, data.input_shape, data.num_classes, **options)
            check_contract(model, arch, data, train.objective)
        except SpecError as e:
            raise SpecError(e.detail, file=study.source, key=f"models[{i}] ({entry.name})") from None


@torch.no_grad()
def check_contract(model: torch.nn.Module, name: str, data: DataBundle, objective: str = "auto") -> None:
    """A model must return ``(N, K)`` logits (``(N, 1)`` under binary cross-entropy) and expose
    ``forward_features(x) -> (N, D)``; say exactly what is missing otherwise.

    Raises:
        SpecError: naming the model and the missing piece.
    """
    x = data.normalization.apply(data.train.x[:2]) if len(data.train) >= 2 else None
    if x is None:
        return
    if not callable(getattr(model, "forward_features", None)):
        raise SpecError(f"model {name!r} has no forward_features(x) method: every model must return its "
                        "representation as an (N, D) tensor so that analyses can read it")
    was_training = model.training
    model.eval()
    try:
        out, feats = model(x), model.forward_features(x)
    finally:
        model.train(was_training)
    if objective == "auto":
        objective = getattr(model, "default_objective", "cross_entropy")
    width = 1 if objective == "binary_cross_entropy" else data.num_classes
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, width):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SpecError(f"model {name!r} returns {got} for a batch of 2 inputs {tuple(x.shape)}; "
                        f"{objective} needs logits of shape (2, {width})")
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != 2:
        got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise SpecError(f"model {name!r}: forward_features returns {got} for a batch of 2; it must be (2, D)")


class _Heartbeat:
    """Renews this process's leases on the runs it holds, from a thread with its own store connection."""

    def __init__(self, store_root: Path, owner: str, *, every_s: float) -> None:
        self.root, self.owner, self.every_s = store_root, owner, every_s
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lineup-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        with Store(self.root) as store:
            while not self._stop.wait(self.every_s):
                if self.held:
                    store.renew(self.owner, sorted(self.held))


@contextmanager
def _stop_on_signals(interrupt: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM ask the current run to stop after its step and checkpoint, instead of killing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        if interrupt.is_set():  # a second signal: the user insists
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        interrupt.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def run_study(study: Study | Plan, store: Store, *, executor: Executor | str = "local", progress: bool | None = None,
              rerun_failed: bool = True, checkpoint_every_s: float = 60.0,
              executor_options: dict[str, object] | None = None) -> StudyOutcome:
    """Train every run of ``study`` that is not complete in ``store`` and store the results.

    Runs are claimed one at a time with a lease, so two processes working on the same study never train the
    same run, and a run whose process died is taken up again from its last checkpoint.

    Args:
        study: a validated study, or its plan from ``prepare``.
        store: the results store; this process writes its own runs' results.
        executor: an executor or its name (``"local"``).
        progress: show progress bars (default: when standard error is a terminal).
        rerun_failed: train runs that failed before again (diverged runs are finished results and are kept).
        checkpoint_every_s: seconds between checkpoints inside an epoch.
        executor_options: keyword arguments of the executor named by ``executor`` (e.g. Ray's ``address``).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    plan = study if isinstance(study, Plan) else prepare(study)
    study, data, runs = plan.study, plan.data, plan.runs
    spec = {**study.to_dict(), "data_info": data_info(data)}
    store.register_study(study.name, spec, str(Path(study.source).resolve()) if study.source else None,
                         [(r.hash, r.label, r.seed, r.spec["model"]["name"], r.spec) for r in runs])
    retry = ("pending", "interrupted") + (("failed",) if rerun_failed else ())
    skipped = [r for r in runs if store.status(r.hash) in FINISHED]
    todo = [r for r in runs if r not in skipped]
    if isinstance(executor, str):
        executor = EXECUTORS[executor](progress=progress, **(executor_options or {}))
    owner = owner_id()
    interrupt = threading.Event()
    trained: list[tuple[RunSpec, RunResult]] = []
    taken_elsewhere: list[RunSpec] = []
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{study.name}: runs", unit="run", position=0, dynamic_ncols=True)

    with _Heartbeat(store.root, owner, every_s=LEASE_SECONDS / 4) as heartbeat, _stop_on_signals(interrupt):

        def claim(run: RunSpec) -> RunContext | None:
            if interrupt.is_set() or not store.claim(run.hash, owner, retry=retry):
                if not interrupt.is_set():
                    taken_elsewhere.append(run)
                return None
            heartbeat.held.add(run.hash)
            return RunContext(artifact_dir=store.artifact_dir(run.hash), interrupt=interrupt,
                              checkpoint_every_s=checkpoint_every_s)

        try:
            for run, result in executor.map(todo, data, claim=claim) if todo else ():
                if result.status == "interrupted":
                    store.mark_interrupted(run.hash)
                elif result.status == "failed":
                    store.mark_failed(run.hash, result.error or "unknown error")
                else:
                    store.save_result(run.hash, result)
                    _remove_checkpoints(store.artifact_dir(run.hash))
                heartbeat.held.discard(run.hash)
                trained.append((run, result))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return StudyOutcome(study=study, runs=runs, trained=trained, skipped=skipped, taken_elsewhere=taken_elsewhere,
                        interrupted=interrupt.is_set())


def _remove_checkpoints(folder: Path) -> None:
    # The result is stored: the final weights stay, the checkpoints that led to them are no longer needed.
    for name in (CHECKPOINT, "checkpoint-refit.pt"):
        (folder / name).unlink(missing_ok=True)
