"""The ``[search]`` section of a study: which protocol compares the models, over which space, with which budget.

Under the *fixed* protocol every model trains with the study's settings (its own overrides applied), as a study
without ``[search]`` does. Under the *tuned* protocol each model gets its own search on the validation split, with
the same space, searcher, pruner and budget as every other model; its best configuration is then trained over the
study's seeds and evaluated once on the test set. ``protocol = "both"`` trains the two side by side, so the report can
show how much of a ranking is the models and how much is their settings (Bouthillier et al., 2021; Schneider et al.,
2019, DeepOBS).

The search never changes a run's identity: a tuned model's final runs are ordinary runs whose spec is the resolved
configuration, so the same configuration written by hand is the same run. Trials are runs too, marked as such in
their spec (``lineup.study.search``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lineup._registry import did_you_mean
from lineup._schema import as_dict, opt, parse_section
from lineup.errors import SpecError

if TYPE_CHECKING:
    from lineup.spec import Study

PROTOCOLS = ("fixed", "tuned", "both")
SEARCHERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
#: Validation metrics a search can optimise, with their direction.
METRICS: dict[str, Literal["maximize", "minimize"]] = {"val_acc": "maximize", "val_loss": "minimize"}
#: The learning-rate sweep of DeepOBS (Schneider et al., 2019): 36 rates evenly spaced in log space from 1e-5 to 1e2.
LR_SWEEP = {"log_uniform": [1e-5, 1e2], "points": 36}
#: ``[train]`` settings that are not hyper-parameters of the model's training and cannot be searched.
_NOT_SEARCHED = ("objective", "device", "threads", "eval_batch_size", "early_stopping", "augment")
_KEY = "search"


@dataclass(frozen=True)
class BudgetSection:
    trials: int | None = opt(None, "configurations tried per model, each trained once per search seed", min=1)
    epochs: int | None = opt(
        None, "training epochs per model, summed over its trials and search seeds (a pruned trial counts the epochs "
              "it ran); a trial starts only when it fits even if it runs to its last epoch", min=1)


@dataclass(frozen=True)
class DimSection:
    uniform: list[float] | None = opt(None, "[low, high]: a float drawn uniformly, e.g. dropout = { uniform = [0.0, "
                                            "0.5] }")
    log_uniform: list[float] | None = opt(None, "[low, high] with low > 0: a float drawn uniformly in log space, e.g. "
                                                "lr = { log_uniform = [1e-4, 0.1] }")
    integer: list[int] | None = opt(None, "[low, high]: an integer, both ends included, e.g. batch_size = { integer "
                                          "= [16, 256], log = true }")
    log: bool = opt(False, "integer: drawn uniformly in log space")
    step: int = opt(1, "integer: spacing of the values from low", min=1)
    choices: list[Any] | None = opt(None, "one of these values (numbers, strings or booleans), e.g. optimizer = { "
                                          "choices = [\"adam\", \"sgd\"] }")
    points: int | None = opt(None, "grid searcher: values of a float range it tries, evenly spaced from low to high "
                                   "(in log space for log_uniform)", min=2)


#: The kinds of a search dimension: exactly one of these keys gives a dimension its values.
KINDS = ("uniform", "log_uniform", "integer", "choices")


@dataclass(frozen=True)
class SearchSection:
    """[search]: compare the models as written (fixed), each after its own hyper-parameter search on the validation
    split with the same budget (tuned), or both; it changes no run's hash (see lineup.search)."""

    protocol: str = opt(
        "tuned", "fixed: every model trains with the study's settings; tuned: each model gets its own search on the "
                 "validation split within the same budget, and its best configuration trains over the study's seeds "
                 "and is tested once; both: the two side by side", choices=PROTOCOLS)
    preset: str = opt(
        "", "lr_sweep: a learning-rate sweep on a log grid (DeepOBS: 36 rates from 1e-5 to 1e2) that gives each model "
            "a sensitivity curve; sets searcher = \"grid\", pruner = \"none\" and space.lr unless they are given",
        choices=("", "lr_sweep"))
    searcher: str = opt("tpe", "grid: every combination of the dimensions' values; random; tpe: Optuna's "
                               "tree-structured Parzen estimator (Bergstra et al., 2011)", choices=SEARCHERS)
    pruner: str = opt(
        "median", "stop poor trials early on their per-epoch validation metric: median (below the median of the "
                  "finished trials at the same epoch), successive_halving or hyperband (Li et al., 2018), or none",
        choices=PRUNERS)
    metric: str = opt("val_acc", "validation metric the search optimises (val_acc: higher is better; val_loss: lower)",
                      choices=tuple(METRICS))
    # A plain table here, read into a BudgetSection by parse_search, so that a bad value is named by its own key.
    budget: dict[str, Any] = opt(
        {}, "the same for every model: trials = N configurations, or epochs = N training epochs in all (default "
            "for the grid searcher: the whole grid)")
    space: dict[str, Any] = opt(
        {}, "the dimensions searched: [train] settings (lr = { log_uniform = [1e-4, 0.1] }) and, under options, "
            "model options (options.dropout = { uniform = [0.0, 0.5] }), applied to every model that has them")
    seed: int = opt(0, "seed of the searcher: the same study searches the same configurations", min=0)
    seeds: list[int] | None = opt(
        None, "seeds each configuration trains with during the search (default: the study's first seed); with "
              "several, a trial's score is their mean and the sensitivity curve shows their spread", min=0)
    startup_trials: int = opt(10, "tpe: trials drawn at random before the model-based ones", min=0)
    prune_after_trials: int = opt(3, "median: finished trials needed before any trial is pruned", min=0)
    warmup_epochs: int = opt(1, "median: epochs a trial always trains before it can be pruned", min=0)
    min_epochs: int = opt(1, "successive_halving, hyperband: epochs of the first rung", min=1)
    reduction_factor: int = opt(3, "successive_halving, hyperband: 1 in this many trials goes on to the next rung",
                                min=2)


