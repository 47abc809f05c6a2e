"""The report's "Hyper-parameter search" section, for studies with ``[search]`` (``lineup.search``).

It states the protocol and the budget every model had, then per model the best configuration and its validation
score, the sensitivity curve of each searched dimension (validation accuracy against the learning rate, say), the
search history, and, for a study that trains both protocols, the ranking under fixed and under tuned side by side
with the seed statistics of the rest of the report. Everything comes from the store through ``collect``; trials
carry no test result, so nothing here could have leaked the test split into the search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure

from lineup.report import _format as fmt
from lineup.report import figures_search as figs
from lineup.report.collect import RunData, StudyData
from lineup.report.document import Bullets, Figure, Section, Table, code, para
from lineup.report.evidence import Evidence, gather

Save = Callable[[MplFigure, str], str]


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _score(run: RunData, metric: str) -> float:
    """A trial run's validation score: its summary's metric (NaN for a diverged or unfinished run)."""
    if run.record.status not in ("complete", "pruned"):
        return math.nan
    v = run.record.summary.get(metric)
    return float(v) if isinstance(v, (int, float)) else math.nan


class _Trial:
    """One trial (a configuration over its search seeds) of one model."""

    def __init__(self, number: int, runs: list[RunData], metric: str) -> None:
        self.number, self.runs = number, runs
        self.params: dict[str, Any] = dict(runs[0].record.spec["trial"]["params"])
        statuses = [r.record.status for r in runs]
        self.status = ("pruned" if "pruned" in statuses else "diverged" if "diverged" in statuses
                       else "complete" if all(s == "complete" for s in statuses) else statuses[0])
        scores = [_score(r, metric) for r in runs]
        self.score = float(np.mean(scores)) if self.status == "complete" else math.nan
        self.epochs = sum(int(r.record.summary.get("epochs_trained", 0)) for r in runs)


def _trials(data: StudyData, label: str, metric: str) -> list[_Trial]:
    by_number: dict[int, list[RunData]] = {}
    for run in data.trials:
        if run.label == label:
            by_number.setdefault(int(run.record.spec["trial"]["number"]), []).append(run)
    return [_Trial(n, runs, metric) for n, runs in sorted(by_number.items())]


def _best(trials: list[_Trial], higher: bool) -> _Trial | None:
    done = [t for t in trials if math.isfinite(t.score)]
    if not done:
        return None
    return max(done, key=lambda t: (t.score if higher else -t.score, -t.number))


def budget_text(search: dict[str, Any]) -> str:
    """The budget every model had, in words."""
    budget = search.get("budget") or {}
    if budget.get("trials"):
        return f"{budget['trials']} trials"
    if budget.get("epochs"):
        return f"{budget['epochs']} training epochs in all (a trial starts only if it fits when run to its end)"
    return "the whole grid"


def search_sections(data: StudyData, ev: Evidence, save: Save) -> list[Section] | None:
    """The search section and its subsections; ``None`` for a study without ``[search]`` or with the fixed
    protocol alone."""
    search = data.spec.get("search")
    if not search or search.get("protocol") == "fixed":
        return None
    metric = search["metric"]
    higher = metric != "val_loss"
    seeds = search["seeds"]
    s = Section("search", "Hyper-parameter search")
    dims = search["dims"]
    protocol = ("Protocol: tuned. " if search["protocol"] == "tuned" else
                "Protocol: both, fixed and tuned side by side (below); the other sections show the tuned runs. ")
    s.blocks.append(para(
        protocol, f"Each model got its own search on the validation split with the same space, searcher "
        f"({search['searcher']}, seed {search['seed']}), pruner ({search['pruner']}) and budget: ",
        code(budget_text(search)), f", each configuration trained on search seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))} and scored by its {metric} (its mean over the search seeds). The best "
        "configuration was then trained over the study's seeds and evaluated once on the test set: the search "
        "never saw the test split (its trials store no test result)."))
    s.blocks.append(Bullets([para(d_text) for d_text in _dim_lines(dims, search, data)]))
    rows = []
    walls: dict[str, float] = {}  # run hash -> seconds: a run shared by the two protocols counts once
    for d in data.settings:
        for r in [*d.trials, *d.runs, *(d.fixed.runs if d.fixed is not None else [])]:
            walls[r.record.hash] = r.record.wall_time or 0.0
        for label in d.labels:
            trials = _trials(d, label, metric)
            if not trials:
                continue
            top = _best(trials, higher)
            rows.append([*([d.setting] if len(data.settings) > 1 else []), label, str(len(trials)),
                         str(sum(t.status == "pruned" for t in trials)),
                         str(sum(t.status == "diverged" for t in trials)), str(sum(t.epochs for t in trials)),
                         "" if top is None else str(top.number + 1),
                         "" if top is None else _value(top.score, metric),
                         "" if top is None else _params(top.params)])
    header = [*(["setting"] if len(data.settings) > 1 else []), "model", "trials", "pruned", "diverged",
              "epochs spent", "best trial", f"best {metric}", "best configuration"]
    s.blocks.append(Table("search", header, rows))
    s.blocks.append(para(
        f"Trials are numbered from 1 in the order they were asked for; a pruned trial stopped early because its "
        f"per-epoch {metric} was poor next to the trials finished before it (its epochs count in the budget). All "
        f"the study's runs, search trials included, took {sum(walls.values()) / 60:.1f} minutes of training (the "
        "sum of their wall times; runs that share a machine's cores in parallel take less time end to end).",
        muted=True))
    out = [s]
    comparison = fixed_vs_tuned_section(data, ev)
    if comparison is not None:
        out.append(comparison)
    out += [sec for sec in (_sensitivity(data, dims, search, save), _history(data, metric, higher, save)) if sec]
    out.append(_trials_section(data, metric))
    return out


def _value(v: float, metric: str) -> str:
    return fmt.pct(v) + " %" if metric == "val_acc" else f"{v:.4f}"


def _dim_lines(dims: list[dict[str, Any]], search: dict[str, Any], data: StudyData) -> list[str]:
    lines = []
    entry_dims = search.get("entry_dims", {})
    for d in dims:
        if d["kind"] == "choices":
            text = f"{d['name']}: one of {', '.join(map(str, d['choices']))}"
        else:
            kind = "log-uniform" if d.get("log") else "uniform"
            kind = f"integer, {kind}" if d["kind"] == "integer" else kind
            text = f"{d['name']}: {kind} on [{d['low']:g}, {d['high']:g}]"
            if d.get("points"):
                text += f", {d['points']} grid points"
        without = [label for label, names in entry_dims.items() if d["name"] not in names]
        if without:
            text += f" (not for {', '.join(without)}: its model has no such option)"
        lines.append(text)
    return lines


def fixed_vs_tuned_section(data: StudyData, ev: Evidence) -> Section | None:
    """The ranking under the fixed and under the tuned protocol side by side (a study with protocol = "both")."""
    if data.fixed is None:
        return None
    from scipy.stats import kendalltau

    from lineup.analysis.stats import holm, mcnemar_test, mean_ci

    fixed = gather(data.fixed)
    tuned_rank = {r.label: r for r in ev.ranking}
    fixed_rank = {r.label: r for r in fixed.ranking}
    best = {label: _best(_trials(data, label, data.spec["search"]["metric"]),
                         data.spec["search"]["metric"] != "val_loss") for label in data.labels}
    cells, pvalues = [], {}
    for label in data.labels:
        a = {r.seed: r for r in data.fixed.of(label) if r.complete and r.predictions is not None}
        b = {r.seed: r for r in data.of(label) if r.complete and r.predictions is not None}
        seeds = [k for k in a if k in b]
        delta = None
        if seeds:
            delta = mean_ci([b[k].record.summary["test_acc"] - a[k].record.summary["test_acc"] for k in seeds])
            pa = [a[k].predictions for k in seeds]
            pb = [b[k].predictions for k in seeds]
            if all(x is not None and y is not None and np.array_equal(x.index, y.index) for x, y in zip(pa, pb,
                                                                                                        strict=True)):
                pvalues[label] = mcnemar_test(np.concatenate([x.pred == x.y for x in pa]),  # type: ignore[union-attr]
                                              np.concatenate([y.pred == y.y for y in pb])).pvalue  # type: ignore
        cells.append((label, delta))
    reject = dict(zip(pvalues, holm(list(pvalues.values()))[0], strict=True)) if pvalues else {}
    rows = []
    for label, delta in cells:
        f, t = fixed_rank.get(label), tuned_rank.get(label)
        fm, tm = fixed.models.get(label), ev.models.get(label)
        top = best.get(label)
        rows.append([label, str(f.rank) if f else "", fmt.ci(fm.stats.get("test_acc")) if fm else "",
                     str(t.rank) if t else "", fmt.ci(tm.stats.get("test_acc")) if tm else "",
                     (fmt.ci(delta, signed=True) + (" *" if reject.get(label) else "")) if delta is not None else "",
                     fmt.pvalue(pvalues.get(label)), "" if top is None else _params(top.params)])
    s = Section("fixed-vs-tuned", "Ranking: fixed against tuned", level=3)
    s.blocks.append(Table("fixed_vs_tuned", ["model", "rank fixed", "test acc % fixed [95% CI]", "rank tuned",
                                             "test acc % tuned [95% CI]", "Δ tuned − fixed, points [95% CI]",
                                             "McNemar p", "tuned configuration"], rows))
    common = [label for label in data.labels if label in fixed_rank and label in tuned_rank]
    lines = []
    if len(common) > 1:
        tau = kendalltau([fixed_rank[c].rank for c in common], [tuned_rank[c].rank for c in common]).statistic
        lines.append(f"Kendall's τ between the two rankings: {tau:.2f} (1: the same order).")
    moved = [f"{c} {fixed_rank[c].rank} → {tuned_rank[c].rank}" for c in common
             if fixed_rank[c].rank != tuned_rank[c].rank]
    lines.append("Rank changes from fixed to tuned: " + ("; ".join(moved) if moved else "none") + ".")
    if fixed.ranking and ev.ranking:
        lines.append(f"Most accurate: {fixed.ranking[0].label} under fixed, {ev.ranking[0].label} under tuned.")
    s.blocks.append(para(" ".join(lines)))
    s.blocks.append(para(
        "Ranks by mean test accuracy over the study's seeds, each protocol ranked on its own with the ranking of the "
        "summary (95% bootstrap intervals over seeds). Δ: mean over seeds of the tuned run's test accuracy minus the "
        "fixed run's of the same seed, with a 95% bootstrap interval over seeds; McNemar p: exact test on the test "
        "examples, pooled over matching seeds; * where it stays significant after Holm's correction over the "
        "models.", muted=True))
    return s


def _points(data: StudyData, label: str, dim: str, metric: str) -> list[figs.Point]:
    out = []
    for run in data.trials:
        if run.label != label:
            continue
        t = run.record.spec["trial"]
        x = t["params"].get(dim)
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            continue
        status = run.record.status
        if status not in ("complete", "pruned", "diverged"):
            continue
        out.append(figs.Point(x=float(x), y=_score(run, metric), status=status, trial=int(t["number"]),
                              epochs=int(run.record.summary.get("epochs_trained", 0))))
    return out


def _sensitivity(data: StudyData, dims: list[dict[str, Any]], search: dict[str, Any], save: Save) -> Section | None:
    numeric = [d for d in dims if d["kind"] != "choices"]
    numeric.sort(key=lambda d: d["name"] != "lr")  # the learning rate first
    if not numeric or not data.trials:
        return None
    s = Section("sensitivity", "Sensitivity", level=3)
    grid = search["searcher"] == "grid"
    for d in numeric:
        points = {label: _points(data, label, d["name"], "val_acc") for label in data.labels}
        points = {k: v for k, v in points.items() if v}
        if not points:
            continue
        fig = figs.sensitivity(points, xlabel=d["name"], log=bool(d.get("log")), ylabel="validation accuracy",
                               percent=True, grid=grid)
        safe = d["name"].replace(".", "_")
        s.blocks.append(Figure(name=f"sensitivity_{safe}", alt=f"validation accuracy against {d['name']}",
                               uri=save(fig, f"sensitivity_{safe}")))
    band = " The band is the range over the search seeds." if grid and len(search["seeds"]) > 1 else ""
    s.blocks.append(para(
        "Validation accuracy of every trial run against the value of each searched dimension, one colour per model "
        "(final weights; a pruned trial where it stopped, hollow; a diverged one as x at the bottom)." + band
        + ("" if grid else " Other dimensions vary from trial to trial, so these are points, not a curve."),
        muted=True))
    return s


def _history(data: StudyData, metric: str, higher: bool, save: Save) -> Section | None:
    points = {label: _points_all(data, label, metric) for label in data.labels}
    points = {k: v for k, v in points.items() if v}
    if not points:
        return None
    s = Section("search-history", "Search history", level=3)
    fig = figs.history(points, ylabel=metric, percent=metric == "val_acc", higher_is_better=higher)
    s.blocks.append(Figure(name="search_history", alt="search history", uri=save(fig, "search_history")))
    s.blocks.append(para(f"Each trial's {metric} (dots; hollow: pruned, where it stopped) and the best complete trial "
                         "so far (line), against the trial number and against the epochs spent.", muted=True))
    return s


def _points_all(data: StudyData, label: str, metric: str) -> list[figs.Point]:
    out = []
    for run in data.trials:
        if run.label == label and run.record.status in ("complete", "pruned", "diverged"):
            t = run.record.spec["trial"]
            out.append(figs.Point(x=0.0, y=_score(run, metric), status=run.record.status, trial=int(t["number"]),
                                  epochs=int(run.record.summary.get("epochs_trained", 0))))
    return out


def _trials_section(data: StudyData, metric: str) -> Section:
    s = Section("trials", "Search trials", level=3)
    rows, classes = [], []
    multi = len(data.settings) > 1
    for d in data.settings:
        for run in d.trials:
            r = run.record
            t = r.spec["trial"]
            score = _score(run, metric)
            rows.append([*([r.setting] if multi else []), r.label, str(t["number"] + 1), str(r.seed), r.hash[:12],
                         r.status, "" if math.isnan(score) else _value(score, metric),
                         str(r.summary.get("epochs_trained", "")), _params(t["params"])])
            classes.append(f"status-{r.status}")
    s.blocks.append(Table("trials", [*(["setting"] if multi else []), "model", "trial", "seed", "run", "status",
                                     metric, "epochs", "configuration"], rows, classes))
    return s
