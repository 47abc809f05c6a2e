"""A VAE's density against the true one in a study: the KL bound a run stores on a Gaussian mixture, checked by an
independent route through raw coordinates, against a model that is the true density, and in the report."""

from __future__ import annotations

import doctest
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.special import logsumexp

from density_helpers import ExactDensity, train_on_elbo
from lineup import Store, data, load_study, run_study
from lineup.analysis import generative
from lineup.analysis.generative import isotropic_gaussian_log_density, iwae_log_likelihood, kl_to_true_density
from lineup.data._types import Normalization
from lineup.data.synthetic import xor_blobs
from lineup.models import create_model
from lineup.report import build_report
from lineup.report.collect import collect
from lineup.report.density import density_runs, epoch_bounds
from lineup.study.known import DENSITY_KS, DENSITY_VALUES, density_results, has_density

pytestmark = pytest.mark.usefixtures("seeded_one_thread")  # seed 0, one torch thread (conftest.py)

CPU = torch.device("cpu")
OPTIONS = {"n_train": 2000, "n_val": 500, "n_test": 1500}


@pytest.fixture(scope="module")
def xor() -> data.DataBundle:
    """XOR blobs, seen by the models through a normalisation that is not the identity (the synthetic datasets are
    not normalised), so that a wrong Jacobian of it would show."""
    bundle = data.load("gaussian-xor", options=OPTIONS)
    assert bundle.normalization == Normalization(mean=(0.0,), std=(1.0,), scale=1.0)
    return replace(bundle, normalization=Normalization(mean=(0.5,), std=(2.0,), scale=1.0))


def test_the_log_density_of_a_mixture_is_normalised_and_is_the_log_sum_of_its_joint() -> None:
    mixture = xor_blobs(separation=3.0, spread=0.7)
    x, _ = mixture.sample(500, seed=0)
    np.testing.assert_allclose(mixture.log_density(x), logsumexp(mixture.log_joint(x), axis=1), rtol=0, atol=1e-12)
    # A density of the plane integrates to 1: midpoint rule on [-8, 8]^2 (the blobs sit at +-1.5, spread 0.7).
    h = 16 / 400
    grid = np.arange(-8 + h / 2, 8, h)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    assert np.exp(mixture.log_density(points)).sum() * h * h == pytest.approx(1.0, abs=1e-6)


def test_the_gaussian_baseline_is_the_isotropic_fit_and_is_at_kl_zero_on_isotropic_gaussian_data() -> None:
    # Two classes whose means are scaled to 0: the inputs are one standard Gaussian of the plane.
    one = data.load("gaussian-2", options={**OPTIONS, "mean_scale": 0.0})
    r = density_results(create_model("vae", (1, 1, 2), 2, latent_dim=2), one, device=CPU, seed=0, ks=(1,))
    # Fitted on 2,000 points, the Gaussian's KL is its estimation error, about (D + 1) / (2 n) = 0.0008 nats.
    assert abs(r["density_kl_gaussian"]) < 0.01 + 3 * r["density_kl_gaussian_standard_error"]
    # The same as scipy's N(m, s^2 I) with the training rows' mean and mean variance.
    x = one.train.x.double().flatten(1).numpy()
    points = one.test.x[:50].double().flatten(1).numpy()
    scipy_log_p = scipy.stats.multivariate_normal(x.mean(axis=0), x.var(axis=0).mean() * np.eye(2)).logpdf(points)
    np.testing.assert_allclose(isotropic_gaussian_log_density(x, points), scipy_log_p, rtol=1e-12)
    assert doctest.testmod(generative).failed == 0
    with pytest.raises(ValueError, match="all equal"):
        isotropic_gaussian_log_density(np.ones((3, 2)), points)


def test_a_model_whose_density_is_not_finite_gets_a_reason_not_a_crash(xor: data.DataBundle) -> None:
    model = create_model("vae", (1, 1, 2), 2, latent_dim=2)
    with torch.no_grad():
        model.log_scale.fill_(-1e4)  # a decoder scale of exp(-10,000): every log-likelihood is -inf
    assert density_results(model, xor, device=CPU, seed=0) == {
        "density_error": "the model's log-density bound (k = 1) is not finite on some test points"}


def test_only_gaussian_decoders_are_set_against_a_density() -> None:
    assert has_density(create_model("vae", (1, 1, 2), 2, latent_dim=2))
    assert not has_density(create_model("vae", (1, 8, 8), 2, likelihood="bernoulli"))
    assert not has_density(create_model("mlp", (1, 1, 2), 2))
    assert density_results(create_model("mlp", (1, 1, 2), 2), data.load("gaussian-xor", options=OPTIONS),
                           device=CPU, seed=0) == {}


