"""The command line: a thin layer over lineup's Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lineup.errors import LineupError

if TYPE_CHECKING:  # for annotations only: each command imports what it uses when it runs
    from lineup.api import PartInfo

DEFAULT_STORE = "lineup-results"
_store_option = click.option("--store", "store_dir", default=DEFAULT_STORE, show_default=True,
                             type=click.Path(file_okay=False), help="results directory (SQLite store + artifacts)")


def _fail(e: LineupError) -> None:
    click.secho(f"error: {e}", fg="red", err=True)
    sys.exit(e.exit_code)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LineupError as e:
            _fail(e)
        return None


@click.group(cls=_Group)
@click.version_option(package_name="lineup")
def main() -> None:
    """Train a line-up of models under one protocol and compare them with evidence."""


@main.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@_store_option
@click.option("--no-report", is_flag=True, help="train only; build the report later with `lineup report`")
@click.option("--progress/--no-progress", default=None, help="progress bars (default: when attached to a terminal)")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="seconds between checkpoints inside an epoch (epoch ends always checkpoint)")
@click.option("--executor", type=click.Choice(["local", "pool", "ray"]), default="local", show_default=True,
              help="where runs execute: this process, worker processes on this machine, or Ray tasks")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="pool executor: worker processes (default: one per core, at most one per run)")
@click.option("--address", default=None, help="Ray cluster address (ray://HOST:10001 or 'auto'); default: local")
@click.option("--cpus-per-run", type=float, default=1.0, show_default=True, help="CPUs Ray reserves per run")
@click.option("--gpus-per-run", type=float, default=0.0, show_default=True, help="GPUs Ray reserves per run")
@click.option("--stack", type=click.Choice(["auto", "always", "off"]), default="auto", show_default=True,
              help="local and pool executors: train runs that differ only in seed, lr or weight decay as one "
                   "vectorised stack; auto: on a GPU, where a few timed steps find it faster")
def run(study_file: str, store_dir: str, no_report: bool, progress: bool | None, checkpoint_every: float,
        executor: str, workers: int | None, address: str | None, cpus_per_run: float, gpus_per_run: float,
        stack: str) -> None:
    """Train every run of STUDY_FILE that the store lacks, then write the report."""
    from lineup import api
    from lineup.store import Store

    options: dict[str, object] = {"stack": stack}
    if executor == "ray":
        options = {"address": address, "cpus_per_run": cpus_per_run, "gpus_per_run": gpus_per_run}
    elif executor == "pool":
        options["workers"] = workers
    results = api.run(study_file, store_dir, executor=executor, report=not no_report, progress=progress,
                      checkpoint_every_s=checkpoint_every, log=lambda line: click.echo(line, err=True), **options)
    outcome = results.outcome
    assert outcome is not None  # set by api.run
    n_new, n_old = len(outcome.trained), len(outcome.skipped)
    n_trials = sum("trial" in run.spec for run, _ in outcome.trained)
    searched = f" (of which {n_trials} search trials)" if n_trials else ""
    what = f"{len(outcome.runs)} runs"
    search = outcome.study.search
    if search is not None and search.tuned:
        tuned = f"{len(outcome.searches)} model searches"
        what = f"{what} as written and {tuned}" if search.fixed else tuned
    click.echo(f"{outcome.study.name}: {what}, {n_new} trained now{searched}, {n_old} already in the store"
               + (f", {len(outcome.taken_elsewhere)} held by another process" if outcome.taken_elsewhere else ""))
    _print_searches(outcome.searches)
    for run, result in outcome.trained:
        if result.status != "complete" and not (result.status == "pruned" and "trial" in run.spec):
            first = (result.error or "").splitlines()[0] if result.error else ""
            click.secho(f"  {run.label} seed {run.seed} ({run.short}): {result.status}: {first}", fg="yellow")
    if outcome.interrupted:
        click.secho("interrupted: the current run was checkpointed; run the same command again to resume.",
                    fg="yellow", err=True)
        sys.exit(130)
    if results.report_path is not None:
        click.echo(f"report: {results.report_path}")
    with Store(store_dir) as store:
        _print_table(store, outcome.study.name)


def _print_searches(searches: list) -> None:  # type: ignore[type-arg]
    """One line per model's search: how far it got and its best configuration."""
    from lineup.study.search import format_params

    for s in searches:
        where = f" ({s.setting})" if s.setting else ""
        state = "done" if s.done else "not finished: run the study again to continue it"
        top = (f"; best: trial {s.best.number + 1}, {s.best.value:.4f} with {format_params(s.best.params)}"
               if s.best is not None else "")
        click.echo(f"  search {', '.join(s.labels)}{where}: {s.trials} trials ({s.pruned} pruned, {s.diverged} "
                   f"diverged, {s.failed} failed), {s.epochs} epochs of a budget of {s.budget}, {state}{top}")


def _print_table(store: object, study: str) -> None:
    from lineup.results import summary_table

    click.echo(summary_table(store, study).to_string(index=False))  # type: ignore[arg-type]


@main.command()
@click.argument("study")
@_store_option
@click.option("--out", type=click.Path(file_okay=False), default=None, help="report folder (default: in the store)")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html", show_default=True,
              help="html: one self-contained page; md: report.md beside figures/*.png")
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False), default=None,
              help="also write every run's metrics as TensorBoard event files, one folder per run, under this folder "
                   "(needs pip install 'lineup[tensorboard]')")
