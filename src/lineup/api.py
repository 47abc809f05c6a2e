"""The Python API: what the command line does, from a script or a notebook.

``lineup run STUDY.toml``, ``lineup report``, ``lineup models`` and ``lineup datasets`` are thin layers over
these functions::

    import lineup

    study = lineup.make_study(
        "digits_mlps",
        data={"dataset": "digits", "train_size": 600},
        models=[lineup.model("softmax", "softmax_regression"),
                lineup.model("mlp", options={"hidden": [64]}),
                lineup.variant("mlp-wide", base="mlp", options={"hidden": [256]})],
        seeds=[0, 1],
        train={"epochs": 5},
    )
    results = lineup.run(study, store="lineup-results")   # trains what the store lacks, writes the report
    results.runs()          # one row per run (pandas), with a test_<metric> column per registered metric
    results                 # in Jupyter: the summary table

A study built in code is validated exactly as a study file is (the same messages, keys and exit codes), and
runs under the same hashes, so results are shared between the two.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lineup.spec import Study, load_study, parse_study
from lineup.store import Store
from lineup.study.runner import StudyOutcome, prepare, run_study

DEFAULT_STORE = "lineup-results"


# ------------------------------------------------------------------------------------------------ building


def model(name: str, model: str | None = None, *, options: Mapping[str, Any] | None = None,
          train: Mapping[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    """A ``[[models]]`` entry of registered model ``model`` (default: ``name``), labelled ``name``."""
    entry: dict[str, Any] = {"name": name, "model": model or name}
    return _with(entry, options=options, train=train, description=description)


def variant(name: str, *, base: str, options: Mapping[str, Any] | None = None,
            train: Mapping[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    """A ``[[models]]`` entry that is entry ``base`` with some model ``options`` or ``train`` settings changed."""
    return _with({"name": name, "base": base}, options=options, train=train, description=description)


def _with(entry: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**entry, **{k: dict(v) if isinstance(v, Mapping) else v for k, v in extra.items() if v}}


def _table(value: Any) -> Any:
    """A section given as a dict or as its dataclass (``lineup.spec.DataSection`` ...), as a plain table."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
    return dict(value) if isinstance(value, Mapping) else value


def make_study(name: str, *, data: Mapping[str, Any] | str, models: Sequence[Mapping[str, Any]],
               seeds: Sequence[int] = (0,), train: Mapping[str, Any] | None = None,
               protocol: Mapping[str, Any] | None = None, settings: Sequence[Mapping[str, Any]] | None = None,
               title: str = "", description: str = "", baseline: str = "",
               plugins: Sequence[str] = (), search: Mapping[str, Any] | None = None) -> Study:
    """A study built in code, validated as a study file is.

    Args:
        name: the study's name in the store.
        data: the ``[data]`` table, or just a dataset's name.
        models: ``[[models]]`` entries: ``model(...)``, ``variant(...)`` or plain dicts.
        seeds: every model is trained once per seed.
        train: the ``[train]`` table.
        protocol: the ``[protocol]`` table.
        settings: ``[[settings]]`` entries, each a name and the ``[data]`` keys it changes.
        search: the ``[search]`` table: the fixed or tuned protocol, its space and budget (``lineup.search``).
        title, description, baseline, plugins: the other keys of ``[study]``.

    Raises:
        SpecError: anything a study file would be refused for; its key says where (``models[1].options`` ...).
    """
    study: dict[str, Any] = {"name": name, "seeds": list(seeds)}
    for key, value in (("title", title), ("description", description), ("baseline", baseline),
                       ("plugins", list(plugins))):
        if value:
            study[key] = value
    doc: dict[str, Any] = {"study": study, "data": {"dataset": data} if isinstance(data, str) else _table(data),
                           "models": [_table(m) for m in models]}
    for key, table in (("train", train), ("protocol", protocol), ("search", search)):
        if table is not None:
            doc[key] = _table(table)
    if settings is not None:
        doc["settings"] = [_table(s) for s in settings]
    return parse_study(doc)


