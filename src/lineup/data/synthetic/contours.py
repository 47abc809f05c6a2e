"""Contour plots of random polynomials, labelled by degree: an image task generated locally, without files.

Each image shows the level sets of ``f(u, v) = sum_{i + j <= d} c_ij u^i v^j`` on ``[-1, 1]^2`` with independent
standard-normal coefficients ``c_ij``; the label is the degree ``d`` (exactly ``d`` with probability 1, since the
top coefficients are almost surely not zero). Degree 1 draws parallel lines, degree 2 conics, higher degrees
ever more winding curves. ``f`` is standardised over the image before its levels are drawn, so neither the
number of lines nor their spacing depends on the scale of the coefficients, only on the shape of ``f``. The
posterior of the degree given the image has no closed form: these images carry no known distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lineup.data.synthetic._distribution import BLOCK, sample_blocks

MAX_DEGREE = 5


def monomials(size: int, max_degree: int = MAX_DEGREE) -> tuple[np.ndarray, np.ndarray]:
    """The monomials ``u^i v^j`` with ``i + j <= max_degree`` on the pixel centres of a ``size x size`` grid.

    Returns:
        ``(values (T, size * size), degree (T,))``, ``T = (max_degree + 1)(max_degree + 2) / 2``, in the order
        ``(i, j) = (0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2), ...`` (by total degree); ``u`` runs along the
        columns and ``v`` down the rows.
    """
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    v, u = np.meshgrid(c, c, indexing="ij")
    terms = [(i, t - i) for t in range(max_degree + 1) for i in range(t, -1, -1)]
    values = np.stack([(u**i * v**j).ravel() for i, j in terms])
    return values, np.array([i + j for i, j in terms])


def render_contours(f: np.ndarray, level_spacing: float) -> np.ndarray:
    """Level lines of the functions ``f`` (``(N, H, W)`` values on a grid), as uint8 images ``(N, H, W)``.

    ``f`` is standardised per image; a pixel is drawn (255) when a level ``k * level_spacing`` of the standardised
    ``f`` lies between it and its right or lower neighbour, else it is 0, so every level line is one pixel wide.

    Example:
        >>> ramp = np.tile(np.arange(6.0), (1, 2, 1))  # f = column index, standardised: (c - 2.5) / 1.708
        >>> render_contours(ramp, 1.0)[0, 0].tolist()  # levels -1, 0, 1 fall between columns 0|1, 2|3, 4|5
        [255, 0, 255, 0, 255, 0]
    """
    g = f - f.mean(axis=(1, 2), keepdims=True)
    g = g / np.maximum(g.std(axis=(1, 2), keepdims=True), np.finfo(np.float64).tiny)
    band = np.floor(g / level_spacing)
    line = np.zeros(f.shape, dtype=bool)
    line[:, :, :-1] |= band[:, :, :-1] != band[:, :, 1:]
    line[:, :-1, :] |= band[:, :-1, :] != band[:, 1:, :]
    return np.where(line, 255, 0).astype(np.uint8)


@dataclass(frozen=True)
class PolynomialContours:
    """Images ``(1, size, size)`` uint8 of the level lines of a random polynomial of each degree in ``degrees``.

    Attributes:
        degrees: the degrees, one class each, in label order; each in ``1..MAX_DEGREE``. Labels are drawn with
            equal probability.
        size: image side in pixels.
        level_spacing: distance between drawn levels, in standard deviations of ``f`` over the image (0.5 draws
            about 8 lines across a linear ``f``).
    """

    degrees: tuple[int, ...] = (1, 2, 3, 4, 5)
    size: int = 40
    level_spacing: float = 0.5

    def __post_init__(self) -> None:
        if not self.degrees or len(set(self.degrees)) != len(self.degrees):
            raise ValueError(f"degrees must be distinct, got {list(self.degrees)}")
        if not all(1 <= d <= MAX_DEGREE for d in self.degrees):
            raise ValueError(f"degrees must be in 1..{MAX_DEGREE}, got {list(self.degrees)}")
        if self.size < 2 or not self.level_spacing > 0:
            raise ValueError(f"need size >= 2 and level_spacing > 0, got {self.size}, {self.level_spacing}")

    @property
    def num_classes(self) -> int:
        return len(self.degrees)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    @property
    def class_names(self) -> list[str]:
        return [f"degree {d}" for d in self.degrees]

    def sample(self, n: int, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images ``(n, 1, size, size)`` uint8 with labels ``(n,)`` int64; a prefix of any larger sample."""
        values, term_degree = monomials(self.size, max(self.degrees))
        degrees = np.asarray(self.degrees)

        def draw(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.integers(0, len(degrees), BLOCK)[:m]
            coef = rng.standard_normal((BLOCK, len(term_degree)))[:m]
            coef[term_degree[None, :] > degrees[y][:, None]] = 0.0  # keep i + j <= d
            f = (coef @ values).reshape(m, self.size, self.size)  # (m, H, W)
            return render_contours(f, self.level_spacing), y

        parts = sample_blocks(n, seed, draw)
        if not parts:
            return np.empty((0, *self.input_shape), dtype=np.uint8), np.empty(0, dtype=np.int64)
        x = np.concatenate([p[0] for p in parts])[:, None]  # (n, 1, H, W)
        return x, np.concatenate([p[1] for p in parts]).astype(np.int64)
