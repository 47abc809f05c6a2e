"""Run a study: load its data once, expand it into runs, train what the store lacks, store every result."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lineup import data as datasets
from lineup.data._types import DataBundle
from lineup.decomposition import check_data
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.spec import RunSpec, Setting, Study, expand, resolve_entry, resolve_init
from lineup.store import FINISHED, LEASE_SECONDS, Store, owner_id
from lineup.study.executors import EXECUTORS, Executor
from lineup.study.worker import CHECKPOINT, FINAL_WEIGHTS, RunContext, RunResult

if TYPE_CHECKING:
    from lineup.study.search import SearchSummary


@dataclass
class Plan:
    """A validated study with the data of each setting loaded and its runs expanded; nothing stored yet."""

    study: Study
    datas: dict[str, DataBundle]  # setting name -> data, in the order of the file
    runs: list[RunSpec]

    @property
    def data(self) -> DataBundle:
        """The data of the first (or only) setting."""
        return next(iter(self.datas.values()))


def prepare(study: Study) -> Plan:
    """Load every setting's data and build every model once, so bad input fails before the store is touched."""
    datas = {}
    for setting in study.data_settings:
        datas[setting.name] = data = load_data(study, setting)
        check_models(study, data)
    if study.decomposition is not None:
        check_data(study.decomposition, datas, file=study.source)
    runs = expand(study, data_version={name: d.version for name, d in datas.items()})
    if study.search is not None and not study.search.fixed:  # tuned only: the searches decide what trains
        runs = []
    return Plan(study=study, datas=datas, runs=runs)


@dataclass
class StudyOutcome:
    """What ``run_study`` did: every run of the study, and which ones it trained now."""

    study: Study
    runs: list[RunSpec]
    trained: list[tuple[RunSpec, RunResult]]
    skipped: list[RunSpec]
    taken_elsewhere: list[RunSpec] = field(default_factory=list)  # held by another live process
    interrupted: bool = False
    searches: list[SearchSummary] = field(default_factory=list)  # each model's search, for a tuned study


def load_data(study: Study, setting: Setting | None = None) -> DataBundle:
    """The data of one setting of ``study`` (default: the first)."""
    setting = setting or study.data_settings[0]
    d = setting.data
    try:
        return datasets.load(d.dataset, root=d.root, classes=d.classes, train_size=d.train_size,
                             val_fraction=d.val_fraction, test_size=d.test_size, split_seed=d.split_seed,
                             download=d.download, options=d.options, distortions=d.distortions,
                             test_split=dataclasses.asdict(d.test_split) if d.test_split else None)
    except SpecError as e:  # the data layer knows what is wrong, the study knows where it was written
        if e.file is not None:
            raise
        where = f"settings[{study.settings.index(setting)}]" if setting in study.settings else "data"
        key = e.key.removeprefix("data.") if e.key else None  # some data errors name their [data] key in full
        raise SpecError(e.detail, file=study.source, key=f"{where}.{key}" if key else where) from None


