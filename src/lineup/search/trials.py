"""Trials as plain data, and the in-memory Optuna study rebuilt from them (https://optuna.org).

The store is the only record of a search: every time a configuration is asked for, or a trial decides whether to
stop, an Optuna study is built in memory from the stored trials (``optuna.trial.create_trial`` + ``add_trial``, with
their parameters, distributions, scores and per-epoch validation values). No Optuna database exists beside the store,
so a search killed half-way resumes from its stored trials, and a trial running in a pool worker or on a Ray node
judges itself against the same trials as the driver would.

The searcher is seeded per trial (``trial_seed``): what trial ``n`` proposes depends only on the study's seed, ``n``
and the trials it sees, never on how many times the driver was restarted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lineup.search.config import Dim

if TYPE_CHECKING:
    import optuna

#: Trial states as lineup records them; ``running`` is any trial not finished yet (dispatched, or to resume).
STATES = ("complete", "pruned", "failed", "running")


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search: a configuration (``params``), trained once per search seed.

    Attributes:
        number: its place in the search, from 0.
        params: dimension name -> value.
        state: one of ``STATES``; a trial with a diverged run is ``complete`` with the worst score.
        value: the score (mean over its runs of the search's metric); ``None`` unless complete.
        intermediate: epoch -> the metric after that epoch, averaged over the runs that reached it.
        system_attrs: what Optuna's pruner recorded for the trial while it ran (the rungs of successive halving).
        epochs: epochs trained over its runs so far.
        diverged: whether a run of it diverged.
        grid_id: the grid searcher's index of its grid point (Optuna's ``grid_id``), as recorded when it was asked.
    """

    number: int
    params: dict[str, Any]
    state: str
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    diverged: bool = False
    grid_id: int | None = None


@dataclass(frozen=True)
class Backend:
    """How one search asks and prunes: everything ``build_study`` needs, as plain data (it travels to workers).

    Attributes:
        name: the Optuna study's name; Hyperband assigns trials to brackets by it, so driver and workers share it.
        dims: the dimensions searched.
        direction: ``maximize`` or ``minimize``.
        searcher: grid, random or tpe.
        pruner: none, median, successive_halving or hyperband.
        seed: the searcher's seed.
        max_epochs: a trial's epochs (Hyperband's largest resource).
        options: the pruner's and searcher's settings (startup_trials, prune_after_trials, warmup_epochs, min_epochs,
            reduction_factor).
    """

    name: str
    dims: tuple[Dim, ...]
    direction: Literal["maximize", "minimize"]
    searcher: str
    pruner: str
    seed: int
    max_epochs: int
    options: dict[str, int] = field(default_factory=dict)

    def worst(self) -> float:
        """The score of a trial that diverged: worse than any other."""
        return -math.inf if self.direction == "maximize" else math.inf

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


def trial_seed(seed: int, number: int) -> int:
    """The searcher's seed for trial ``number``: a pure function of the study's seed and the trial."""
    return (seed * 1_000_003 + number * 7_919 + 1) % 2**31


def distribution(dim: Dim) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind == "choices":
        return CategoricalDistribution(list(dim.choices))
    if dim.kind == "integer":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=dim.step)  # type: ignore[arg-type]
    return FloatDistribution(float(dim.low), float(dim.high), log=dim.kind == "log_uniform")  # type: ignore[arg-type]


def _grid_space(dims: tuple[Dim, ...]) -> dict[str, list[Any]]:
    return {d.name: d.grid() for d in dims}


def _sampler(backend: Backend, number: int) -> optuna.samplers.BaseSampler:
    import optuna

    if backend.searcher == "grid":
        # One shuffle of the grid for the whole search: trial n takes the n-th point of it (Optuna's GridSampler).
        return optuna.samplers.GridSampler(_grid_space(backend.dims), seed=backend.seed)
    seed = trial_seed(backend.seed, number)
    if backend.searcher == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=backend.options.get("startup_trials", 10))