def report(study: str, store_dir: str, out: str | None, fmt: str, tensorboard_dir: str | None) -> None:
    """(Re)build the report of STUDY from the store alone."""
    from lineup.report import build_report
    from lineup.report.export import export_tensorboard, require_tensorboard
    from lineup.store import Store

    _require_store(store_dir)
    if tensorboard_dir is not None:
        require_tensorboard()  # a missing package fails before the report is built
    with Store(store_dir) as store:
        click.echo(f"report: {build_report(store, study, out, format=fmt)}")
        if tensorboard_dir is not None:
            runs = export_tensorboard(store, study, tensorboard_dir)
            click.echo(f"tensorboard: {len(runs)} runs in {tensorboard_dir} (view: tensorboard --logdir "
                       f"{tensorboard_dir})")


def _require_store(store_dir: str) -> None:
    if not (Path(store_dir) / "lineup.sqlite").exists():
        raise LineupError(f"no results store in {store_dir!r}: run `lineup run STUDY.toml` first, "
                          "or point --store at the folder that holds lineup.sqlite.")


@main.command(name="ls")
@click.argument("study", required=False)
@_store_option
def ls(study: str | None, store_dir: str) -> None:
    """List stored studies, or the runs of STUDY."""
    from lineup.store import Store

    _require_store(store_dir)
    with Store(store_dir) as store:
        if study is None:
            for s in store.studies():
                trials = f"  {s['trials']:>4} search trials" if s.get("trials") else ""
                click.echo(f"{s['name']:<32} {s['runs']:>4} runs  {s['complete']:>4} complete  "
                           f"{s['diverged']:>3} diverged  {s['failed']:>3} failed{trials}")
            return
        records = store.runs(study)
        for r in records:
            if r.role == "trial":
                continue
            acc = r.summary.get("test_acc")
            tuned = "  (tuned)" if r.role == "tuned" else ""
            click.echo(f"{r.hash[:12]}  {r.label:<28} seed {r.seed:<4} {r.status:<9} "
                       f"{'' if acc is None else f'test acc {100 * acc:.2f}%'}{tuned}")
        trials = [r for r in records if r.role == "trial"]
        if trials:  # a tuned study: how each model's configuration was chosen, on validation only
            from lineup.study.search import format_params

            click.echo(f"search trials ({len(trials)}, scored on the validation split):")
            for r in trials:
                t = r.spec["trial"]
                val = r.summary.get("val_acc")
                score = "" if val is None else f"val acc {100 * val:.2f}%"
                click.echo(f"{r.hash[:12]}  {r.label:<28} trial {t['number'] + 1:<4} seed {r.seed:<4} {r.status:<9} "
                           f"{score:<16} {format_params(t['params'])}")


@main.command()
@click.argument("run_id")
@_store_option
def show(run_id: str, store_dir: str) -> None:
    """Show one run: resolved spec, provenance, summary and per-epoch metrics."""
    from lineup.store import Store

    _require_store(store_dir)
    with Store(store_dir) as store:
        r = store.run(run_id)
        click.echo(json.dumps({"hash": r.hash, "label": r.label, "seed": r.seed, "status": r.status,
                               "error": r.error, "wall_time_s": r.wall_time, "summary": r.summary,
                               "provenance": r.provenance, "spec": r.spec}, indent=2, default=str))
        for e in store.epochs(r.hash):
            click.echo("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in e.items()))


def _list_parts(parts: list[PartInfo]) -> None:
    """Name, one-line description, where it comes from (unless lineup) and options with defaults, wrapped."""
    import textwrap

    for part in parts:
        origin = "" if part.origin == "lineup" else f"  [from {part.origin}]"
        click.echo(f"{part.name:<22} {part.description}{origin}")
        opts = ", ".join(f"{k}={v!r}" for k, v in part.options.items()) or "-"
        click.echo(textwrap.fill(opts, width=118, initial_indent=" " * 23 + "options: ",
                                 subsequent_indent=" " * 32, break_on_hyphens=False))


@main.command()
def models() -> None:
    """List the registered models (installed plugins included) with their options and defaults."""
    from lineup.api import describe_models

    _list_parts(describe_models())


@main.command()
def datasets() -> None:
    """List the datasets (installed plugins included) with their [data.options] and defaults."""
    from lineup.api import describe_datasets

    _list_parts(describe_datasets())
    click.echo("\nDatasets of uint8 images (all but the synthetic ones) also take [data.distortions]: imbalance, "
               "label_noise,\ninput_noise, affine, erasing, blur (see the README).")


@main.command()
@click.argument("path", required=False, default="study.toml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="overwrite PATH if it exists")
def init(path: str, force: bool) -> None:
    """Write a commented starter study to PATH (default: study.toml) that validates and trains in a minute."""
    import tomllib

    from lineup.schema import starter_study
    from lineup.spec import parse_study

    target = Path(path)
    if target.exists() and not force:
        raise LineupError(f"{path} exists: give another PATH, or --force to overwrite it")
    text = starter_study(target.stem, path=path)
    parse_study(tomllib.loads(text))  # never write a starter that would not validate
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}; train it with: lineup run {path}")


@main.command()
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write it to this file instead")
def schema(out: str | None) -> None:
    """Print the JSON Schema of study files, for editors that validate and complete TOML (see the README)."""
    from lineup.schema import schema_text

    if out is None:
        click.echo(schema_text(), nl=False)
        return
    Path(out).write_text(schema_text(), encoding="utf-8")
    click.echo(f"wrote {out}")


@main.group()
def data() -> None:
    """Check or fetch dataset files."""


@data.command(name="check")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="directory holding the files")
def data_check(name: str, root: str | None) -> None:
    """Verify that dataset NAME is present and intact."""
    from lineup.data import catalog

    for line in catalog.check(name, root=root):
        click.echo(line)


@data.command(name="fetch")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="where to put the files")
def data_fetch(name: str, root: str | None) -> None:
    """Download dataset NAME (verified by checksum) unless it is already present."""
    from lineup.data import catalog

    click.echo(f"{name}: {catalog.fetch(name, root=root)}")
