"""stripes: a 4-class image task generated on the spot, so the example needs no download."""

from __future__ import annotations

import math

import torch

from lineup import DatasetTensors, register_dataset

CLASSES = ("horizontal", "vertical", "diagonal", "anti-diagonal")


def _draw(n: int, size: int, noise: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of stripes with a random period (3 to 6 pixels) and phase, and their orientation labels."""
    y = torch.randint(len(CLASSES), (n,), generator=generator)
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                indexing="ij")
    # The coordinate each orientation's stripes vary along, (4, size, size); diagonals scaled to the same period.
    along = torch.stack([rows, cols, (rows + cols) / math.sqrt(2), (rows - cols) / math.sqrt(2)])
    period = 3 + 3 * torch.rand(n, 1, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=generator)
    clean = 0.5 + 0.5 * torch.sin(2 * math.pi * along[y] / period + phase)  # (n, size, size) in [0, 1]
    noisy = clean + noise * torch.randn(clean.shape, generator=generator)
    x = (noisy.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)  # (n, 1, size, size)
    return x, y


@register_dataset
def stripes(*, n_train: int = 2000, n_test: int = 1000, size: int = 16, noise: float = 0.8,
            seed: int = 0) -> DatasetTensors:
    """Stripes at four orientations in Gaussian pixel noise: a 4-class grey-image task generated on the spot."""
    train = _draw(n_train, size, noise, torch.Generator().manual_seed(2 * seed))
    test = _draw(n_test, size, noise, torch.Generator().manual_seed(2 * seed + 1))  # its own stream: no overlap
    return DatasetTensors(train=train, test=test, classes=CLASSES,
                          notes=[f"stripes: {size}x{size} images, period 3-6 pixels, noise std {noise:g}, seed {seed}"])