# ------------------------------------------------------------------------------------------------ running


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, where progress bars are notebook widgets (``tqdm.auto``)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def run(study: Study | str | Path, store: Store | str | Path = DEFAULT_STORE, *, executor: str = "local",
        report: bool = True, progress: bool | None = None, checkpoint_every_s: float = 60.0,
        log: Callable[[str], None] | None = None, **executor_options: Any) -> Results:
    """Train every run of ``study`` that ``store`` lacks, then (by default) write its report: ``lineup run``.

    Args:
        study: a ``Study`` (``make_study``, ``load_study``) or the path of a study file.
        store: the results store or its folder (created if needed).
        executor: ``"local"`` (this process), ``"pool"`` (worker processes) or ``"ray"``.
        report: write the report once the runs are stored.
        progress: progress bars; default: in a notebook (as widgets) or when standard error is a terminal.
        checkpoint_every_s: seconds between checkpoints inside an epoch.
        log: called with a line of progress for each finished search trial and search (a study with [search]).
        **executor_options: the executor's settings, e.g. ``workers=2`` for the pool, ``address=...`` for Ray.

    Returns:
        The study's results, with what this call trained in ``outcome`` and the report's path in ``report_path``.

    Raises:
        SpecError: a bad study, dataset or model; raised before anything is stored.
    """
    if not isinstance(study, Study):
        study = load_study(study)
    if progress is None:
        progress = in_notebook() or sys.stderr.isatty()
    plan = prepare(study)  # data and models are checked before the store is opened
    with _opened(store) as s:
        outcome = run_study(plan, s, executor=executor, progress=progress, checkpoint_every_s=checkpoint_every_s,
                            executor_options=executor_options, log=log)
        results = Results(store if isinstance(store, Store) else s.root, study.name, outcome=outcome)
    if report and not outcome.interrupted:
        results.report_path = results.report()
    return results


class _opened:
    """A store given as a folder is opened and closed here; a ``Store`` object is left open for its owner."""

    def __init__(self, store: Store | str | Path) -> None:
        self.given, self.store = store, store if isinstance(store, Store) else None

    def __enter__(self) -> Store:
        if self.store is None:
            self.store = Store(self.given)  # type: ignore[arg-type]
        return self.store

    def __exit__(self, *exc: object) -> None:
        if not isinstance(self.given, Store) and self.store is not None:
            self.store.close()


# ------------------------------------------------------------------------------------------------ results


