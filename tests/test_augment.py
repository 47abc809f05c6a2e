"""Batch augmentation and learning-rate schedules: what they draw, and that a resumed run draws the same."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from torch import nn

from lineup.data._types import Normalization, Split
from lineup.train import Callback, History, TrainState, create_objective, fit
from lineup.train.augment import Augmentation, lr_factor, step_generator

NORM = Normalization(mean=(0.5,), std=(0.25,), scale=1.0 / 255.0)


def test_shift_moves_each_image_and_fills_the_border() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 100.0
    aug = Augmentation(shift=2, fill=(-7.0,))
    out = aug(x, step_generator(0, 0))
    assert out.shape == x.shape
    for n in range(2):
        # find the shift: the output is the input moved by (dy, dx) with -7 where it left the frame
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expected = torch.full_like(x[n], -7.0)
                src = x[n, :, max(0, -dy):6 - max(0, dy), max(0, -dx):6 - max(0, dx)]
                expected[:, max(0, dy):6 - max(0, -dy), max(0, dx):6 - max(0, -dx)] = src
                matches.append(torch.equal(out[n], expected))
        assert sum(matches) == 1
    assert torch.equal(out, aug(x, step_generator(0, 0)))  # a pure function of (seed, step)
    assert not torch.equal(aug(x.repeat(8, 1, 1, 1), step_generator(0, 1)),
                           aug(x.repeat(8, 1, 1, 1), step_generator(0, 2)))


def test_hflip_mirrors_about_half_the_images() -> None:
    x = torch.randn(400, 1, 4, 5)
    out = Augmentation(hflip=True)(x, step_generator(1, 7))
    same = torch.tensor([torch.equal(a, b) for a, b in zip(out, x, strict=True)])
    mirrored = torch.tensor([torch.equal(a, b.flip(2)) for a, b in zip(out, x, strict=True)])
    assert bool((same ^ mirrored).all())  # each image is one or the other
    assert 150 < int(mirrored.sum()) < 250


def test_cosine_factor() -> None:
    assert lr_factor("cosine", 0, 10) == 1.0
    assert lr_factor("cosine", 10, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("cosine", 3, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))
    assert lr_factor("constant", 3, 10) == 1.0
    with pytest.raises(ValueError, match="cosine"):
        lr_factor("step", 0, 1)


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _images() -> Split:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(96) % 2
    x = (torch.rand(96, 1, 8, 8, generator=g) * 128 + y[:, None, None, None] * 100).to(torch.uint8)
    return Split(x, y.long(), torch.arange(96))


def _fit(epochs: int, resume: dict | None = None, stop_after: int | None = None) -> tuple[nn.Module, TrainState]:
    torch.manual_seed(0)
    model = _Conv()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    interrupt = threading.Event()

    class Stop(Callback):  # sets the interrupt after a number of steps, like a signal would
        def on_step_end(self, state: TrainState, loss: torch.Tensor) -> None:
            if stop_after is not None and state.step == stop_after:
                interrupt.set()

    state = fit(model, create_objective("cross_entropy"), opt, _images(), NORM, epochs=epochs, batch_size=16,
                seed=5, device=torch.device("cpu"), callbacks=[Stop()], resume=resume, interrupt=interrupt,
                lr_schedule="cosine", augment=Augmentation(hflip=True, shift=2, fill=(-2.0,)))
    return model, state


def test_augmented_cosine_run_resumes_exactly() -> None:
    whole, whole_state = _fit(3)
    lrs = [e["lr"] for e in whole_state.history.epochs]  # the rate of each epoch's last step
    assert lrs == pytest.approx([0.1 * lr_factor("cosine", 6 * (k + 1) - 1, 18) for k in range(3)])
    _, cut = _fit(3, stop_after=8)  # stopped inside the second epoch
    assert cut.interrupted
    resumed, resumed_state = _fit(3, resume=cut.state_dict())
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed_state.history.step_loss[-10:] == whole_state.history.step_loss[-10:]
    assert isinstance(resumed_state.history, History)
