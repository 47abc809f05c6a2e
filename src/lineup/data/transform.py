"""Resizing and channel conversion of stored uint8 images, so that any dataset can feed any model.

Two settings, taken by every image dataset in ``[data.options]``::

    [data.options]
    resize = [32, 32]   # or 32: every image becomes 32×32
    channels = 3        # 1: grey (ITU-R 601 luma), 3: RGB (a grey image repeated)

They are applied once, when the data is loaded, to the kept examples of every split; the images stay uint8.
The normalisation constants are then measured again on the transformed training split, since resizing
changes the pixel statistics (and channel conversion their number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lineup._schema import opt, parse_section
from lineup.errors import SpecError

# ITU-R BT.601 luma weights, as Pillow's convert("L") uses them.
LUMA = (0.299, 0.587, 0.114)

_CHUNK = 4096  # images converted to float at a time, to bound memory on large datasets


@dataclass(frozen=True)
class ImageTransform:
    """The image settings of ``[data.options]``, validated; all ``None`` leaves the images as they are."""

    resize: list[int] | int | None = opt(
        None, "[height, width] (or one int for a square) that every image is resized to: bilinear, antialiased"
    )
    channels: int | None = opt(None, "1 (grey, ITU-R 601 luma of RGB) or 3 (RGB, grey repeated)", choices=(1, 3))

    KEYS = ("resize", "channels")

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> ImageTransform:
        """Remove ``resize`` and ``channels`` from ``options`` (a mutable copy) and validate them."""
        table = {k: options.pop(k) for k in cls.KEYS if k in options}
        transform = parse_section(cls, table, key="data.options")
        size = transform.size
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise SpecError(
                f"resize must be a positive int or [height, width], got {transform.resize!r}", key="data.options.resize"
            )
        return transform

    @property
    def size(self) -> tuple[int, ...] | None:
        if self.resize is None:
            return None
        return (self.resize, self.resize) if isinstance(self.resize, int) else tuple(self.resize)

    def __bool__(self) -> bool:
        return self.resize is not None or self.channels is not None

    def to_dict(self) -> dict[str, Any]:
        return {"resize": list(self.size) if self.size else None, "channels": self.channels}

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` uint8 images with the target channels and size, still uint8."""
        if self.channels is not None and self.channels < x.shape[1]:
            x = convert_channels(x, self.channels)  # fewer channels to resize
        if self.size is not None:
            x = resize_images(x, self.size)
        if self.channels is not None:
            x = convert_channels(x, self.channels)
        return x

    def describe(self, before: tuple[int, ...], after: tuple[int, ...]) -> str:
        """One line for the notes, e.g. ``images 1×28×28 → 3×32×32 (resized bilinear, antialiased; ...)``."""
        how = []
        if self.size is not None and tuple(before[1:]) != tuple(after[1:]):
            how.append("resized bilinear, antialiased")
        if before[0] != after[0]:
            how.append("grey repeated into RGB" if after[0] == 3 else "RGB to grey by ITU-R 601 luma")
        shape = "×".join
        changed = f" ({'; '.join(how)})" if how else " (already so)"
        return (
            f"images: {shape(map(str, before))} → {shape(map(str, after))}{changed}, once at load time, kept uint8; "
            "normalisation measured on the transformed training split"
        )


def resize_images(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 images resized to ``size = (height, width)`` by antialiased bilinear interpolation.

    Antialiasing low-pass filters before shrinking (as Pillow does), so a 64×64 image reduced to 28×28 does
    not alias; enlarging is plain bilinear interpolation. Values are rounded and clipped back to 0..255.
    """
    if tuple(x.shape[2:]) == tuple(size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], *size), dtype=torch.uint8)
    for lo in range(0, x.shape[0], _CHUNK):
        chunk = x[lo : lo + _CHUNK].to(torch.float32)
        resized = F.interpolate(chunk, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        out[lo : lo + _CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 images with 1 or 3 channels converted to ``channels`` (1 or 3).

    Raises:
        SpecError: the images have a channel count other than 1 or 3.
    """
    c = x.shape[1]
    if c == channels:
        return x
    if (c, channels) == (1, 3):
        return x.expand(-1, 3, -1, -1).contiguous()
    if (c, channels) == (3, 1):
        weights = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        out = torch.empty((x.shape[0], 1, *x.shape[2:]), dtype=torch.uint8)
        for lo in range(0, x.shape[0], _CHUNK):
            grey = (x[lo : lo + _CHUNK].to(torch.float32) * weights).sum(dim=1, keepdim=True)
            out[lo : lo + _CHUNK] = grey.round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise SpecError(f"channels: cannot convert images with {c} channels to {channels}; only 1 and 3 are supported")


def channel_stats(x: np.ndarray | torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``pixel / 255`` over ``(N, C, H, W)`` uint8 images.

    Exact: computed from each channel's histogram of the 256 byte values, in chunks, so memory stays small.
    Rounded to 4 decimals, as the catalog's declared constants are; a constant channel gets a std of 1.
    """
    a = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    values = np.arange(256) / 255
    means, stds = [], []
    for c in range(a.shape[1]):
        counts = sum(
            (np.bincount(a[i : i + 1000, c].ravel(), minlength=256) for i in range(0, len(a), 1000)),
            np.zeros(256, dtype=np.int64),
        )
        total = max(int(counts.sum()), 1)
        p = counts / total
        mean = float(p @ values)
        std = float(np.sqrt(max(p @ values**2 - mean**2, 0.0)))
        means.append(round(mean, 4))
        stds.append(round(std, 4) if std > 0 else 1.0)  # a constant channel: divide by 1, not by 0
    return tuple(means), tuple(stds)


def transform_from_options(options: Mapping[str, Any] | None) -> tuple[ImageTransform, dict[str, Any]]:
    """Split ``[data.options]`` into the image settings every dataset takes and the dataset's own options."""
    rest = dict(options or {})
    return ImageTransform.pop_from(rest), rest
