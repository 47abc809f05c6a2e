"""How good a GAN's samples are, measured where the run executes.

A model that draws images says so by defining ``generate(z)`` and ``sample(n, generator)`` (``lineup.models.gan``).
For such a model a run:

- maps its generator's output onto the value range of the normalised training images (``input_range``), before
  training starts;
- with an artifact folder, writes an 8 × 8 grid of samples at a few set epochs (``grid_epochs``) and of the final
  weights, always from the same noise (seeded 0), as PNG files named in the summary (``gan_images``);
- stores in its summary the per-step losses of the objective's terms (``gan_steps``: the generator's and the
  discriminator's or critic's losses, the critic's Wasserstein estimate ...; averaged over bins of consecutive
  steps when there are more than ``MAX_STEP_POINTS``);
- measures its samples against the test images by two distances, lower is better:

  - ``frechet_distance``: the Fréchet distance between Gaussians fitted to the features of ``N`` test images and
    of ``N`` samples, in the feature space of a judging classifier that lineup trains on the same data. This is
    **not** the FID of Heusel et al. (2017), whose features are Inception-v3's (which cannot be downloaded here):
    the numbers compare models of one study on one dataset, never with published FIDs. The judge is a LeNet-5
    (``forward_features``: its 84 penultimate units) trained with the fit loop, seed ``JUDGE_SEED``, for
    ``JUDGE_EPOCHS`` epochs of Adam (lr 1e-3, batch 64) on the training split, the same for every run on the same
    data (it is trained once per process and data version and then reused); its test accuracy is stored as
    ``judge_test_acc``;
  - ``sliced_wasserstein``: the sliced 2-Wasserstein distance between the ``N`` test images and the ``N`` samples
    as pixel vectors in [0, 1] (128 random directions, seeded 0: the same directions for every run), which needs
    no network;

  beside the same two distances between ``N`` training images and the test images (``frechet_real`` and
  ``sliced_wasserstein_real``), the value a generator that drew the data distribution itself would get, up to
  sampling noise. ``N`` is the test split's size, at most ``QUALITY_EXAMPLES``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lineup.analysis.generative import frechet_distance, sliced_wasserstein
from lineup.data._types import DataBundle, Normalization, Split
from lineup.data.splits import fixed_rows
from lineup.models import LineupModel, create_model
from lineup.study.latent import _save_png, _to_pixels, mosaic
from lineup.train.callbacks import Callback
from lineup.train.engine import OptimConfig, TrainState, build_optimizer, evaluate, fit
from lineup.train.objectives import create_objective

#: The judging classifier of the Fréchet distance: model, seed, epochs, batch size, Adam's learning rate.
JUDGE_MODEL, JUDGE_SEED, JUDGE_EPOCHS, JUDGE_BATCH, JUDGE_LR = "lenet5", 0, 3, 64, 1e-3
#: Real and generated images, at most, that each distance compares.
QUALITY_EXAMPLES = 2000
#: Random directions of the sliced Wasserstein distance.
PROJECTIONS = 128
#: Samples in a grid (8 × 8) and points per per-step curve in the summary.
GRID_SAMPLES, GRID_COLUMNS, MAX_STEP_POINTS = 64, 8, 1000


def has_generator(model: torch.nn.Module) -> bool:
    """Whether the model draws images to judge (it defines ``generate`` and ``sample``)."""
    return callable(getattr(model, "generate", None)) and callable(getattr(model, "sample", None))


def input_range(split: Split, norm: Normalization) -> tuple[list[float], list[float]]:
    """Per channel, the smallest and largest value of ``split``'s images as the model sees them (normalised)."""
    x = split.x.float()
    low, high = x.amin(dim=(0, 2, 3)) * norm.scale, x.amax(dim=(0, 2, 3)) * norm.scale
    mean, std = torch.tensor(norm.mean), torch.tensor(norm.std)
    lo, hi = ((low - mean) / std).tolist(), ((high - mean) / std).tolist()
    # A channel of one constant value still needs a range to draw in.
    return lo, [max(h, lo_ + 1e-3) for lo_, h in zip(lo, hi, strict=True)]


def grid_epochs(epochs: int) -> list[int]:
    """The epochs after which a sample grid is written: the first, the last, and three evenly between.

    >>> grid_epochs(10), grid_epochs(2)
    ([1, 2, 5, 8, 10], [1, 2])
    """
    return sorted({1, epochs, *(max(1, round(epochs * k / 4)) for k in (1, 2, 3))})


def _grid_file(epoch: int | None) -> str:
    return "gan_samples_final.png" if epoch is None else f"gan_samples_epoch{epoch:03d}.png"


