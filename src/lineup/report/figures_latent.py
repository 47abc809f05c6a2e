"""Figures of the report's "Latent spaces" section (matplotlib, no display): plain arrays in, a Figure out."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def latent_scatter(panels: list[tuple[str, np.ndarray, np.ndarray]], classes: list[str]) -> Figure:
    """One panel per model: its 2-D codes ``(N, 2)`` of test examples, coloured by their class ``(N,)``.

    Args:
        panels: ``(title, codes (N, 2), classes (N,))`` per model.
        classes: class names, index = label.
    """
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows + 0.5), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (title, z, y) in zip(axes.flat, panels, strict=False):
        for c in np.unique(y):
            at = y == c
            name = classes[int(c)] if int(c) < len(classes) else str(c)
            ax.scatter(z[at, 0], z[at, 1], s=6, alpha=0.7, color=cmap(int(c) % cmap.N), label=name, lw=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.grid(alpha=0.3)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 10), frameon=False, markerscale=3)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return fig


def image_panels(title: str, panels: list[tuple[str, np.ndarray]]) -> Figure:
    """Image mosaics ``(H, W)`` or ``(H, W, 3)`` uint8, one above the other, each with its caption.

    The mosaics keep their pixels (nearest-neighbour drawing) and their proportions: each row of the figure is as
    tall as its mosaic is relative to its width.
    """
    heights = [p.shape[0] / p.shape[1] for _, p in panels]
    width = 7.5
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, width * sum(heights) + 0.6 * len(panels) + 0.4),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (caption, image) in zip(axes[:, 0], panels, strict=True):
        gray = image.ndim == 2
        ax.imshow(image, cmap="gray" if gray else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(textwrap.fill(caption, 110), fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
