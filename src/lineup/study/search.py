"""The tuned protocol: each model's hyper-parameter search on the validation split, then its best configuration over
the study's seeds, all through the same executors as ordinary runs.

For every data setting and model entry, the search starts from the entry's resolved configuration (the run that
the fixed protocol would train) and asks Optuna for configurations of the ``[search]`` space, one trial at a time or
as many as the executor has room for. Each trial is a run: its spec is the configuration on the validation protocol
(no refit, no test evaluation) with its seed, plus a marker ``trial = {search, number, params}``, so it cannot
collide with an ordinary run and its hash is ``spec.run_hash``'s. ``search`` is a digest of what defines the search
(the entry's configuration less the dimensions searched, the space, the searcher, pruner, metric and seeds) and
leaves the budget out: a larger budget continues a search from its stored trials.

The store is the only record of a search. Each time a trial is asked for, the Optuna study is rebuilt in memory
from the stored trials (``lineup.search.trials``), so a search killed half-way continues from its stored trials
without repeating a finished one, and the trial that was running resumes from its checkpoint. Each trial gets, in
its ``RunContext``, the trials finished before it was dispatched, and prunes itself where it runs
(``lineup.search.pruning``). Trials that run in parallel (pool, Ray) do not see each other, so a parallel search
can differ from a sequential one; the local executor's is a pure function of the study.

Once a model's budget is spent and its trials are finished, its best trial's configuration is trained over the
study's seeds as ordinary runs (role ``tuned``), which the report compares like any other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineup._schema import as_dict, parse_section
from lineup.search.config import Dim, SearchPlan, apply_params, without_dims
from lineup.search.pruning import PruningContext
from lineup.search.trials import Backend, TrialRecord, ask, best
from lineup.spec import RunSpec, TrainSection, _digest, expand, run_hash
from lineup.store import FINISHED, RunRecord, Store

if TYPE_CHECKING:
    from lineup.study.executors import Claim, Executor
    from lineup.study.runner import Plan
    from lineup.study.worker import RunContext, RunResult

#: Bumped when the same search would propose other trials, so that stored trials are not mixed up with new ones.
SEARCH_FORMAT = 1

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def format_params(params: dict[str, Any]) -> str:
    """``lr=0.00316, options.dropout=0.2``: a configuration in a few characters."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@dataclass