@torch.no_grad()
def _write_grid(model: Any, norm: Normalization, reference: np.ndarray, path: Path) -> None:
    """An 8 × 8 grid of the model's samples from noise seeded 0, in evaluation mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        noise = torch.Generator(device=param.device).manual_seed(0)
        x = model.sample(GRID_SAMPLES, noise).double().cpu().numpy()
    finally:
        model.train(was_training)
    _save_png(path, mosaic(_to_pixels(x, norm, reference), cols=GRID_COLUMNS))


class SampleGrids(Callback):
    """Write a grid of samples into ``folder`` after each epoch of ``epochs``; it draws from its own seeded
    stream, so training goes on exactly as without it."""

    def __init__(self, folder: Path, norm: Normalization, reference: np.ndarray, epochs: list[int]) -> None:
        self.folder, self.norm, self.reference, self.epochs = folder, norm, reference, set(epochs)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if int(metrics["epoch"]) in self.epochs and not state.diverged:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_grid(state.model, self.norm, self.reference, self.folder / _grid_file(int(metrics["epoch"])))


def sample_grids(data: DataBundle, epochs: int, folder: Path) -> SampleGrids:
    """The grid callback of a run on ``data`` training for ``epochs`` epochs."""
    return SampleGrids(folder, data.normalization, _reference(data), grid_epochs(epochs))


def _reference(data: DataBundle) -> np.ndarray:
    # Model inputs of a few test images: what _to_pixels stretches float-valued data over.
    return data.normalization.apply(data.test.x[:GRID_SAMPLES]).double().numpy()


# ------------------------------------------------------------------------------------------------------------
# The judging classifier

_judges: dict[tuple[str, str], tuple[dict[str, torch.Tensor], float]] = {}


def judge(data: DataBundle, device: torch.device) -> tuple[LineupModel, float]:
    """The judging classifier of ``data`` in evaluation mode and its test accuracy (see the module docstring).

    Trained at most once per process and data version; its initialisation draws from a seeded stream of its own,
    so calling this leaves the global random state as it was.
    """
    key = (data.version, str(device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(JUDGE_SEED)
        model = create_model(JUDGE_MODEL, data.input_shape, data.num_classes).to(device)
        if key not in _judges:
            objective = create_objective("cross_entropy")
            optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=JUDGE_LR))
            fit(model, objective, optimizer, data.train, data.normalization, epochs=JUDGE_EPOCHS,
                batch_size=JUDGE_BATCH, seed=JUDGE_SEED, device=device)
            acc = evaluate(model, objective, data.test, data.normalization, device=device).acc
            _judges[key] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, acc)
    weights, acc = _judges[key]
    model.load_state_dict(weights)
    return model.eval(), acc


# ------------------------------------------------------------------------------------------------------------
# The measurements


@torch.no_grad()
def _features(model: LineupModel, x: torch.Tensor, device: torch.device, batch_size: int) -> np.ndarray:
    return np.concatenate([model.forward_features(x[lo: lo + batch_size].to(device)).double().cpu().numpy()
                           for lo in range(0, len(x), batch_size)])


def _pixels(x: torch.Tensor, norm: Normalization) -> np.ndarray:
    """Model inputs back to values in [0, 1] (stored pixels times their scale), as float64."""
    c = x.shape[1]
    mean = torch.tensor(norm.mean, dtype=torch.float64).view(1, c, 1, 1)
    std = torch.tensor(norm.std, dtype=torch.float64).view(1, c, 1, 1)
    return (x.double().cpu() * std + mean).numpy()


def _binned(values: list[float], size: int) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    n = -(-len(v) // size)
    return [float(v[i * size: (i + 1) * size].mean()) for i in range(n)]


def step_curves(step_parts: dict[str, list[float]]) -> dict[str, Any]:
    """Per-step curves of the objective's terms, averaged over bins of consecutive steps when there are more than
    ``MAX_STEP_POINTS``: ``{"bin": steps per point, "step": last step of each bin, <term>: [...]}``."""
    n = max((len(v) for v in step_parts.values()), default=0)
    size = max(1, math.ceil(n / MAX_STEP_POINTS))
    steps = [min((i + 1) * size, n) for i in range(-(-n // size))]
    return {"bin": size, "step": steps, **{k: _binned(v, size) for k, v in step_parts.items() if len(v) == n}}


def generative_results(model: Any, data: DataBundle, step_parts: dict[str, list[float]], *, device: torch.device,
                       batch_size: int, seed: int, artifact_dir: Path | None = None) -> dict[str, Any]:
    """The summary entries of the module docstring for a model with ``generate``.

    Args:
        model: the trained model; put in evaluation mode for the measurements and returned to its mode after.
        data: the run's data (training and test splits are read).
        step_parts: the training history's per-step terms (``History.step_parts``).
        device: where the model is.
        batch_size: examples per forward pass.
        seed: seed of the noise of the samples that are measured.
        artifact_dir: the run's folder, where the grids are; ``None`` writes and names none.
    """
    norm = data.normalization
    n = min(len(data.test), QUALITY_EXAMPLES)
    real = norm.apply(data.test.take(fixed_rows(len(data.test), n)).x)
    train = norm.apply(data.train.take(fixed_rows(len(data.train), n)).x)
    was_training = model.training
    model.eval()
    try:
        noise = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            fake = torch.cat([model.sample(min(batch_size, n - lo), noise).cpu() for lo in range(0, n, batch_size)])
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"gan_steps": step_curves(step_parts), "quality_examples": n}
    if not bool(torch.isfinite(fake).all()):
        out["quality_error"] = "the samples are not finite: no distance can be measured"
        return out
    classifier, acc = judge(data, device)
    f_real, f_train, f_fake = (_features(classifier, x, device, batch_size) for x in (real, train, fake))
    p_real, p_train, p_fake = (_pixels(x, norm) for x in (real, train, fake))
    out.update(
        frechet_distance=frechet_distance(f_real, f_fake), frechet_real=frechet_distance(f_real, f_train),
        sliced_wasserstein=sliced_wasserstein(p_real, p_fake, n_projections=PROJECTIONS, rng=0),
        sliced_wasserstein_real=sliced_wasserstein(p_real, p_train, n_projections=PROJECTIONS, rng=0),
        judge={"model": JUDGE_MODEL, "seed": JUDGE_SEED, "epochs": JUDGE_EPOCHS, "features": int(f_real.shape[1])},
        judge_test_acc=acc,
    )
    if artifact_dir is not None:
        _write_grid(model, norm, _reference(data), artifact_dir / _grid_file(None))
        files = sorted(p.name for p in artifact_dir.glob("gan_samples_epoch*.png"))
        out["gan_images"] = {name.removeprefix("gan_samples_").removesuffix(".png"): name
                             for name in [*files, _grid_file(None)]}
    return out
