"""Controlled distortions of any dataset: class imbalance, label noise and perturbed inputs.

A study asks for them in its ``[data.distortions]`` table, one sub-table per distortion::

    [data.distortions]
    imbalance   = { label = 1, share = 0.9 }                 # label 1 is 90% of the examples
    label_noise = { rate = 0.2 }                             # 20% of the labels replaced by another class
    input_noise = { std = 0.1, apply_to = "all" }            # Gaussian noise, std in units of pixel / 255
    affine      = { degrees = 15, translate = 0.1, scale = [0.9, 1.1] }
    erasing     = { probability = 0.5, area = [0.02, 0.2] }  # random erasing (Zhong et al., 2020)
    blur        = { sigma = 1.0 }                            # Gaussian blur, sigma in pixels

Each takes ``apply_to``: ``"train"`` (the default) distorts the training and the validation split, which is
held out of the training data and so shares its distribution; ``"all"`` distorts the test split too. Labels
refer to the task's classes, i.e. after ``classes`` has relabelled them ``0..k-1``.

They are applied once, when the data is loaded, in a fixed order: ``imbalance`` first, to the pools the
splits are drawn from (so the validation split and a ``train_size`` subset inherit the class shares), then
``label_noise``, then the input perturbations in the order an image is formed: ``affine``, ``erasing``,
``blur``, ``input_noise``. Inputs stay uint8: each perturbation is computed in float, rounded and clipped to
0..255. Every random draw comes from a generator seeded by ``(split_seed, distortion, split)``, so the
distorted data is a pure function of the study's data settings, and one distortion's draws do not change
when another is added. Every distortion is described in the bundle's notes and changes its version.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lineup._registry import did_you_mean
from lineup._schema import opt, parse_section
from lineup.data._types import Split
from lineup.data.tasks import stratified_subsample
from lineup.errors import SpecError

APPLY_TO = ("train", "all")
_APPLY_TO_HELP = 'which splits: "train" (training and validation) or "all" (test too)'

_CHUNK = 4096  # images processed in float at a time, to bound memory on large datasets


@dataclass(frozen=True)
class Imbalance:
    label: int = opt(..., "the class (0..k-1, after `classes`) whose share is set", min=0)
    share: float = opt(..., "its share of each distorted split, in (0, 1), reached by dropping examples", gt=0.0)
    apply_to: str = opt("train", _APPLY_TO_HELP, choices=APPLY_TO)


@dataclass(frozen=True)
class LabelNoise:
    rate: float = opt(..., "share of labels replaced by a different class drawn uniformly", gt=0.0, max=1.0)
    apply_to: str = opt("train", _APPLY_TO_HELP, choices=APPLY_TO)


@dataclass(frozen=True)
class InputNoise:
    std: float = opt(..., "standard deviation of the additive Gaussian noise, in units of pixel / 255", gt=0.0)
    apply_to: str = opt("train", _APPLY_TO_HELP, choices=APPLY_TO)


@dataclass(frozen=True)
class Affine:
    degrees: float = opt(0.0, "largest rotation either way, in degrees", min=0.0, max=180.0)
    translate: float = opt(0.0, "largest shift either way, as a fraction of the width and the height", min=0.0, max=1.0)
    scale: list[float] = opt([1.0, 1.0], "range [low, high] of the zoom factor", gt=0.0)
    apply_to: str = opt("train", _APPLY_TO_HELP, choices=APPLY_TO)


@dataclass(frozen=True)
class Erasing:
    probability: float = opt(0.5, "chance that an image gets an erased rectangle", gt=0.0, max=1.0)
    area: list[float] = opt([0.02, 0.33], "range [low, high] of the rectangle's share of the image", gt=0.0, max=1.0)
    aspect: list[float] = opt([0.3, 3.3], "range [low, high] of its height / width, drawn log-uniformly", gt=0.0)
    value: int = opt(0, "the grey level (0..255) the rectangle is filled with", min=0, max=255)
    apply_to: str = opt("train", _APPLY_TO_HELP, choices=APPLY_TO)


@dataclass(frozen=True)
class Blur:
    sigma: float = opt(..., "standard deviation of the Gaussian kernel, in pixels", gt=0.0)
    apply_to: str = opt("train", _APPLY_TO_HELP, choices=APPLY_TO)


# In the order they are applied; the position is also each one's stream in the random generator's seed.
KINDS: dict[str, type] = {
    "imbalance": Imbalance,
    "label_noise": LabelNoise,
    "affine": Affine,
    "erasing": Erasing,
    "blur": Blur,
    "input_noise": InputNoise,
}
_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Distortions:
    """The validated ``[data.distortions]`` table: each distortion's settings, or None where not asked for."""

    imbalance: Imbalance | None = None
    label_noise: LabelNoise | None = None
    affine: Affine | None = None
    erasing: Erasing | None = None
    blur: Blur | None = None
    input_noise: InputNoise | None = None

    @classmethod
    def parse(cls, table: Mapping[str, Any] | None) -> Distortions:
        """Validate ``[data.distortions]``.

        Raises:
            SpecError: an unknown distortion or setting, a wrong type or a value out of range; the message
                names the key (e.g. ``data.distortions.label_noise.rate``) and what is allowed.
        """
        found = {}
        for name, settings in (table or {}).items():
            if name not in KINDS:
                raise SpecError(
                    f"unknown distortion {name!r}.{did_you_mean(name, list(KINDS))} Allowed: {', '.join(KINDS)}.",
                    key=f"data.distortions.{name}",
                )
            found[name] = parse_section(KINDS[name], settings, key=f"data.distortions.{name}")
        for name, ranged in (("affine", "scale"), ("erasing", "area"), ("erasing", "aspect")):
            if name in found:
                low_high = getattr(found[name], ranged)
                if len(low_high) != 2 or low_high[0] > low_high[1]:
                    raise SpecError(
                        f"expected [low, high] with low <= high, got {low_high}",
                        key=f"data.distortions.{name}.{ranged}",
                    )
        if "imbalance" in found and not found["imbalance"].share < 1.0:
            raise SpecError(
                f"share must be below 1 (all other classes gone), got {found['imbalance'].share}",
                key="data.distortions.imbalance.share",
            )
        affine = found.get("affine")
        if affine is not None and not (affine.degrees or affine.translate or affine.scale != [1.0, 1.0]):
            raise SpecError(
                "this affine distortion changes nothing: set degrees, translate or scale",
                key="data.distortions.affine",
            )
        return cls(**found)

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in KINDS)

    def to_dict(self) -> dict[str, Any]:
        """The resolved settings (defaults filled in), for the data version."""
        return {name: dataclasses.asdict(d) for name in KINDS if (d := getattr(self, name)) is not None}

    def check_classes(self, class_names: list[str]) -> None:
        """Fail early when a setting does not fit the task's classes."""
        k = len(class_names)
        if self.imbalance is not None and self.imbalance.label >= k:
            raise SpecError(
                f"label {self.imbalance.label} is not a class of this task; its labels are "
                + ", ".join(f"{i} ({name})" for i, name in enumerate(class_names)),
                key="data.distortions.imbalance.label",
            )
        if self.label_noise is not None and k < 2:
            raise SpecError("label noise needs at least two classes", key="data.distortions.label_noise")

    def rebalance(
        self, rows: np.ndarray, y: np.ndarray, *, split: str, class_names: list[str], seed: int
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Drop examples of the ``train`` or ``test`` pool until the imbalance's class has its share.

        Returns:
            The kept rows and labels (in their original order) and a line for the notes, if anything changed.
        """
        imb = self.imbalance
        if imb is None or (split == "test" and imb.apply_to == "train"):
            return rows, y, []
        keep = imbalance_subsample(y, imb.label, imb.share, seed=_seed(seed, "imbalance", split))
        n_class = int((y == imb.label).sum())
        kept_class = int((y[keep] == imb.label).sum())
        what = "training and validation pool" if split == "train" else "test split"
        note = (
            f"imbalance: class {imb.label} ({class_names[imb.label]}) made {imb.share:.0%} of the {what} by "
            f"dropping examples: kept {kept_class:,} of its {n_class:,} and {len(keep) - kept_class:,} of the "
            f"other {len(y) - n_class:,} (split seed {seed})"
        )
        return rows[keep], y[keep], [note]

    def apply(self, splits: dict[str, Split], *, num_classes: int, seed: int) -> tuple[dict[str, Split], list[str]]:
        """``splits`` (``train``, ``val``, ``test``) with the label and input distortions applied, and notes."""
        notes = []
        out = dict(splits)
        for name in KINDS:
            d = getattr(self, name)
            if d is None or name == "imbalance":  # imbalance: applied to the pools by rebalance
                continue
            targets = [s for s in _SPLITS if s != "test" or d.apply_to == "all"]
            counts = []
            for split in targets:
                s = out[split]
                if not len(s):
                    continue
                rng = np.random.default_rng(_seed(seed, name, split))
                if name == "label_noise":
                    y, n = flip_labels(s.y.numpy(), d.rate, num_classes, rng)
                    out[split] = Split(s.x, torch.from_numpy(y), s.index)
                    counts.append(f"{n:,} of {len(s):,} {split}")
                else:
                    out[split] = Split(_PERTURB[name](s.x, d, rng), s.y, s.index)
                    counts.append(f"{len(s):,} {split}")
            notes.append(f"{_describe(name, d)}: {', '.join(counts)} (split seed {seed})")
        return out, notes


def imbalance_subsample(y: np.ndarray, label: int, share: float, *, seed: int) -> np.ndarray:
    """Sorted positions of the largest subset of ``y`` in which ``label`` makes up ``share`` of the examples.

    When ``label`` is rarer than ``share``, all its examples stay and the others are subsampled (stratified,
    so they keep their proportions among themselves); otherwise all others stay and ``label``'s are
    subsampled. Counts are rounded half up.

    Example:
        >>> y = np.array([0] * 6 + [1] * 4)
        >>> np.bincount(y[imbalance_subsample(y, 1, 0.8, seed=0)]).tolist()  # 4 ones, 1 zero: 4 / 5 = 80%
        [1, 4]

    Raises:
        SpecError: the share cannot be reached with at least one example of each side.
    """
    is_label = y == label
    n_label, n_other = int(is_label.sum()), int((~is_label).sum())
    label_pos, other_pos = np.flatnonzero(is_label), np.flatnonzero(~is_label)
    if n_label and n_label / len(y) <= share:
        keep_other = math.floor(n_label * (1 - share) / share + 0.5)
        keep_label = n_label
    else:
        keep_label = math.floor(n_other * share / (1 - share) + 0.5)
        keep_other = n_other
    if not (1 <= keep_label <= n_label and 1 <= keep_other <= n_other):
        raise SpecError(
            f"a share of {share:g} for class {label} cannot be reached with {n_label:,} examples of it and "
            f"{n_other:,} of the others while keeping at least one of each",
            key="data.distortions.imbalance.share",
        )
    rng = np.random.default_rng(seed)
    kept_label = np.sort(rng.permutation(label_pos)[:keep_label])
    kept_other = other_pos[stratified_subsample(y[other_pos], keep_other, seed=seed)]
    return np.sort(np.concatenate([kept_label, kept_other])).astype(np.int64)


def flip_labels(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Symmetric label noise: ``round(rate · N)`` labels, drawn at random, each replaced by another class.

    The new class is uniform over the ``num_classes - 1`` others, so the noise is symmetric (Angluin & Laird,
    1988) and exactly ``round(rate · N)`` labels are wrong.

    Returns:
        The noisy labels (a new array) and the number changed.
    """
    n = math.floor(rate * len(y) + 0.5)
    noisy = np.array(y, dtype=np.int64)
    which = rng.choice(len(y), size=n, replace=False)
    noisy[which] = (noisy[which] + rng.integers(1, num_classes, size=n)) % num_classes
    return noisy, n


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def add_noise(x: torch.Tensor, d: InputNoise, rng: np.random.Generator) -> torch.Tensor:
    """``x`` + N(0, (255 · std)²) per pixel, rounded and clipped to 0..255."""
    out = torch.empty_like(x)
    for lo in range(0, len(x), _CHUNK):
        chunk = x[lo : lo + _CHUNK]
        noise = torch.from_numpy(rng.standard_normal(tuple(chunk.shape), dtype=np.float32))
        out[lo : lo + _CHUNK] = _to_uint8(chunk.to(torch.float32) + noise * (255.0 * d.std))
    return out


def random_affine(x: torch.Tensor, d: Affine, rng: np.random.Generator) -> torch.Tensor:
    """Each image rotated, zoomed and shifted about its centre by its own random amounts; new pixels are 0.

    The parameters are drawn uniformly: angle in ``±degrees``, zoom in ``scale``, shift in ``±translate``
    of the width and height. Sampling is bilinear.
    """
    n, _, h, w = x.shape
    angle = np.deg2rad(rng.uniform(-d.degrees, d.degrees, n))
    zoom = rng.uniform(d.scale[0], d.scale[1], n)
    shift = rng.uniform(-d.translate, d.translate, (n, 2)) * 2  # in grid units, where the image spans [-1, 1]
    # affine_grid maps each output position to the input position it samples: the inverse of rotating by
    # the angle, zooming and shifting. Grid units differ along x and y on a non-square image, hence h / w.
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.empty((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = -sin * w / h, cos
    theta[:, :, 2] = -np.einsum("nij,nj->ni", theta[:, :, :2], shift)
    theta_t = torch.from_numpy(theta)
    out = torch.empty_like(x)
    for lo in range(0, n, _CHUNK):
        chunk = x[lo : lo + _CHUNK].to(torch.float32)
        grid = F.affine_grid(theta_t[lo : lo + _CHUNK], list(chunk.shape), align_corners=False)
        sampled = F.grid_sample(chunk, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[lo : lo + _CHUNK] = _to_uint8(sampled)
    return out


def random_erasing(x: torch.Tensor, d: Erasing, rng: np.random.Generator) -> torch.Tensor:
    """Random erasing (Zhong, Zheng, Kang, Li & Yang, 2020, arXiv:1708.04896): one filled rectangle per image.

    With ``probability``, a rectangle whose area is a uniform share in ``area`` of the image and whose
    height / width is log-uniform in ``aspect`` (cut to the image) is placed uniformly and set to ``value``.
    """
    n, _, h, w = x.shape
    erase = rng.random(n) < d.probability
    area = rng.uniform(d.area[0], d.area[1], n) * h * w
    aspect = np.exp(rng.uniform(np.log(d.aspect[0]), np.log(d.aspect[1]), n))
    eh = np.clip(np.floor(np.sqrt(area * aspect) + 0.5), 1, h).astype(int)
    ew = np.clip(np.floor(np.sqrt(area / aspect) + 0.5), 1, w).astype(int)
    top = (rng.random(n) * (h - eh + 1)).astype(int)
    left = (rng.random(n) * (w - ew + 1)).astype(int)
    out = x.clone()
    for i in np.flatnonzero(erase):
        out[i, :, top[i] : top[i] + eh[i], left[i] : left[i] + ew[i]] = d.value
    return out


def gaussian_blur(x: torch.Tensor, d: Blur, rng: np.random.Generator) -> torch.Tensor:
    """Every image convolved with a Gaussian of std ``sigma`` pixels, truncated at 3 sigma; edges replicated."""
    radius = max(1, math.ceil(3 * d.sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * d.sigma**2))
    kernel /= kernel.sum()
    c = x.shape[1]
    rows, cols = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    out = torch.empty_like(x)
    for lo in range(0, len(x), _CHUNK):
        chunk = F.pad(x[lo : lo + _CHUNK].to(torch.float32), [radius] * 4, mode="replicate")
        blurred = F.conv2d(F.conv2d(chunk, rows, groups=c), cols, groups=c)  # separable: along H, then W
        out[lo : lo + _CHUNK] = _to_uint8(blurred)
    return out


_PERTURB = {"affine": random_affine, "erasing": random_erasing, "blur": gaussian_blur, "input_noise": add_noise}


def _seed(seed: int, name: str, split: str) -> list[int]:
    """The seed of one distortion's draws on one split: independent streams, each fixed by ``seed``."""
    return [seed, list(KINDS).index(name), _SPLITS.index(split)]


def _describe(name: str, d: Any) -> str:
    if name == "label_noise":
        return f"label noise: {d.rate:.0%} of labels replaced by a different class drawn uniformly"
    if name == "input_noise":
        return f"input noise: Gaussian, std {d.std:g} × 255 grey levels, added once to the stored images"
    if name == "affine":
        return (
            f"affine: rotation up to ±{d.degrees:g}°, shift up to ±{d.translate:.0%}, zoom {d.scale[0]:g}–"
            f"{d.scale[1]:g}, bilinear, new pixels 0"
        )
    if name == "erasing":
        return (
            f"random erasing: probability {d.probability:g}, area {d.area[0]:g}–{d.area[1]:g} of the image, "
            f"aspect {d.aspect[0]:g}–{d.aspect[1]:g}, filled with {d.value}"
        )
    return f"blur: Gaussian, sigma {d.sigma:g} px"