class Search:
    """One search: a model entry (or several that differ only in what is searched) in one data setting."""

    key: str
    labels: list[str]
    setting: str
    study: str
    base: RunSpec  # the entry's run of the fixed protocol (first seed): what the search starts from
    study_seeds: list[int]
    plan: SearchPlan
    dims: tuple[Dim, ...]
    backend: Backend
    trial_budget: int | None
    epoch_budget: int | None
    dispatched: set[str] = field(default_factory=set)  # run hashes handed out by this process
    queue: list[RunSpec] = field(default_factory=list)  # runs of an asked trial not handed out yet
    finals: list[RunSpec] | None = None  # the tuned runs, once the search is done
    _done_runs: dict[str, tuple[RunRecord, list[dict[str, float]]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.plan.seeds

    # -- what the store says ---------------------------------------------------------------------------------------

    def stored(self, store: Store) -> dict[int, list[tuple[RunRecord, list[dict[str, float]]]]]:
        """Trial number -> its stored runs with their per-epoch metrics (finished runs are read once)."""
        out: dict[int, list[tuple[RunRecord, list[dict[str, float]]]]] = {}
        for rec in store.search_runs(self.key):
            if rec.hash in self._done_runs:
                item = self._done_runs[rec.hash]
            else:
                item = (rec, store.epochs(rec.hash) if rec.status in FINISHED else [])
                if rec.status in FINISHED:
                    self._done_runs[rec.hash] = item
            out.setdefault(int(rec.spec["trial"]["number"]), []).append(item)
        return out

    def records(self, store: Store) -> list[TrialRecord]:
        """The stored trials as the searcher and the pruner see them."""
        return [self._record(n, runs) for n, runs in sorted(self.stored(store).items())]

    def _record(self, number: int, runs: list[tuple[RunRecord, list[dict[str, float]]]]) -> TrialRecord:
        metric, backend = self.plan.metric, self.backend
        statuses = [r.status for r, _ in runs]
        marker = runs[0][0].spec["trial"]
        params, grid_id = dict(marker["params"]), marker.get("grid_id")
        curves: dict[int, list[float]] = {}
        for _, epochs in runs:
            for e in epochs:
                if metric in e and math.isfinite(e[metric]):
                    curves.setdefault(int(e["epoch"]), []).append(float(e[metric]))
        intermediate = {step: float(sum(v) / len(v)) for step, v in sorted(curves.items())}
        spent = sum(int(r.summary.get("epochs_trained", 0)) for r, _ in runs if r.status in FINISHED)
        attrs = dict(runs[0][0].summary.get("trial", {}).get("system_attrs", {}))
        diverged = "diverged" in statuses
        if all(s in FINISHED for s in statuses) and len(runs) >= len(self.seeds):
            if "pruned" in statuses:
                return TrialRecord(number, params, "pruned", None, intermediate, attrs, spent, diverged, grid_id)
            scores = [backend.worst() if r.status == "diverged" else float(r.summary.get(metric, math.nan))
                      for r, _ in runs]
            value = float(sum(scores) / len(scores))
            return TrialRecord(number, params, "complete", value, intermediate, attrs, spent, diverged, grid_id)
        failed = [r for r, _ in runs if r.status == "failed" and r.hash in self.dispatched]
        if failed and all(s in FINISHED or s == "failed" for s in statuses):
            return TrialRecord(number, params, "failed", None, intermediate, attrs, spent, diverged, grid_id)
        return TrialRecord(number, params, "running", None, intermediate, attrs, spent, diverged, grid_id)

    # -- what to run next ------------------------------------------------------------------------------------------

    def _unfinished(self, stored: dict[int, list[tuple[RunRecord, list[dict[str, float]]]]]) -> list[RunRecord]:
        """Stored trial runs that are not finished and that this process has not tried yet (in the order of their
        trials): they resume before any new trial is asked for."""
        return [r for _, runs in sorted(stored.items()) for r, _ in runs
                if r.status not in FINISHED and r.hash not in self.dispatched]

    def _can_ask(self, stored: dict[int, list[tuple[RunRecord, list[dict[str, float]]]]]) -> bool:
        asked = max(stored, default=-1) + 1
        if self.trial_budget is not None and asked >= self.trial_budget:
            return False
        if self.epoch_budget is not None:
            spent = sum(int(r.summary.get("epochs_trained", 0)) for runs in stored.values() for r, _ in runs
                        if r.status in FINISHED)
            reserved = sum(self.max_epochs for runs in stored.values() for r, _ in runs if r.status not in FINISHED)
            return spent + reserved + self.max_epochs * len(self.seeds) <= self.epoch_budget
        return True

    @property
    def max_epochs(self) -> int:
        """The most epochs one trial run can take."""
        return self.backend.max_epochs

    def spent_epochs(self, store: Store) -> int:
        return sum(r.epochs for r in self.records(store))

    def _ask(self, store: Store, stored: dict[int, list[tuple[RunRecord, list[dict[str, float]]]]]) -> list[RunSpec]:
        records = [self._record(n, runs) for n, runs in sorted(stored.items())]
        number = max(stored, default=-1) + 1
        params, grid_id = ask(self.backend, records, number)
        runs = [self.trial_run(params, seed, number, grid_id) for seed in self.seeds]
        store.add_study_runs(self.study, [_row(r, label) for label in self.labels for r in runs], role="trial")
        return runs

    def trial_run(self, params: dict[str, Any], seed: int, number: int, grid_id: int | None = None) -> RunSpec:
        """Trial ``number`` of this search on ``seed``: the configuration on the validation protocol, marked (with
        the grid point it took, for the grid searcher)."""
        spec = self._resolved(params, seed)
        spec["protocol"] = {**spec["protocol"], "refit": False}  # the test split is never evaluated for a trial
        spec["trial"] = {"search": self.key, "number": number, "params": params}
        if grid_id is not None:
            spec["trial"]["grid_id"] = grid_id
        return RunSpec(study=self.study, label=self.label, seed=seed, spec=spec, hash=run_hash(spec),
                       setting=self.setting)

    def final_run(self, params: dict[str, Any], seed: int, label: str) -> RunSpec:
        """A tuned run: an ordinary run of the resolved configuration, the same run as the one written by hand."""
        spec = self._resolved(params, seed)
        return RunSpec(study=self.study, label=label, seed=seed, spec=spec, hash=run_hash(spec), setting=self.setting)

    def _resolved(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        spec = apply_params(self.base.spec, params)
        # Through [train]'s own types, so that lr = 1 from a list of choices is the 1.0 a study file would give.
        spec["train"] = as_dict(parse_section(TrainSection, spec["train"], key="search"))
        spec["seed"] = seed
        return spec

    def take(self, store: Store, log: Log) -> RunSpec | None:
        """The next run of this search to start, or ``None`` (none can start now, or the search and its tuned runs
        are done)."""
        if self.queue:
            return self._hand_out(self.queue.pop(0))
        stored = self.stored(store)
        resume = self._unfinished(stored)
        if resume:
            rec = resume[0]
            return self._hand_out(RunSpec(study=self.study, label=self.label, seed=rec.seed, spec=rec.spec,
                                          hash=rec.hash, setting=self.setting))
        if self._can_ask(stored):
            self.queue = self._ask(store, stored)
            return self._hand_out(self.queue.pop(0))
        if any(r.status not in FINISHED and not (r.status == "failed" and r.hash in self.dispatched)
               for runs in stored.values() for r, _ in runs):
            return None  # trials still running: the best one is not known yet
        if self.finals is None:
            self.finals = self.register_finals(store, log=log)
        for run in self.finals:
            if run.hash not in self.dispatched and store.status(run.hash) not in FINISHED:
                return self._hand_out(run)
        return None

    def _hand_out(self, run: RunSpec) -> RunSpec:
        self.dispatched.add(run.hash)
        return run

    def register_finals(self, store: Store, *, log: Log = _quiet) -> list[RunSpec]:
        """The tuned runs of a finished search, added to the study (role ``tuned``); none when no trial finished
        with a finite score."""
        records = self.records(store)
        top = best(self.backend, records)
        where = f" ({self.setting})" if self.setting else ""
        names = ", ".join(self.labels)
        if top is None:
            log(f"{names}{where}: search done, but no trial finished with a finite {self.plan.metric}: no tuned runs")
            return []
        finals = [self.final_run(top.params, seed, label) for label in self.labels for seed in self.study_seeds]
        store.add_study_runs(self.study, [_row(r, r.label) for r in finals], role="tuned")
        counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed")}
        log(f"{names}{where}: search done: {len(records)} trials ({counts['pruned']} pruned, "
            f"{sum(r.diverged for r in records)} diverged, {counts['failed']} failed), "
            f"{sum(r.epochs for r in records)} epochs; best trial {top.number + 1}: {self.plan.metric} {top.value:.4f} "
            f"with {format_params(top.params)}; training it over seeds {self.study_seeds}")
        return finals

    def pruning(self, store: Store, run: RunSpec) -> PruningContext:
        """What trial ``run`` is judged against: every other trial stored when it is dispatched."""
        number = int(run.spec["trial"]["number"])
        others = tuple(r for r in self.records(store) if r.number != number)
        return PruningContext(backend=self.backend, number=number, metric=self.plan.metric, trials=others)

    def describe_trial(self, run: RunSpec, result: RunResult) -> str:
        """One line of progress for a finished trial run."""
        t = run.spec["trial"]
        total = f"/{self.trial_budget}" if self.trial_budget is not None else ""
        seed = f" seed {run.seed}" if len(self.seeds) > 1 else ""
        value = result.summary.get(self.plan.metric)
        score = f", {self.plan.metric} {value:.4f}" if isinstance(value, float) else ""
        status = result.status
        if status == "pruned":
            status = f"pruned after epoch {result.summary.get('epochs_trained')}"
        elif status == "failed":
            status = f"failed: {(result.error or '').splitlines()[0] if result.error else ''}"
        where = f" ({self.setting})" if self.setting else ""
        return (f"{self.label}{where}: trial {t['number'] + 1}{total}{seed} ({format_params(t['params'])}): "
                f"{status}{score}")


def _row(run: RunSpec, label: str) -> tuple[str, str, int, str, dict[str, Any], str]:
    return (run.hash, label, run.seed, run.spec["model"]["name"], run.spec, run.setting)


def search_key(base: RunSpec, plan: SearchPlan, dims: tuple[Dim, ...]) -> str:
    """What identifies a search: the configuration it starts from less what it searches, and how it searches. The
    budget is left out, so that a larger one continues the same search."""
    start = {k: v for k, v in without_dims(base.spec, dims).items() if k != "seed"}
    start["protocol"] = {k: v for k, v in start["protocol"].items() if k != "refit"}
    s = plan.section
    how = {"searcher": plan.searcher, "pruner": plan.pruner, "metric": s.metric, "seed": s.seed,
           "seeds": list(plan.seeds), "dims": [d.to_dict() for d in dims], "options": _options(plan)}
    return _digest({"format": SEARCH_FORMAT, "start": start, "search": how})


def _options(plan: SearchPlan) -> dict[str, int]:
    s = plan.section
    keep = {"tpe": ("startup_trials",), "median": ("prune_after_trials", "warmup_epochs"),
            "successive_halving": ("min_epochs", "reduction_factor"), "hyperband": ("min_epochs", "reduction_factor")}
    return {k: getattr(s, k) for part in (plan.searcher, plan.pruner) for k in keep.get(part, ())}


def plan_searches(plan: Plan) -> dict[str, list[Search]]:
    """Every search of a tuned study, per data setting; entries whose searches are the same share one."""
    study, search = plan.study, plan.study.search
    assert search is not None and search.tuned
    bases = expand(study, data_version={name: d.version for name, d in plan.datas.items()})
    first = study.study.seeds[0]
    out: dict[str, list[Search]] = {}
    for setting in plan.datas:
        searches: dict[str, Search] = {}
        for entry in study.models:
            base = next(r for r in bases if r.setting == setting and r.label == entry.name and r.seed == first)
            dims = search.dims_of(entry.name)
            key = search_key(base, search, dims)
            if key in searches:
                searches[key].labels.append(entry.name)
                continue
            epochs = [d for d in dims if d.name == "epochs"]
            max_epochs = int(max(epochs[0].grid() if epochs[0].kind == "choices" else [epochs[0].high])) if epochs \
                else int(base.spec["train"]["epochs"])
            backend = Backend(name=key, dims=dims, direction=search.direction, searcher=search.searcher,
                              pruner=search.pruner, seed=search.section.seed, max_epochs=max_epochs,
                              options=_options(search))
            searches[key] = Search(key=key, labels=[entry.name], setting=setting, study=study.name, base=base,
                                   study_seeds=list(study.study.seeds), plan=search, dims=dims, backend=backend,
                                   trial_budget=search.trial_budget(entry.name), epoch_budget=search.epoch_budget)
        out[setting] = list(searches.values())
    return out


class SearchFeed:
    """The runs of every search of one data setting, decided as results arrive (``executors.RunFeed``): searches
    take turns, so a pool or a cluster keeps every worker busy across models."""

    def __init__(self, searches: list[Search], store: Store, *, interrupt: Any = None, log: Log = _quiet) -> None:
        self.searches, self.store, self.interrupt, self.log = searches, store, interrupt, log
        self._turn = 0

    def take(self) -> RunSpec | None:
        if self.interrupt is not None and self.interrupt.is_set():
            return None
        n = len(self.searches)
        for i in range(n):
            search = self.searches[(self._turn + i) % n]
            run = search.take(self.store, self.log)
            if run is not None:
                self._turn = (self._turn + i + 1) % n
                return run
        return None

    def __iter__(self) -> Iterator[RunSpec]:
        return iter(self.take, None)

    def __len__(self) -> int:
        per_trial = [(s.trial_budget or max(1, (s.epoch_budget or 1) // max(s.max_epochs, 1))) * len(s.seeds)
                     + len(s.labels) * len(s.study_seeds) for s in self.searches]
        return max(1, sum(per_trial))

    def search_of(self, run: RunSpec) -> Search | None:
        key = run.spec.get("trial", {}).get("search")
        return next((s for s in self.searches if s.key == key), None)


def register_stored(searches: dict[str, list[Search]], store: Store) -> None:
    """Add the stored trials of every search to the study, and the tuned runs of those already done, so that the
    study lists them whether or not this invocation trains anything."""
    for group in searches.values():
        for search in group:
            stored = search.stored(store)
            rows = [_row(RunSpec(study=search.study, label=label, seed=r.seed, spec=r.spec, hash=r.hash,
                                 setting=search.setting), label)
                    for label in search.labels for runs in stored.values() for r, _ in runs]
            if rows:
                store.add_study_runs(search.study, rows, role="trial")
            records = search.records(store)
            if records and not search._can_ask(stored) and all(r.state != "running" for r in records):
                search.finals = search.register_finals(store)


def run_searches(plan: Plan, store: Store, executor: Executor, *, claim: Claim, interrupt: Any,
                 log: Log = _quiet) -> Iterator[tuple[RunSpec, RunResult]]:
    """Run every search of ``plan``'s study and then its tuned runs through ``executor``, yielding each result as it
    arrives; the caller stores it before the next run is decided."""
    searches = plan_searches(plan)
    register_stored(searches, store)
    for setting, data in plan.datas.items():
        if interrupt.is_set():
            return
        feed = SearchFeed(searches[setting], store, interrupt=interrupt, log=log)

        def claim_run(run: RunSpec, feed: SearchFeed = feed) -> RunContext | None:
            ctx = claim(run)
            search = feed.search_of(run)
            if ctx is None or search is None:
                return ctx
            return dataclasses.replace(ctx, pruning=search.pruning(store, run))

        for run, result in executor.map(feed, data, claim=claim_run):
            search = feed.search_of(run)
            if search is not None:
                log(search.describe_trial(run, result))
            yield run, result


@dataclass(frozen=True)
class SearchSummary:
    """Where one model's search stands, for the command line and the report."""

    setting: str
    labels: list[str]
    trials: int
    complete: int
    pruned: int
    diverged: int
    failed: int
    running: int
    epochs: int
    done: bool
    best: TrialRecord | None
    budget: str


def summarize_searches(plan: Plan, store: Store) -> list[SearchSummary]:
    """Every search of the study as it stands in the store."""
    out = []
    for setting, group in plan_searches(plan).items():
        for s in group:
            records = s.records(store)
            running = sum(r.state == "running" for r in records)
            stored = s.stored(store)
            done = bool(records) and not running and not s._can_ask(stored)
            budget = f"{s.trial_budget} trials" if s.trial_budget is not None else f"{s.epoch_budget} epochs"
            out.append(SearchSummary(
                setting=setting, labels=list(s.labels), trials=len(records),
                complete=sum(r.state == "complete" and not r.diverged for r in records),
                pruned=sum(r.state == "pruned" for r in records), diverged=sum(r.diverged for r in records),
                failed=sum(r.state == "failed" for r in records), running=running,
                epochs=sum(r.epochs for r in records), done=done, best=best(s.backend, records), budget=budget))
    return out