def data_info(data: DataBundle) -> dict[str, object]:
    """What the report needs to know about the data, stored with the study."""
    return {"name": data.name, "classes": list(data.classes), "input_shape": list(data.input_shape),
            "notes": list(data.notes), "version": data.version,
            "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}}


def check_models(study: Study, data: DataBundle) -> None:
    """Build every entry's model and run two examples through it, so that a bad option, an impossible input
    size or a model that breaks the contract fails before anything is stored."""
    names = [m.name for m in study.models]
    for i, entry in enumerate(study.models):
        arch, options, train = resolve_entry(study, i)
        try:
            model = create_model(arch, data.input_shape, data.num_classes, **options)
            check_contract(model, arch, data, train.objective)
            check_precision(model, train.objective, train.precision)
            source = resolve_init(study, i)
            if source is not None:
                source_arch, source_options, _ = resolve_entry(study, names.index(source))
                source_model = create_model(source_arch, data.input_shape, data.num_classes, **source_options)
                check_init(model, entry.name, source_model.state_dict(), source)
        except SpecError as e:
            raise SpecError(e.detail, file=study.source, key=f"models[{i}] ({entry.name})") from None


def check_precision(model: torch.nn.Module, objective: str, precision: str) -> None:
    """Mixed precision needs a loss that the fit loop computes; an objective that takes its own optimisation steps
    (a GAN's) trains in fp32.

    Raises:
        SpecError: naming the objective and the fix.
    """
    if precision == "fp32":
        return
    from lineup.train import create_objective

    name = getattr(model, "default_objective", "cross_entropy") if objective == "auto" else objective
    if getattr(create_objective(name), "train_step", None) is not None:
        raise SpecError(f"precision = {precision!r} is not available for objective {name!r}, which takes its own "
                        "optimisation steps; use precision = \"fp32\" for this model", key="train.precision")


def check_init(model: torch.nn.Module, name: str, source: dict[str, torch.Tensor], source_name: str) -> list[str]:
    """Start ``model`` from the weights ``source`` of entry ``source_name``; returns the tensors copied.

    Raises:
        SpecError: the model cannot start from another model's weights, or these weights do not fit it.
    """
    load = getattr(model, "load_pretrained", None)
    if not callable(load):
        raise SpecError(f"{name!r} cannot start from {source_name!r}'s weights: its model has no "
                        "load_pretrained(state_dict, source_name) method that says what to copy")
    copied = load(source, source_name)
    if not copied:
        raise SpecError(f"{name!r} took no weights from {source_name!r}: the two models share no part")
    return list(copied)


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
    except Exception as e:  # a user model's bug: say where, before anything is stored
        raise SpecError(f"model {name!r} raised {type(e).__name__} on a batch of 2 inputs {tuple(x.shape)}: {e}. "
                        "Fix the model's forward or forward_features (or its options)") from None
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
              executor_options: dict[str, object] | None = None,
              log: Callable[[str], None] | None = None) -> StudyOutcome:
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
        log: called with a line of progress for every finished search trial and search (a tuned study).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    plan = study if isinstance(study, Plan) else prepare(study)
    study, runs = plan.study, plan.runs
    spec = {**study.to_dict(), "data_info": data_info(plan.data)}
    if study.settings or len(plan.datas) > 1:  # [decomposition] may add a setting to a study without any
        spec["settings_info"] = {name: data_info(d) for name, d in plan.datas.items()}
    store.register_study(study.name, spec, str(Path(study.source).resolve()) if study.source else None,
                         [(r.hash, r.label, r.seed, r.spec["model"]["name"], r.spec, r.setting) for r in runs])
    retry = ("pending", "interrupted") + (("failed",) if rerun_failed else ())
    skipped = [r for r in runs if store.status(r.hash) in FINISHED]
    todo = [r for r in runs if r not in skipped]
    if isinstance(executor, str):
        executor = EXECUTORS[executor](progress=progress, **(executor_options or {}))
    owner = owner_id()
    interrupt = threading.Event()
    trained: list[tuple[RunSpec, RunResult]] = []
    taken_elsewhere: list[RunSpec] = []
    tuned = study.search is not None and study.search.tuned
    bar = None
    if progress and (todo or tuned):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{study.name}: runs", unit="run", position=0, dynamic_ncols=True)

    with _Heartbeat(store.root, owner, every_s=LEASE_SECONDS / 4) as heartbeat, _stop_on_signals(interrupt):

        def claim(run: RunSpec) -> RunContext | None:
            if interrupt.is_set() or not store.claim(run.hash, owner, retry=retry):
                if not interrupt.is_set():
                    taken_elsewhere.append(run)
                return None
            heartbeat.held.add(run.hash)
            init = run.spec.get("init")
            return RunContext(artifact_dir=store.artifact_dir(run.hash), interrupt=interrupt,
                              checkpoint_every_s=checkpoint_every_s,
                              init_weights=store.artifact_dir(init["run"]) / FINAL_WEIGHTS if init else None)

        def results() -> Iterator[tuple[RunSpec, RunResult]]:
            for name, data in plan.datas.items():  # one pass per setting: executors share one dataset at a time
                group = [r for r in todo if r.setting == name]
                # Runs that start from another run's weights wait for that run: a second wave.
                for wave in ([r for r in group if "init" not in r.spec], [r for r in group if "init" in r.spec]):
                    if interrupt.is_set():  # runs not reached stay pending: nothing failed, the study resumes
                        return
                    ready = []
                    for r in wave:
                        source = r.spec["init"]["run"] if "init" in r.spec else None
                        if source is not None and store.status(source) != "complete":
                            yield r, RunResult(status="failed", error=(
                                f"it starts from the weights of run {source[:12]}, which is "
                                f"{store.status(source) or 'missing'}; run the study again once that run is "
                                "complete"))
                        else:
                            ready.append(r)
                    if ready and not interrupt.is_set():
                        yield from executor.map(ready, data, claim=claim)

        try:
            searched: Iterator[tuple[RunSpec, RunResult]] = iter(())
            if tuned:  # then each model's search, and its best configuration over the seeds
                from lineup.study.search import run_searches

                searched = run_searches(plan, store, executor, claim=claim, interrupt=interrupt,
                                        log=log or (lambda line: None))
            for run, result in chain(results(), searched):
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
                    bar.total = max(bar.total, bar.n + 1)  # search trials are decided as results arrive
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    searches = []
    if tuned:
        from lineup.study.search import summarize_searches

        searches = summarize_searches(plan, store)
    return StudyOutcome(study=study, runs=runs, trained=trained, skipped=skipped, taken_elsewhere=taken_elsewhere,
                        interrupted=interrupt.is_set(), searches=searches)


def _remove_checkpoints(folder: Path) -> None:
    # The result is stored: the final weights stay, the checkpoints that led to them are no longer needed.
    for name in (CHECKPOINT, "checkpoint-refit.pt"):
        (folder / name).unlink(missing_ok=True)