def test_a_model_that_is_the_true_density_is_at_kl_zero_for_every_k(xor: data.DataBundle) -> None:
    # The true density in the coordinates the model sees, x' = (x - mean) / std: p'(x') = p_true(mean + std x') std^2
    # (two values per point, each stretched by std).
    (mean,), (std,) = xor.normalization.mean, xor.normalization.std
    true = ExactDensity(lambda x: xor.distribution.log_density(x * std + mean) + 2 * math.log(std))
    r = density_results(true, xor, device=CPU, seed=0)
    assert r["density_kl_k"] == max(DENSITY_KS) and r["density_kl_points"] == len(xor.test)
    # The validation inputs' mean log-density in the model's coordinates, which the per-epoch bound adds to the ELBO.
    assert r["density_val_log_p"] == pytest.approx(float(true.log_density(
        ((xor.val.x.double() - mean) / std).numpy()).mean()), abs=1e-9)
    for k in DENSITY_KS:
        value, se = r["density_kl_by_k"][str(k)]
        assert abs(value) < 1e-6 and se < 1e-6


def test_the_stored_kl_matches_the_bound_computed_in_raw_coordinates(xor: data.DataBundle) -> None:
    """The same model read without the normalisation: its Gaussian decoder's mean and scale mapped back to the
    stored coordinates, the density evaluated there by torch.distributions. No Jacobian is written by hand."""
    model = create_model("vae", (1, 1, 2), 2, latent_dim=2, hidden=(32, 32))
    train_on_elbo(model, xor.normalization.apply(xor.train.x), 300, batch=128)
    ours = density_results(model, xor, device=CPU, seed=0, ks=(50,))
    (mean,), (std,) = xor.normalization.mean, xor.normalization.std

    class Raw(torch.nn.Module):
        likelihood, latent_dim = "gaussian", 2

        def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return model.encode((x - mean) / std)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return model.decode(z)

        def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
            scale = torch.exp(torch.as_tensor(model.decoder_log_scale())) * std
            normal = torch.distributions.Normal(decoded * std + mean, scale)
            return normal.log_prob(x).reshape(len(x), -1).sum(dim=1)

    x = xor.test.x
    bound = iwae_log_likelihood(Raw(), x, k=50, generator=torch.Generator().manual_seed(0),
                                chunk=DENSITY_VALUES // (2 * len(x)))  # the same draws as the run's
    theirs = kl_to_true_density(xor.distribution.log_density(x.double().numpy()), bound.double().numpy(), k=50)
    assert ours["density_kl"] == pytest.approx(theirs.value, abs=1e-4)
    assert ours["density_kl_standard_error"] == pytest.approx(theirs.standard_error, rel=1e-3)


STUDY = """
[study]
name = "vae_density"
seeds = [0, 1]
[data]
dataset = "gaussian-xor"
options = { n_train = 2000, n_val = 500, n_test = 1500 }
[train]
optimizer = "adam"
lr = 3e-3
batch_size = 128
epochs = 8
[[models]]
name = "vae"
model = "vae"
options = { latent_dim = 2, hidden = [32, 32], supervised = false }
[[models]]
name = "logistic"
model = "logistic_regression"
"""


def test_a_study_stores_the_kl_bound_and_the_report_shows_it_tighten_with_k_and_with_training(
    tmp_path: Path,
) -> None:
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    study = load_study(path)
    with Store(tmp_path / "results") as store:
        run_study(study, store)
        runs = density_runs(collect(store, study.name))
        assert list(runs) == ["vae"]  # the classifier has no density
        for run in runs["vae"]:
            s = run.record.summary
            by_k = {int(k): v for k, v in s["density_kl_by_k"].items()}
            assert all(np.isfinite(v) and v > -3 * se for v, se in by_k.values())  # an upper bound on a KL
            # Same points and stream for every k: the bound tightens, within the noise of the draws.
            values = [by_k[k][0] for k in sorted(by_k)]
            assert all(a >= b - 0.005 for a, b in zip(values, values[1:], strict=False)) and values[0] > values[-1]
            curve = epoch_bounds(run)
            assert len(curve) == 8 and curve[-1] < 0.5 * curve[0]  # the ELBO bound falls as training proceeds
            # After training, the k = 1 bound on validation points and on test points estimate the same KL.
            assert curve[-1] == pytest.approx(by_k[1][0], abs=6 * by_k[1][1] + 0.05)
            # Four blobs are no Gaussian: the VAE beats the one Gaussian fitted to the same training inputs.
            assert s["density_kl"] < s["density_kl_gaussian"], (s["density_kl"], s["density_kl_gaussian"])
        report = build_report(store, study.name)
    md = (report.parent / "tables" / "density_kl.md").read_text()
    assert "k = 1,000" in md and "| vae | 2 |" in md and "| baseline: isotropic Gaussian fitted" in md
    assert (report.parent / "figures" / "density_epochs.png").exists()
    assert "The model&#39;s density against the true one" in report.read_text()


def test_the_normalisation_jacobian_is_the_log_determinant_of_its_derivative() -> None:
    """Checked by autograd on a small input: three channels, bytes scaled by 1/255, a different std per channel."""
    norm = Normalization(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0), scale=1 / 255)
    shape = (3, 2, 2)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return norm.apply(x.reshape(1, *shape)).reshape(-1)

    jac = torch.autograd.functional.jacobian(apply, torch.rand(12, dtype=torch.float64) * 255)  # (12, 12)
    assert norm.log_det_jacobian(shape) == pytest.approx(float(torch.linalg.slogdet(jac.double()).logabsdet), rel=1e-6)