@dataclass(frozen=True)
class Dim:
    """One dimension of a search space, resolved: ``name`` is a ``[train]`` key or ``options.<model option>``."""

    name: str
    kind: str  # one of KINDS
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()
    points: int | None = None

    @property
    def option(self) -> str | None:
        """The model option this dimension sets, or ``None`` for a training setting."""
        return self.name.removeprefix("options.") if self.name.startswith("options.") else None

    def grid(self) -> list[Any]:
        """The values the grid searcher tries, from low to high (or the choices in their order)."""
        if self.kind == "choices":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "integer":
            if self.points is None:
                return list(range(int(self.low), int(self.high) + 1, self.step))
            return sorted(set(round(v) for v in _spaced(self.low, self.high, self.points, self.log)))
        assert self.points is not None  # checked when the study is parsed
        return _spaced(float(self.low), float(self.high), self.points, self.kind == "log_uniform")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "choices":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.kind == "integer" and self.step != 1:
                out["step"] = self.step
        if self.points is not None:
            out["points"] = self.points
        return out


def _spaced(low: float, high: float, n: int, log: bool) -> list[float]:
    """``n`` values from ``low`` to ``high`` inclusive, evenly spaced (in log space when ``log``); the ends exact."""
    if log:
        a, b = math.log10(low), math.log10(high)
        values = [10 ** (a + (b - a) * i / (n - 1)) for i in range(n)]
    else:
        values = [low + (high - low) * i / (n - 1) for i in range(n)]
    values[0], values[-1] = low, high
    return values


@dataclass(frozen=True)
class SearchPlan:
    """A validated ``[search]``: the section as written, its dimensions, and what follows from them."""

    section: SearchSection
    dims: tuple[Dim, ...]
    seeds: tuple[int, ...]
    searcher: str
    pruner: str
    budget: BudgetSection | None = None
    # model entry -> the dimensions its model has (options.* only where the model has that option)
    entry_dims: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return self.section.protocol

    @property
    def tuned(self) -> bool:
        """Whether the study trains tuned models (``tuned`` or ``both``)."""
        return self.protocol != "fixed"

    @property
    def fixed(self) -> bool:
        """Whether the study trains the models as written (``fixed`` or ``both``)."""
        return self.protocol != "tuned"

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return METRICS[self.section.metric]

    @property
    def metric(self) -> str:
        return self.section.metric

    def dims_of(self, entry: str) -> tuple[Dim, ...]:
        """The dimensions searched for model entry ``entry``."""
        names = self.entry_dims.get(entry, tuple(d.name for d in self.dims if d.option is None))
        return tuple(d for d in self.dims if d.name in names)

    def grid_size(self, entry: str) -> int:
        return math.prod(len(d.grid()) for d in self.dims_of(entry))

    def trial_budget(self, entry: str) -> int | None:
        """Trials per model (``None``: the budget is in epochs); the grid searcher never goes past its grid."""
        budget = self.budget
        trials = budget.trials if budget is not None else None
        if self.searcher == "grid":
            size = self.grid_size(entry)
            return size if trials is None and (budget is None or budget.epochs is None) else (
                None if trials is None else min(trials, size))
        return trials

    @property
    def epoch_budget(self) -> int | None:
        return self.budget.epochs if self.budget is not None else None

    def to_dict(self) -> dict[str, Any]:
        """What the report reads from the stored study spec."""
        return {**as_dict(self.section), "searcher": self.searcher, "pruner": self.pruner,
                "seeds": list(self.seeds), "dims": [d.to_dict() for d in self.dims],
                "entry_dims": {k: list(v) for k, v in self.entry_dims.items()}}


