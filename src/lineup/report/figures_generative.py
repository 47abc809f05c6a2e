"""Figures of the report's "Generative models" section (matplotlib, no display): plain arrays in, a Figure out."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def grid_row(title: str, grids: list[tuple[str, np.ndarray]]) -> Figure:
    """Sample grids ``(H, W)`` or ``(H, W, 3)`` uint8 side by side, each under its caption (e.g. its epoch); pixels
    are drawn as they are (nearest neighbour)."""
    n = max(len(grids), 1)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.6 + 0.5), squeeze=False)
    for ax, (caption, image) in zip(axes[0], grids, strict=False):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
