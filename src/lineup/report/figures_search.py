"""Figures of the hyper-parameter search section: sensitivity curves and search histories (matplotlib, no display)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


@dataclass(frozen=True)
class Point:
    """One trial run: the value of the dimension drawn, its validation score (NaN when diverged), its state, its
    trial number and the epochs it trained."""

    x: float
    y: float
    status: str  # complete, pruned or diverged
    trial: int = 0
    epochs: int = 0


def _colors(n: int) -> list[tuple[float, ...]]:
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def sensitivity(points: dict[str, list[Point]], *, xlabel: str, log: bool, ylabel: str, percent: bool,
                grid: bool) -> Figure:
    """Validation score against one searched dimension, one colour per model.

    Args:
        points: model label -> its trial runs.
        grid: the values form a grid (several runs may share one): drawn as the mean over runs with a min-max band
            (the spread over search seeds); otherwise as points, since the other dimensions vary from trial to trial.
    """
    fig, ax = plt.subplots(figsize=(9, 4.4))
    finite = [p.y for ps in points.values() for p in ps if math.isfinite(p.y)]
    floor = min(finite) if finite else 0.0
    for color, (label, ps) in zip(_colors(len(points)), points.items(), strict=True):
        done = [p for p in ps if p.status != "diverged" and math.isfinite(p.y)]
        if grid and done:
            xs = sorted({p.x for p in done})
            ys = [[p.y for p in done if p.x == x] for x in xs]
            mean = np.array([np.mean(v) for v in ys])
            ax.plot(xs, mean, "-o", color=color, label=label, lw=1.5, ms=3.5)
            if any(len(v) > 1 for v in ys):
                ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=color, alpha=0.18, lw=0)
        else:
            full = [p for p in done if p.status == "complete"]
            ax.plot([p.x for p in full], [p.y for p in full], "o", color=color, label=label, ms=4.5)
        pruned = [p for p in done if p.status == "pruned"]
        if pruned:
            ax.plot([p.x for p in pruned], [p.y for p in pruned], "o", mfc="none", color=color, ms=5.5)
        diverged = [p for p in ps if p.status == "diverged" or not math.isfinite(p.y)]
        if diverged:
            ax.plot([p.x for p in diverged], [floor] * len(diverged), "x", color=color, ms=6)
    if log:
        ax.set_xscale("log")
    if percent:
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"sensitivity to {xlabel} (hollow: pruned, score when stopped; x: diverged)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncol=min(max(len(points), 1), 4), fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def history(points: dict[str, list[Point]], *, ylabel: str, percent: bool, higher_is_better: bool) -> Figure:
    """Each model's search over time: every trial's score (hollow: pruned; x: diverged) and the best so far, against
    the trial number and against the training epochs spent."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for color, (label, ps) in zip(_colors(len(points)), points.items(), strict=True):
        trials: dict[int, list[Point]] = {}
        for p in ps:
            trials.setdefault(p.trial, []).append(p)
        order = sorted(trials)
        score = [float(np.mean([p.y for p in trials[t]])) if all(p.status == "complete" for p in trials[t])
                 else math.nan for t in order]
        spent = np.cumsum([sum(p.epochs for p in trials[t]) for t in order])
        best, top = [], -math.inf if higher_is_better else math.inf
        for v in score:
            if math.isfinite(v) and (v > top if higher_is_better else v < top):
                top = v
            best.append(top if math.isfinite(top) else math.nan)
        number = np.array(order) + 1
        for ax, x in zip(axes, (number, spent), strict=True):
            ax.step(x, best, where="post", color=color, label=label, lw=1.6)
            ax.plot(x, score, "o", color=color, ms=3.5, alpha=0.7)
            pruned = [i for i, t in enumerate(order) if any(p.status == "pruned" for p in trials[t])]
            ax.plot(x[pruned], [trials[order[i]][0].y for i in pruned], "o", mfc="none", color=color, ms=4.5)
    for ax, xlabel in zip(axes, ("trial", "training epochs spent (all trials so far)"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if percent:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0].set_title("score of each trial and best so far", fontsize=10)
    axes[1].set_title("the same against the budget spent", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(max(len(labels), 1), 4), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
