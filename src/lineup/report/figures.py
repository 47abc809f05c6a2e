"""Figures of a study report (matplotlib, no display). Each function takes plain arrays and returns a Figure."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lineup.analysis.representations import LayerStability  # noqa: E402
from lineup.analysis.tables import curve_band  # noqa: E402


@dataclass(frozen=True)
class Panel:
    """One axes of curves: ``{model label: [one curve per seed]}``, drawn as mean line and min-max band.

    ``x``: optional ``{model label: [one x curve per seed]}`` (e.g. cumulative seconds); by default epochs 1..E.
    """

    title: str
    series: Mapping[str, list[list[float]]]
    ylabel: str = ""
    xlabel: str = "epoch"
    percent: bool = False
    log: bool = False
    zero_line: bool = False
    x: Mapping[str, list[list[float]]] | None = None


def band_panels(panels: list[Panel], *, labels: list[str], baseline: str | None = None, ncols: int = 2,
                height: float = 3.6) -> Figure:
    """A grid of curve panels with one shared legend; each model keeps its colour (its place in ``labels``)."""
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, height * nrows + 0.4), squeeze=False)
    cmap = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, p in zip(axes.flat, panels, strict=False):
        for i, label in enumerate(labels):
            seeds = [c for c in p.series.get(label, []) if len(c)]
            if not seeds:
                continue
            mean, lo, hi = curve_band(seeds)
            x = np.arange(1, len(mean) + 1, dtype=np.float64)
            if p.x is not None and p.x.get(label):
                x = curve_band([c for c in p.x[label] if len(c)])[0][: len(mean)]
                mean, lo, hi = mean[: len(x)], lo[: len(x)], hi[: len(x)]
            color = cmap(i % cmap.N)
            ax.plot(x, mean, "--" if label == baseline else "-", color=color, label=label, lw=1.6)
            if len(seeds) > 1:
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        if p.zero_line:
            ax.axhline(0, color="0.4", lw=0.8)
        if p.log:
            ax.set_yscale("log")
        if p.percent:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        if p.x is None:  # epochs: whole numbers only
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(p.title, fontsize=10)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        ax.grid(alpha=0.3)
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    legend_rows = math.ceil(len(names) / 4)
    fig.legend(handles, names, loc="lower center", ncol=min(max(len(names), 1), 4), frameon=False)
    fig.tight_layout(rect=(0, min(0.3, (0.3 + 0.25 * legend_rows) / fig.get_figheight()), 1, 1))
    return fig


def learning_curves(curves: dict[str, dict[str, list[list[float]]]], *, baseline: str | None = None) -> Figure:
    """Per-epoch metrics of every model: the mean over seeds as a line, the min-max over seeds as a band.

    Args:
        curves: ``{model label: {metric: [one list per seed]}}`` with metrics among train_loss, val_loss,
            train_acc, val_acc.
        baseline: drawn dashed.
    """
    names = [("train_loss", "training loss"), ("val_loss", "validation loss"),
             ("train_acc", "training accuracy"), ("val_acc", "validation accuracy")]
    panels = [Panel(title, {label: by.get(metric, []) for label, by in curves.items()}, percent="acc" in metric)
              for metric, title in names]
    return band_panels(panels, labels=list(curves), baseline=baseline)


def step_losses(losses: dict[str, list[np.ndarray]], *, window: int = 50) -> Figure:
    """Training loss of every step (moving average over ``window`` steps), first seed of each model."""
    fig, ax = plt.subplots(figsize=(11, 4))
    cmap = plt.get_cmap("tab20" if len(losses) > 10 else "tab10")
    for i, (label, per_seed) in enumerate(losses.items()):
        if not per_seed or per_seed[0].size == 0:
            continue
        s = per_seed[0]
        w = max(1, min(window, s.size // 10 or 1))
        smooth = np.convolve(s, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w, s.size + 1), smooth, color=cmap(i % cmap.N), label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss ({window}-step mean)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def confusion(cm: np.ndarray, classes: list[str], *, title: str) -> Figure:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class)."""
    k = len(classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = cm / cm.sum(axis=1, keepdims=True)
    size = max(4.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, f"{frac[i, j]:.2f}".lstrip("0") if frac[i, j] < 1 else "1", ha="center",
                        va="center", fontsize=7, color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(textwrap.fill(title, 60), fontsize=9)
    fig.tight_layout()
    return fig


def per_class(acc: np.ndarray, models: list[str], classes: list[str]) -> Figure:
    """Heat map of per-class test accuracy: one row per model, one column per class."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(classes) + 3), 0.42 * len(models) + 2))
    finite = acc[np.isfinite(acc)]
    lo = float(finite.min()) if finite.size else 0.0
    ax.imshow(acc, cmap="viridis", vmin=lo, vmax=1.0, aspect="auto")
    for i in range(len(models)):
        for j in range(len(classes)):
            if np.isfinite(acc[i, j]):
                ax.text(j, i, f"{100 * acc[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="black" if acc[i, j] > (lo + 1) / 2 else "white")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.set_title("per-class test accuracy (%), mean over seeds", fontsize=10)
    fig.tight_layout()
    return fig


def failure_gallery(images: list[np.ndarray], captions: list[str], *, title: str, cols: int = 8) -> Figure:
    """A grid of images ``(C, H, W)`` uint8 with a caption under each."""
    n = max(len(images), 1)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.75 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cap in zip(axes.flat, images, captions, strict=False):
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray_r", vmin=0, vmax=255)
        else:
            ax.imshow(np.transpose(img, (1, 2, 0)))
        ax.set_title(cap, fontsize=6.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cka_heatmap(cka: np.ndarray, labels: list[str], pairs: np.ndarray, *,
                title: str = "linear CKA of test-set representations") -> Figure:
    """Heat map of mean linear CKA between models; the diagonal compares distinct seeds of one model."""
    m = len(labels)
    size = max(4.5, 0.7 * m + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(np.ma.masked_invalid(cka), cmap="magma", vmin=0, vmax=1)
    for i in range(m):
        for j in range(m):
            text = f"{cka[i, j]:.2f}" if np.isfinite(cka[i, j]) else "1 seed" if i == j and not pairs[i, j] else "n/a"
            dark = np.isfinite(cka[i, j]) and cka[i, j] < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(m), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(m), labels, fontsize=8)
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def across_settings(means: dict[str, list[float | None]], lows: dict[str, list[float | None]],
                    highs: dict[str, list[float | None]], settings: list[str], *, baseline: str | None = None
                    ) -> Figure:
    """Mean test accuracy of every model in every data setting, with its interval over seeds as error bars.

    The settings are categories, not points on a scale, so each model is a row of unjoined markers (a dot plot):
    a line between two settings would suggest values in between. Bars would hide the differences of a few
    tenths of a point that matter here, since a bar has to start at zero.

    Args:
        means, lows, highs: ``{model label: one value per setting}`` (None where the model has no result).
        settings: the settings' names, in the order of the x axis.
    """
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(settings) + 3), 4.2))
    cmap = plt.get_cmap("tab20" if len(means) > 10 else "tab10")
    x = np.arange(len(settings), dtype=np.float64)
    width = 0.6 / max(len(means), 1)
    for i, label in enumerate(means):
        m = np.array([np.nan if v is None else v for v in means[label]], dtype=np.float64)
        lo = np.array([np.nan if v is None else v for v in lows[label]], dtype=np.float64)
        hi = np.array([np.nan if v is None else v for v in highs[label]], dtype=np.float64)
        xs = x + (i - (len(means) - 1) / 2) * width  # side by side, so intervals do not hide each other
        err = np.vstack([np.where(np.isnan(lo), 0, m - lo), np.where(np.isnan(hi), 0, hi - m)])
        ax.errorbar(xs, m, yerr=err, fmt="s" if label == baseline else "o", color=cmap(i % cmap.N), label=label,
                    lw=1.2, ms=5 if label == baseline else 4, capsize=3)
    ax.set_xticks(x, settings, rotation=20, ha="right", fontsize=8)
    for edge in x[:-1] + 0.5:  # a faint rule between settings, so each group reads as one
        ax.axvline(edge, color="0.85", lw=0.8)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy by data setting (mean and 95% interval over seeds)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))  # clear of every marker
    fig.tight_layout()
    return fig


def layer_stability(stability: Mapping[str, list[LayerStability]]) -> Figure:
    """Linear CKA between seeds, layer by layer: one line per model over relative depth, each point a layer
    (named beside it), the bar from the least to the most similar pair of seeds."""
    fig, ax = plt.subplots(figsize=(10, 4.4))
    cmap = plt.get_cmap("tab20" if len(stability) > 10 else "tab10")
    named: set[tuple[float, str]] = set()  # variants of one family share their layers: name each place once
    for i, (label, layers) in enumerate(stability.items()):
        color = cmap(i % cmap.N)
        x = np.array([e.depth for e in layers])
        y = np.array([e.mean for e in layers])
        err = np.vstack([y - np.array([e.low for e in layers]), np.array([e.high for e in layers]) - y])
        ax.errorbar(x, y, yerr=np.nan_to_num(err), fmt="o-", color=color, label=label, lw=1.4, ms=4, capsize=2)
        for e in layers:
            if np.isfinite(e.mean) and (e.depth, e.layer) not in named:
                named.add((e.depth, e.layer))
                ax.annotate(e.layer, (e.depth, e.mean), textcoords="offset points", xytext=(3, -9), fontsize=6.5,
                            color=color)
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("relative depth (i-th of a model's L layers at i / L)")
    ax.set_ylabel("linear CKA between seeds")
    ax.set_title("how alike each layer is across seeds (mean, min-max over seed pairs)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(ncol=min(max(len(stability), 1), 4), fontsize=8, frameon=False, loc="lower left")
    fig.tight_layout()
    return fig
