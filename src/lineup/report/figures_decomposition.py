"""Figures of the error decomposition (matplotlib, no display): stacked risk bars, risk against training-set size,
and decision regions against the Bayes boundary. Each function takes plain arrays and returns a Figure."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


@dataclass(frozen=True)
class Bars:
    """One panel of stacked bars: per model, ``R*``, the approximation error and the estimation error (means), and
    ``R(h)`` with its interval (``low``/``high`` NaN where there is none)."""

    title: str
    models: Sequence[str]
    bayes: float
    approximation: Sequence[float]
    estimation: Sequence[float]
    risk: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]


def decomposition_bars(panels: Sequence[Bars], *, ncols: int = 2) -> Figure:
    """Stacked bars ``R* + approximation + estimation = R(h)``, one panel per data setting.

    A component below zero (within noise of zero, or an optimistic reference) has no height to stack; it is drawn as
    zero and the dot with its error bar marks ``R(h)`` itself, so the bar and the dot disagree exactly then.
    """
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    widest = max(len(p.models) for p in panels)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.5, 0.9 * widest + 2.5) * ncols, 3.9 * nrows + 0.5),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    colors = {"R*": "0.55", "approximation": "tab:orange", "estimation": "tab:blue"}
    for ax, p in zip(axes.flat, panels, strict=False):
        x = np.arange(len(p.models), dtype=np.float64)
        bayes = np.full(len(x), p.bayes)
        approx = np.clip(np.asarray(p.approximation, dtype=np.float64), 0, None)
        est = np.clip(np.asarray(p.estimation, dtype=np.float64), 0, None)
        ax.bar(x, bayes, 0.6, color=colors["R*"], label="Bayes risk R*")
        ax.bar(x, approx, 0.6, bottom=bayes, color=colors["approximation"], label="approximation error")
        ax.bar(x, est, 0.6, bottom=bayes + approx, color=colors["estimation"], label="estimation error")
        risk = np.asarray(p.risk, dtype=np.float64)
        lo, hi = np.asarray(p.low, dtype=np.float64), np.asarray(p.high, dtype=np.float64)
        err = np.vstack([np.where(np.isnan(lo), 0, risk - lo), np.where(np.isnan(hi), 0, hi - risk)])
        ax.errorbar(x, risk, yerr=err, fmt="o", color="black", ms=4, capsize=3, label="R(h), 95% CI")
        top = np.nanmax(np.concatenate([bayes + approx + est, risk, np.where(np.isnan(hi), risk, hi)]))
        ax.set_ylim(0, 1.08 * top)
        ax.set_xticks(x, list(p.models), rotation=30, ha="right", fontsize=8)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_ylabel("test risk")
        ax.set_title(p.title, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    return fig


@dataclass(frozen=True)
class Curve:
    """One model's points along a learning curve: per training-set size, one value per seed."""

    label: str
    sizes: Sequence[int]
    risk: Sequence[Sequence[float]]  # per size: test risk of each seed
    estimation: Sequence[Sequence[float]]  # per size: R(h) - R(h_class) of each seed (empty where unknown)


def risk_curves(groups: Mapping[str, tuple[float, Sequence[Curve]]]) -> Figure:
    """Test risk and estimation error against training-set size, log-log, one row of two panels per group.

    Args:
        groups: ``{title: (R*, curves)}``; lines are means over seeds, bands the range over seeds, the dashed line R*.
            Values at or below zero cannot sit on a log axis and are left out of the estimation panel.
    """
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.9 * len(groups) + 0.5), squeeze=False)
    labels = list(dict.fromkeys(c.label for _, curves in groups.values() for c in curves))
    cmap = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    for (risk_ax, est_ax), (title, (bayes, curves)) in zip(axes, groups.items(), strict=True):
        for curve in curves:
            color = cmap(labels.index(curve.label) % cmap.N)
            for ax, values in ((risk_ax, curve.risk), (est_ax, curve.estimation)):
                n, mean, lo, hi = [], [], [], []
                for size, seeds in zip(curve.sizes, values, strict=True):
                    v = np.asarray(seeds, dtype=np.float64)
                    if v.size and v.mean() > 0:
                        n.append(size)
                        mean.append(float(v.mean()))
                        positive = v[v > 0]
                        lo.append(float(positive.min()))  # the mean is positive, so some seed is
                        hi.append(float(v.max()))
                if not n:
                    continue
                ax.plot(n, mean, "o-", color=color, label=curve.label, lw=1.5, ms=4)
                if len(n) > 1:
                    ax.fill_between(n, lo, hi, color=color, alpha=0.15, lw=0)
        risk_ax.axhline(bayes, color="black", ls="--", lw=1, label="Bayes risk R*")
        risk_ax.set_title(f"{title}: test risk R(h)", fontsize=10)
        est_ax.set_title(f"{title}: estimation error R(h) − R(h_class)", fontsize=10)
        for ax in (risk_ax, est_ax):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training examples n")
            ax.grid(alpha=0.3, which="both")
    handles, names = [], []
    for ax in axes.flat:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            if name not in names:
                handles.append(h)
                names.append(name)
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), frameon=False)
    rows = math.ceil(len(names) / 5)
    fig.tight_layout(rect=(0, (0.2 + 0.25 * rows) / fig.get_figheight(), 1, 1))
    return fig


@dataclass(frozen=True)
class Regions:
    """One model's decisions on an ``n x n`` grid (row ``i`` is the ``i``-th y value) and the panel's title."""

    title: str
    predict: np.ndarray  # (n, n) int


def decision_regions(panels: Sequence[Regions], bayes: np.ndarray, extent: Sequence[float], classes: Sequence[str], *,
                     title: str, ncols: int = 4) -> Figure:
    """Each model's predicted class over the plane, the Bayes classifier's boundary drawn over it in black.

    Args:
        panels: one per model.
        bayes: ``(n, n)`` Bayes decisions on the same grid.
        extent: ``(x_min, x_max, y_min, y_max)`` of the grid.
        classes: class names, index = label.
        title: of the whole figure.
    """
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    width = max(3.3 * ncols, 5.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.3 * nrows + 0.8), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    k = len(classes)
    cmap = ListedColormap([plt.get_cmap("tab10")(i % 10) for i in range(k)])
    n = bayes.shape[0]
    x0, x1, y0, y1 = (float(e) for e in extent)
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    for ax, p in zip(axes.flat, panels, strict=False):
        ax.imshow(p.predict, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=-0.5, vmax=k - 0.5,
                  alpha=0.45, interpolation="nearest", aspect="auto")
        for c in range(k):  # each class's Bayes region outlined: every boundary is drawn, whatever borders what
            inside = (bayes == c).astype(np.float64)
            if 0 < inside.sum() < inside.size:
                ax.contour(xs, ys, inside, levels=[0.5], colors="black", linewidths=1.0)
        ax.set_title(p.title, fontsize=8.5)
        ax.tick_params(labelsize=7)
    handles: list[matplotlib.artist.Artist] = [matplotlib.patches.Patch(color=cmap(i), alpha=0.45, label=name)
                                               for i, name in enumerate(classes)]
    handles.append(matplotlib.lines.Line2D([], [], color="black", lw=1.0, label="Bayes boundary"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    fig.suptitle(textwrap.fill(title, int(width * 13)), fontsize=10)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig
