"""Bernoulli decoders on normalised images: the likelihood reads the pixels on [0, 1], the outputs come back."""

from __future__ import annotations

import math

import pytest
import torch

from lineup import Store, parse_study
from lineup.data import load
from lineup.models import create_model
from lineup.study import run_study
from lineup.study.generative import input_range


@pytest.fixture(autouse=True)
def _one_thread(seeded_one_thread: None) -> None:
    """Tiny models: one thread each, see conftest."""


@pytest.mark.parametrize("name", ["vae", "autoencoder"])
def test_the_targets_are_the_pixels_on_unit_scale_and_outputs_return_to_input_space(name: str) -> None:
    d = load("digits", train_size=200, val_fraction=0.2)
    model = create_model(name, d.input_shape, d.num_classes, likelihood="bernoulli", latent_dim=2)
    model.set_input_range(*input_range(d.train, d.normalization))
    x = d.normalization.apply(d.train.x[:16])
    # digits are 0..16 grey levels stored as 0..255 bytes: the targets are the stored bytes over their largest value
    raw = d.train.x[:16].float()
    torch.testing.assert_close(model.likelihood_target(x), (raw / d.train.x.max()).clamp(0, 1), rtol=0, atol=1e-5)
    out = model.output_mean(torch.zeros_like(x))  # logits 0: probability 1/2, halfway through the inputs' range
    lo, hi = input_range(d.train, d.normalization)
    torch.testing.assert_close(out, torch.full_like(x, (lo[0] + hi[0]) / 2))
    assert "unit_range.low" in model.state_dict()  # travels with checkpoints and final weights
    gauss = create_model(name, d.input_shape, d.num_classes, likelihood="gaussian", latent_dim=2)
    assert gauss.likelihood_target(x) is x and not any("unit_range" in k for k in gauss.state_dict())


def test_a_bernoulli_vae_trains_on_normalised_images_in_a_study(tmp_path: object) -> None:
    # Before the range was set, binary cross-entropy against normalised targets (up to 2.8 on these digits) was
    # unbounded below and such a run diverged within a few epochs.
    doc = {"study": {"name": "bern", "seeds": [0]}, "data": {"dataset": "digits", "train_size": 300},
           "train": {"epochs": 8, "batch_size": 32, "lr": 3e-3, "threads": 1},
           "models": [{"name": "vae", "model": "vae", "options": {"likelihood": "bernoulli", "latent_dim": 2,
                                                                  "supervised": False}}]}
    with Store(tmp_path) as store:  # type: ignore[arg-type]
        (run, result), = run_study(parse_study(doc), store).trained
        assert result.status == "complete", result.error
        epochs = store.epochs(run.hash)
    recon = [e["train_reconstruction"] for e in epochs]
    # a Bernoulli log-likelihood of [0, 1] targets is a sum of cross-entropies: positive, and falling as it learns
    assert all(math.isfinite(r) and r > 0 for r in recon) and recon[-1] < recon[0]
