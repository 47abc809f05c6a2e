"""Run a study: load its data once, expand it into runs, train what the store lacks, store every result."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lineup import data as datasets
from lineup.data._types import DataBundle
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.spec import RunSpec, Study, expand, resolve_entry
from lineup.store import FINISHED, Store
from lineup.study.executors import EXECUTORS, Executor
from lineup.study.worker import RunResult


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


def load_data(study: Study) -> DataBundle:
    d = study.data
    return datasets.load(d.dataset, root=d.root, classes=d.classes, train_size=d.train_size,
                         val_fraction=d.val_fraction, test_size=d.test_size, split_seed=d.split_seed,
                         download=d.download, options=d.options, distortions=d.distortions)


def data_info(data: DataBundle) -> dict[str, object]:
    """What the report needs to know about the data, stored with the study."""
    return {"name": data.name, "classes": list(data.classes), "input_shape": list(data.input_shape),
            "notes": list(data.notes), "version": data.version,
            "sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)}}


def check_models(study: Study, data: DataBundle) -> None:
    """Build every entry's model once, so a bad option or input size fails before anything is stored."""
    for i, entry in enumerate(study.models):
        arch, options, _ = resolve_entry(study, i)
        try:
            create_model(arch, data.input_shape, data.num_classes, **options)
        except SpecError as e:
            raise SpecError(e.detail, file=study.source, key=f"models[{i}] ({entry.name})") from None


def run_study(study: Study | Plan, store: Store, *, executor: Executor | str = "local", progress: bool | None = None,
              rerun_failed: bool = True) -> StudyOutcome:
    """Train every run of ``study`` that is not complete in ``store`` and store the results.

    Args:
        study: a validated study, or its plan from ``prepare``.
        store: the results store; this process is its only writer for the study.
        executor: an executor or its name (``"local"``).
        progress: show progress bars (default: when standard error is a terminal).
        rerun_failed: train runs that failed before again (diverged runs are finished results and are kept).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    plan = study if isinstance(study, Plan) else prepare(study)
    study, data, runs = plan.study, plan.data, plan.runs
    spec = {**study.to_dict(), "data_info": data_info(data)}
    store.register_study(study.name, spec, str(Path(study.source).resolve()) if study.source else None,
                         [(r.hash, r.label, r.seed, r.spec["model"]["name"], r.spec) for r in runs])
    skip_states = set(FINISHED) | (set() if rerun_failed else {"failed"})
    todo = [r for r in runs if store.status(r.hash) not in skip_states]
    skipped = [r for r in runs if r not in todo]
    if isinstance(executor, str):
        executor = EXECUTORS[executor](progress=progress)
    trained = []
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"{study.name}: runs", unit="run", position=0, dynamic_ncols=True)

    def on_start(run: RunSpec) -> None:
        store.mark_running(run.hash, device=run.spec["train"]["device"])

    try:
        for run, result in executor.map(todo, data, on_start=on_start):
            if result.status == "failed":
                store.mark_failed(run.hash, result.error or "unknown error")
            else:
                store.save_result(run.hash, result)
            trained.append((run, result))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return StudyOutcome(study=study, runs=runs, trained=trained, skipped=skipped)