class Results:
    """A stored study, read back: runs and summary as pandas tables, and its report.

    Nothing is cached: every call reads the store, so a ``Results`` follows a study that is still training.

    Args:
        store: the results store or its folder.
        study: the study's name.
        outcome: what ``run`` trained, when the results come from it.
    """

    def __init__(self, store: Store | str | Path, study: str, *, outcome: StudyOutcome | None = None) -> None:
        self.store, self.name, self.outcome = store, study, outcome
        self.report_path: Path | None = None
        if not isinstance(store, Store) and not (Path(store) / "lineup.sqlite").exists():
            from lineup.errors import LineupError

            raise LineupError(f"no results store in {str(store)!r}: run the study first, or give the folder that "
                              "holds lineup.sqlite")

    def runs(self, *, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per run: setting, label, seed, model, status, hash, wall time, every final metric of its
        summary, and ``test_<metric>`` for each registered metric (default: all; see ``lineup.register_metric``),
        computed from the run's stored test predictions."""
        from lineup.analysis.scores import compute_metric, list_metrics
        from lineup.results import runs_frame

        names = list_metrics() if metrics is None else list(metrics)
        with _opened(self.store) as s:
            frame = runs_frame(s, self.name)
            if frame.empty:
                return frame
            for name in names:
                values = []
                for h in frame["hash"]:
                    p = s.predictions(h)
                    values.append(compute_metric(name, p.y, p.probs) if p is not None else float("nan"))
                frame[f"test_{name}"] = values
        return frame

    def summary(self) -> pd.DataFrame:
        """One row per model entry (and data setting): seeds, parameters, mean accuracies and the test std."""
        from lineup.results import summary_table

        with _opened(self.store) as s:
            return summary_table(s, self.name)

    def epochs(self) -> pd.DataFrame:
        """Per-epoch metrics of every run, one row per run and epoch (long format, for plotting)."""
        rows = []
        with _opened(self.store) as s:
            for r in s.runs(self.name):
                rows += [{"setting": r.setting, "label": r.label, "seed": r.seed, "hash": r.hash, **e}
                         for e in s.epochs(r.hash)]
        return pd.DataFrame(rows)

    def report(self, out: str | Path | None = None, *, format: str = "html") -> Path:
        """Write the report from the store alone (``lineup report``) and return its path."""
        from lineup.report import build_report

        with _opened(self.store) as s:
            return build_report(s, self.name, out, format=format)

    def __repr__(self) -> str:
        return f"Results({self.name!r})\n{self.summary().to_string(index=False)}"

    def _repr_html_(self) -> str:
        """The summary table, for Jupyter."""
        where = f" &middot; report: <code>{html.escape(str(self.report_path))}</code>" if self.report_path else ""
        return (f"<p><b>{html.escape(self.name)}</b>{where}</p>"
                + self.summary().to_html(index=False, border=0, classes="lineup-summary"))


def open_results(study: str, store: Store | str | Path = DEFAULT_STORE) -> Results:
    """The stored results of ``study``: ``lineup ls STUDY`` and ``lineup report STUDY`` from Python."""
    return Results(store, study)


# ------------------------------------------------------------------------------------------------ listings


@dataclass(frozen=True)
class PartInfo:
    """A registered model, dataset, objective or metric, as ``lineup models`` / ``lineup datasets`` list it.

    Attributes:
        name: the name a study uses.
        description: the first line of its docstring.
        options: option -> default (``"required"`` where there is none), from the builder's signature or the
            dataset's option table.
        origin: ``"lineup"``, or the module that registered it with its package and version.
    """

    name: str
    description: str
    options: dict[str, Any]
    origin: str = "lineup"


def _origin(module: str) -> str:
    if module == "lineup" or module.startswith("lineup."):
        return "lineup"
    from lineup.plugins import loaded_plugins

    for p in loaded_plugins():
        if module == p.module or module.startswith(p.module + "."):
            return f"{module} ({p.package} {p.version})" if p.package else module
    return module


def describe_models() -> list[PartInfo]:
    """Every registered model with its options, defaults and one-line description (``lineup models``)."""
    from lineup.models import list_models, model_doc, model_options
    from lineup.models._registry import _models

    return [PartInfo(name, model_doc(name), model_options(name), _origin(_models.get(name).__module__))
            for name in list_models()]


def describe_datasets() -> list[PartInfo]:
    """Every dataset with its ``[data.options]``, defaults and one-line description (``lineup datasets``)."""
    from lineup.data import custom, list_datasets, synthetic
    from lineup.data.catalog import DATASETS
    from lineup.data.folder import FolderOptions, ImageFolderSource
    from lineup.data.transform import ImageTransform

    image = _field_defaults(ImageTransform)
    out = []
    for name in list_datasets():
        if synthetic.is_synthetic(name):
            entry = synthetic.DATASETS[name]
            out.append(PartInfo(name, entry.summary, _field_defaults(entry.options)))
            continue
        source = DATASETS.get(name)
        doc = (inspect.getdoc(source) or "").splitlines()
        if custom.is_custom(name):
            options = {k: _default(p.default) for k, p in custom.builder_options(name).items()}
            out.append(PartInfo(name, doc[0] if doc else "", {**options, **image}, _origin(source.__module__)))
        else:
            own = _field_defaults(FolderOptions) if issubclass(source, ImageFolderSource) else {}
            out.append(PartInfo(name, doc[0] if doc else "", {**image, **own}))
    return out


def describe_objectives() -> list[PartInfo]:
    """Every registered training objective (the ``objective`` setting of ``[train]``)."""
    from lineup.train.objectives import _objectives, list_objectives, objective_doc

    return [PartInfo(n, objective_doc(n), {}, _origin(_objectives.get(n).__module__)) for n in list_objectives()]


def describe_metrics() -> list[PartInfo]:
    """Every registered metric (``Results.runs()`` adds a ``test_<name>`` column for each)."""
    from lineup.analysis.scores import _metrics, list_metrics, metric_doc

    return [PartInfo(n, metric_doc(n), {}, _origin(_metrics.get(n).__module__)) for n in list_metrics()]


def _default(value: Any) -> Any:
    return "required" if value is inspect.Parameter.empty or value is dataclasses.MISSING else value


def _field_defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = _default(default)
    return out