def _pruner(backend: Backend) -> optuna.pruners.BasePruner:
    import optuna

    o = backend.options
    if backend.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=o.get("prune_after_trials", 3),
                                           n_warmup_steps=o.get("warmup_epochs", 1))
    if backend.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=o.get("min_epochs", 1),
                                                      reduction_factor=o.get("reduction_factor", 3))
    if backend.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=o.get("min_epochs", 1),
                                              max_resource=max(backend.max_epochs, o.get("min_epochs", 1)),
                                              reduction_factor=o.get("reduction_factor", 3))
    return optuna.pruners.NopPruner()


def _frozen(backend: Backend, record: TrialRecord) -> optuna.trial.FrozenTrial:
    from optuna.trial import TrialState, create_trial

    dists = {d.name: distribution(d) for d in backend.dims if d.name in record.params}
    attrs = dict(record.system_attrs)
    if backend.searcher == "grid":  # which grid point the trial took, so that the grid searcher moves on
        attrs.update(search_space=_grid_space(backend.dims),
                     grid_id=record.number if record.grid_id is None else record.grid_id)
    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL,
             "running": TrialState.RUNNING}[record.state]
    finite = {step: v for step, v in record.intermediate.items() if math.isfinite(v)}
    return create_trial(state=state, value=record.value if state == TrialState.COMPLETE else None,
                        params={k: record.params[k] for k in dists}, distributions=dists,
                        intermediate_values=finite, system_attrs=attrs)


def build_study(backend: Backend, records: list[TrialRecord], *, number: int | None = None
                ) -> tuple[optuna.Study, optuna.Trial | None]:
    """An in-memory Optuna study holding ``records`` in the order of their numbers.

    Args:
        number: ask for trial ``number`` in its place (every record with a lower number before it, every higher one
            after): the returned trial is live, so it can be given parameters or report values and be pruned.
            ``None``: no trial is asked for.

    Returns:
        The study and the live trial (``None`` when ``number`` is).
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the driver reports progress in its own words
    study = optuna.create_study(study_name=backend.name, direction=backend.direction,
                                sampler=_sampler(backend, 0 if number is None else number), pruner=_pruner(backend))
    by_number = {r.number: r for r in records if r.number != number}
    top = max([*by_number, -1 if number is None else number])
    live = None
    for n in range(top + 1):
        if n == number:
            live = study.ask()
            assert live.number == number
        elif n in by_number:
            study.add_trial(_frozen(backend, by_number[n]))
        else:  # a number whose trial is not stored (never happens for a search lineup ran): keep the numbering
            study.add_trial(create_trial(state=TrialState.FAIL))
    return study, live


def ask(backend: Backend, records: list[TrialRecord], number: int) -> tuple[dict[str, Any], int | None]:
    """The configuration the searcher proposes for trial ``number`` after seeing ``records``, and the index of its
    grid point (``None`` unless the searcher is the grid)."""
    study, trial = build_study(backend, records, number=number)
    assert trial is not None
    params = {d.name: suggest(trial, d) for d in backend.dims}
    if backend.searcher != "grid":
        return params, None
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return params, int(frozen.system_attrs["grid_id"])


def suggest(trial: optuna.Trial, dim: Dim) -> Any:
    if dim.kind == "choices":
        return trial.suggest_categorical(dim.name, list(dim.choices))
    if dim.kind == "integer":
        return trial.suggest_int(dim.name, int(dim.low), int(dim.high), step=dim.step,  # type: ignore[arg-type]
                                 log=dim.log)
    return trial.suggest_float(dim.name, float(dim.low), float(dim.high),  # type: ignore[arg-type]
                               log=dim.kind == "log_uniform")


def best(backend: Backend, records: list[TrialRecord]) -> TrialRecord | None:
    """The complete trial with the best finite score (the lowest number on a tie); ``None`` when there is none."""
    done = sorted((r for r in records if r.state == "complete" and r.value is not None and math.isfinite(r.value)),
                  key=lambda r: r.number)
    if not done:
        return None
    top = done[0]
    for r in done[1:]:
        if backend.better(r.value, top.value):  # type: ignore[arg-type]
            top = r
    return top