def _bad(message: str, key: str, file: str | None) -> SpecError:
    return SpecError(message, file=file, key=key)


def _parse_dim(name: str, table: Any, key: str, file: str | None) -> Dim:
    d = parse_section(DimSection, table, key=key, file=file)
    given = [k for k in KINDS if getattr(d, k) is not None]
    if len(given) != 1:
        what = "none of" if not given else "more than one of"
        raise _bad(f"give exactly one of {', '.join(KINDS)} (got {what} them), e.g. {{ log_uniform = [1e-4, 0.1] }}",
                   key, file)
    kind = given[0]
    if kind == "choices":
        assert d.choices is not None
        if not d.choices:
            raise _bad("empty choices: give at least one value", f"{key}.choices", file)
        for i, c in enumerate(d.choices):
            if not isinstance(c, (bool, int, float, str)):
                raise _bad(f"a choice must be a number, a string or a boolean, got {c!r}", f"{key}.choices[{i}]", file)
        if len(set(map(repr, d.choices))) != len(d.choices):
            raise _bad(f"duplicate values in {d.choices}", f"{key}.choices", file)
        return Dim(name=name, kind=kind, choices=tuple(d.choices))
    ends = getattr(d, kind)
    if len(ends) != 2:
        raise _bad(f"expected [low, high], got {ends!r}", f"{key}.{kind}", file)
    low, high = ends
    if not low < high:
        raise _bad(f"low must be below high, got low = {low!r}, high = {high!r}", f"{key}.{kind}", file)
    if (kind == "log_uniform" or (kind == "integer" and d.log)) and low <= 0:
        raise _bad(f"a log-uniform range needs low > 0, got {low!r}: use uniform, or a positive low such as 1e-6",
                   f"{key}.{kind}", file)
    if kind == "integer" and d.log and d.step != 1:
        raise _bad("an integer range drawn in log space has step 1", f"{key}.step", file)
    return Dim(name=name, kind=kind, low=low, high=high, log=d.log or kind == "log_uniform", step=d.step,
               points=d.points)


def _check_value(dim: Dim, value: Any, key: str, file: str | None) -> None:
    """A value of a ``[train]`` dimension must be one that ``[train]`` accepts (an optimizer it knows ...)."""
    from lineup.spec import TrainSection

    try:
        parse_section(TrainSection, {dim.name: value}, key="", file=file)
    except SpecError as e:
        raise SpecError(f"{dim.name} = {value!r} is not a valid training setting: {e.detail}", file=file,
                        key=key) from None


def parse_search(table: Any, study: Study, *, file: str | None = None) -> SearchPlan:
    """Validate ``[search]`` against the study's model entries and resolve its space.

    Raises:
        SpecError: an unknown key or setting in the space, an empty choice, a range with low >= high, a log range with
            low <= 0, a budget of 0, a tuned protocol without a space, a grid over a float range without points.
    """
    if not isinstance(table, dict):
        raise _bad("expected a table: write the search as [search] with its keys", _KEY, file)
    raw = dict(table)
    section = parse_section(SearchSection, raw, key=_KEY, file=file)
    space = dict(section.space)
    searcher, pruner = section.searcher, section.pruner
    if section.preset == "lr_sweep":
        space.setdefault("lr", dict(LR_SWEEP))
        searcher = raw.get("searcher", "grid")
        pruner = raw.get("pruner", "none")
    budget = parse_section(BudgetSection, section.budget, key=f"{_KEY}.budget", file=file) if "budget" in raw \
        else None
    if budget is not None and (budget.trials is None) == (budget.epochs is None):
        raise _bad("give the budget in trials or in epochs, not both or neither: budget = { trials = 20 } or "
                   "budget = { epochs = 200 }", f"{_KEY}.budget", file)
    if section.protocol != "fixed" and not space:
        raise _bad("the tuned protocol needs a search space: e.g. [search.space] lr = { log_uniform = [1e-4, 0.1] }, "
                   'or preset = "lr_sweep"', f"{_KEY}.space", file)
    if section.protocol != "fixed" and budget is None and searcher != "grid":
        raise _bad(f"the {searcher} searcher needs a budget, the same for every model: budget = {{ trials = 20 }} or "
                   "budget = { epochs = 200 }", f"{_KEY}.budget", file)
    from lineup.spec import TrainSection

    train_keys = [f.name for f in dataclasses.fields(TrainSection) if f.name not in _NOT_SEARCHED]
    dims: list[Dim] = []
    for name, value in space.items():
        key = f"{_KEY}.space.{name}"
        if name == "options":
            if not isinstance(value, dict) or not value:
                raise _bad("expected a table of model options, e.g. options.dropout = { uniform = [0.0, 0.5] }",
                           key, file)
            dims += [_parse_dim(f"options.{opt_name}", t, f"{key}.{opt_name}", file) for opt_name, t in value.items()]
            continue
        if name not in train_keys:
            hint = did_you_mean(name, [*train_keys, "options"])
            raise _bad(f"unknown search dimension {name!r}.{hint} A dimension is a [train] setting ("
                       f"{', '.join(train_keys)}) or a model option under options (options.dropout ...).", key, file)
        dim = _parse_dim(name, value, key, file)
        for probe in (dim.choices if dim.kind == "choices" else (dim.low, dim.high)):
            _check_value(dim, probe, key, file)
        dims.append(dim)
    for dim in dims:
        if searcher == "grid" and dim.kind in ("uniform", "log_uniform") and dim.points is None:
            raise _bad(f"the grid searcher needs points = N for the float range of {dim.name}, the number of values "
                       "it tries", f"{_KEY}.space.{dim.name}", file)
    entry_dims = _entry_dims(study, dims, file)
    if section.protocol != "fixed":
        for i, _ in enumerate(study.models):
            from lineup.spec import resolve_init

            if resolve_init(study, i) is not None:
                raise _bad("a model that starts from another's weights (init_from) cannot be tuned yet: use protocol "
                           "= \"fixed\" for this study, or remove init_from", f"models[{i}].init_from", file)
    seeds = tuple(section.seeds) if section.seeds else (study.study.seeds[0],)
    if len(set(seeds)) != len(seeds):
        raise _bad(f"duplicate seeds in {list(seeds)}", f"{_KEY}.seeds", file)
    return SearchPlan(section=section, dims=tuple(dims), seeds=seeds, searcher=searcher, pruner=pruner,
                      budget=budget, entry_dims=entry_dims)


def _entry_dims(study: Study, dims: list[Dim], file: str | None) -> dict[str, tuple[str, ...]]:
    """Each entry's dimensions: every training dimension, and each model option its model has.

    Raises:
        SpecError: a model option that no model of the study has (the message lists what they have).
    """
    from lineup.models import model_options
    from lineup.spec import resolve_entry

    known: dict[str, dict[str, Any] | None] = {}
    out: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(study.models):
        arch, _, _ = resolve_entry(study, i)
        if arch not in known:
            try:
                known[arch] = model_options(arch)
            except SpecError:  # an unknown model: refused with its own message when the study is prepared
                known[arch] = None
        options = known[arch]
        out[entry.name] = tuple(d.name for d in dims if d.option is None or options is None or d.option in options)
    for d in dims:
        if d.option is None or any(d.name in names for names in out.values()):
            continue
        have = sorted({o for opts in known.values() if opts for o in opts})
        hint = did_you_mean(d.option, have)
        raise _bad(f"no model of this study has an option {d.option!r}.{hint} Their options: "
                   f"{', '.join(have) or 'none'}.", f"{_KEY}.space.{d.name}", file)
    return out


def apply_params(spec: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A run spec with the searched ``params`` (``{"lr": 0.01, "options.dropout": 0.2}``) in place of its own."""
    out = {**spec, "train": dict(spec["train"]),
           "model": {**spec["model"], "options": dict(spec["model"]["options"])}}
    for name, value in params.items():
        if name.startswith("options."):
            out["model"]["options"][name.removeprefix("options.")] = value
        else:
            out["train"][name] = value
    return out


def without_dims(spec: dict[str, Any], dims: tuple[Dim, ...]) -> dict[str, Any]:
    """A run spec less the settings a search sets, so that two entries that differ only there search as one."""
    out = {**spec, "train": dict(spec["train"]),
           "model": {**spec["model"], "options": dict(spec["model"]["options"])}}
    for d in dims:
        if d.option is not None:
            out["model"]["options"].pop(d.option, None)
        else:
            out["train"].pop(d.name, None)
    return out
