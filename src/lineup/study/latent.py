"""What a model's latent space knows about the classes, measured where the run executes.

A model with a latent space says so by defining ``latent_codes(x) -> (N, latent_dim)`` (the code of an
autoencoder, the posterior mean of a VAE). For such a model a run also stores, in its summary:

- a linear SVM trained on the codes of the training split and scored on those of the test split, and k-means and a
  Gaussian mixture with ``k`` = the number of classes, fitted on the training codes (no labels) and scored on the
  test codes by Hungarian accuracy, NMI and ARI (``lineup.analysis.latent``): ``latent_svm_acc``,
  ``latent_kmeans_acc``, ``latent_kmeans_nmi`` ... ``latent_gmm_ari``;
- the same read-outs of the raw pixels (``pixels_*``) and of a PCA of the pixels as wide as the code, fitted on
  the training split (``pca_*``, width ``pca_dim``): the baselines that say whether the learned code adds anything
  a linear projection would not;
- the read-outs of the code and of that PCA scored on the validation split instead (``val_latent_*``,
  ``val_pca_*``, on ``latent_val_examples`` examples), with the same estimators fitted on the same training codes:
  what a study chooses between models, VAE variants or latent sizes by, so that the test split is not what decides
  which one is reported;
- for a VAE, the KL divergence of each latent dimension from the prior on the test split and which dimensions are
  still in use (``lineup.train.losses.posterior_collapse``): ``latent_kl_per_dim``, ``latent_active_dims``,
  ``posterior_collapsed``;
- with an artifact folder and image inputs, PNG mosaics of test images and their reconstructions, of samples from
  the prior (VAE) and of a traversal of the latent space, named in ``latent_images`` (file names inside the run's
  folder) and described by ``latent_traversal``.

The clusterings are fitted on training codes and only assign the test codes, as every other estimator here: the
test split stays a held-out sample for the clusters too. At most ``LATENT_TRAIN_EXAMPLES`` training examples
are used (a fixed random subset), which keeps a pixel SVM on a large dataset to seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lineup._io import atomic_write
from lineup.data._types import DataBundle, Normalization, Split
from lineup.data.splits import fixed_rows
from lineup.models.vae import VAE
from lineup.train.losses import posterior_collapse

if TYPE_CHECKING:
    from lineup.analysis.latent import LatentScores

#: Training examples, at most, whose codes (and pixels) the SVMs and clusterings are fitted on.
LATENT_TRAIN_EXAMPLES = 5000

#: The image mosaics a run writes into its artifact folder, by the name the report shows them under.
IMAGE_FILES = {"reconstructions": "latent_reconstructions.png", "samples": "latent_samples.png",
               "traversal": "latent_traversal.png"}

#: Test images shown with their reconstructions; samples drawn from the prior; steps of a traversal.
N_RECONSTRUCTIONS, N_SAMPLES, TRAVERSAL_STEPS, TRAVERSAL_DIMS = 10, 32, 9, 8


def has_latent_space(model: torch.nn.Module) -> bool:
    """Whether the model marks itself as having a latent space to judge (it defines ``latent_codes``)."""
    return callable(getattr(model, "latent_codes", None))


@torch.no_grad()
def _encode(model: Any, split: Split, norm: Normalization, device: torch.device, batch_size: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs (N, C, H, W), codes (N, D))`` as float64 arrays: the model's inputs and their latent codes."""
    xs, zs = [], []
    for lo in range(0, len(split), batch_size):
        x = norm.apply(split.x[lo: lo + batch_size].to(device))
        xs.append(x.double().cpu().numpy())
        zs.append(model.latent_codes(x).double().cpu().numpy())
    return np.concatenate(xs), np.concatenate(zs)


_CLUSTER_METRICS = (("acc", "accuracy"), ("nmi", "nmi"), ("ari", "ari"))


def _flat(prefix: str, s: LatentScores) -> dict[str, float]:
    return {f"{prefix}_svm_acc": s.svm_accuracy,
            **{f"{prefix}_{method}_{metric}": getattr(getattr(s, method), name)
               for method in ("kmeans", "gmm") for metric, name in _CLUSTER_METRICS}}


def latent_results(model: Any, data: DataBundle, *, device: torch.device, batch_size: int, seed: int,
                   artifact_dir: Path | None = None) -> dict[str, Any]:
    """The summary entries of the module docstring for a model with ``latent_codes``.

    Args:
        model: a trained model with ``latent_codes(x)``; put in evaluation mode for the measurements and returned
            to its mode after.
        data: the run's data (its training, validation and test splits are read).
        device: where the model is.
        batch_size: examples per forward pass.
        seed: seed of the SVM's solver, the clusterings' initialisations and the PCA.
        artifact_dir: the run's folder, where the image mosaics go; ``None`` writes none.
    """
    # scikit-learn only now, after training (see lineup.study.probe).
    from lineup.analysis.latent import latent_scores, latent_scores_on, pca_features, pixel_features

    was_training = model.training
    model.eval()
    try:
        train = data.train.take(fixed_rows(len(data.train), LATENT_TRAIN_EXAMPLES))
        x_train, z_train = _encode(model, train, data.normalization, device, batch_size)
        x_test, z_test = _encode(model, data.test, data.normalization, device, batch_size)
        y_train, y_test = train.y.numpy(), data.test.y.numpy()
        latent_dim = z_train.shape[1]
        pca_dim = min(latent_dim, *pixel_features(x_train).shape)
        out: dict[str, Any] = {"latent_dim": latent_dim, "pca_dim": pca_dim, "latent_train_examples": len(y_train)}
        if not (np.isfinite(z_train).all() and np.isfinite(z_test).all()):
            out["latent_error"] = "the codes are not finite: no read-out of them is possible"
            return out
        k = data.num_classes
        held_out = {"test": (x_test, z_test, y_test)}  # split -> (inputs, codes, classes)
        if len(data.val):
            x_val, z_val = _encode(model, data.val, data.normalization, device, batch_size)
            if np.isfinite(z_val).all():
                held_out["val"] = (x_val, z_val, data.val.y.numpy())
                out["latent_val_examples"] = len(data.val)
        # Each estimator is fitted once, on the training codes (or their PCA), and scores every held-out split.
        codes = latent_scores_on(z_train, y_train, {name: (z, y) for name, (_, z, y) in held_out.items()}, k=k,
                                 seed=seed)
        a, *projected = pca_features(x_train, *(x for x, _, _ in held_out.values()), dim=pca_dim, seed=seed)
        pca = latent_scores_on(a, y_train, {name: (p, y) for (name, (_, _, y)), p in
                                            zip(held_out.items(), projected, strict=True)}, k=k, seed=seed)
        out.update(_flat("latent", codes["test"]))
        out.update(_flat("pixels", latent_scores(pixel_features(x_train), y_train, pixel_features(x_test), y_test,
                                                 k=k, seed=seed)))
        out.update(_flat("pca", pca["test"]))
        if "val" in held_out:
            out.update(_flat("val_latent", codes["val"]))
            out.update(_flat("val_pca", pca["val"]))
        kl = None
        if isinstance(model, VAE):
            with torch.no_grad():
                mu, logvar = zip(*(model.encode(data.normalization.apply(data.test.x[lo: lo + batch_size].to(device)))
                                   for lo in range(0, len(data.test), batch_size)), strict=True)
            collapse = posterior_collapse(torch.cat(mu), torch.cat(logvar))
            kl = collapse.kl_per_dim.cpu().numpy()
            out.update(latent_kl_per_dim=kl.tolist(), latent_active_dims=collapse.num_active,
                       latent_kl_threshold=collapse.threshold, posterior_collapsed=collapse.collapsed)
        h, w = data.input_shape[1:]
        if artifact_dir is not None and min(h, w) >= 4:  # pictures only of inputs that are pictures
            out.update(_write_images(model, data.normalization, x_test, y_test, z_train, kl, artifact_dir,
                                     seed=seed, device=device))
        return out
    finally:
        model.train(was_training)


# ------------------------------------------------------------------------------------------------------------
# Image mosaics


def _to_pixels(x: np.ndarray, norm: Normalization, reference: np.ndarray) -> np.ndarray:
    """Model inputs ``(N, C, H, W)`` back to uint8 pixels: the normalisation undone; values in [0, 1] for images
    stored as bytes, otherwise stretched over the range of ``reference`` (the real inputs shown beside them)."""
    mean = np.asarray(norm.mean).reshape(1, -1, 1, 1)
    std = np.asarray(norm.std).reshape(1, -1, 1, 1)
    raw, ref = x * std + mean, reference * std + mean
    if abs(norm.scale - 1 / 255) > 1e-12:
        lo, hi = float(ref.min()), float(ref.max())
        raw = (raw - lo) / max(hi - lo, 1e-12)
    return (np.clip(raw, 0.0, 1.0) * 255).round().astype(np.uint8)


def mosaic(images: np.ndarray, cols: int, *, gap: int = 1) -> np.ndarray:
    """uint8 images ``(N, C, H, W)`` tiled row by row, ``cols`` per row, on a white background with ``gap`` pixels
    between them: ``(rows (H + gap) - gap, cols (W + gap) - gap, C)``.

    >>> mosaic(np.zeros((3, 1, 2, 2), np.uint8), cols=2).shape  # 2 rows of 2 tiles, one blank
    (5, 5, 1)
    """
    n, c, h, w = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, q * (w + gap): q * (w + gap) + w] = img.transpose(1, 2, 0)
    return out


def round_robin(y: np.ndarray, n: int) -> np.ndarray:
    """Positions of ``n`` examples taken class by class in turn (the first of each class, then the second ...), so
    that a few shown examples cover the classes whatever order the split is in.

    >>> round_robin(np.array([0, 0, 0, 1, 1, 2]), 4).tolist()
    [0, 3, 5, 1]
    """
    rank = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(y):
        at = np.flatnonzero(y == c)
        rank[at] = np.arange(len(at))
    return np.lexsort((y, rank))[:n]


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    picture = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    atomic_write(path, lambda f: picture.save(f, format="PNG"))


@torch.no_grad()
def _write_images(model: Any, norm: Normalization, x_test: np.ndarray, y_test: np.ndarray, z_train: np.ndarray,
                  kl: np.ndarray | None, folder: Path, *, seed: int, device: torch.device) -> dict[str, Any]:
    """Reconstructions, prior samples (VAE) and a latent traversal as PNG files in ``folder``; their summary keys."""
    folder.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters())
    shown = x_test[round_robin(y_test, N_RECONSTRUCTIONS)]

    def pixels(x: torch.Tensor | np.ndarray) -> np.ndarray:
        return _to_pixels(np.asarray(x.double().cpu().numpy() if isinstance(x, torch.Tensor) else x), norm, shown)

    recon = model.reconstruct(torch.as_tensor(shown, dtype=param.dtype, device=device))
    files = {"reconstructions": mosaic(np.concatenate([pixels(shown), pixels(recon)]), cols=len(shown))}
    if kl is not None:
        gen = torch.Generator(device=device).manual_seed(seed)
        files["samples"] = mosaic(pixels(model.sample(N_SAMPLES, gen)), cols=8)
    d = z_train.shape[1]
    steps = TRAVERSAL_STEPS
    if kl is not None:  # prior quantiles from 5% to 95%, around the prior mean; most informative dimensions first
        from scipy import stats  # only for the pictures of a VAE's latent space (see lineup.study.known)

        center, values = np.zeros(d), np.tile(stats.norm.ppf(np.linspace(0.05, 0.95, steps)), (d, 1))
        order = np.argsort(-kl, kind="stable")
    else:  # the training codes' own spread: 5th to 95th percentile per dimension, around their median
        center = np.median(z_train, axis=0)
        values = np.stack([np.quantile(z_train[:, j], np.linspace(0.05, 0.95, steps)) for j in range(d)])
        order = np.argsort(-z_train.std(axis=0), kind="stable")
    if d == 2:  # the whole plane: rows walk the second dimension, columns the first
        z = np.stack(np.meshgrid(values[0], values[1][::-1]), axis=-1).reshape(-1, 2)
        traversal = {"kind": "plane", "dims": [0, 1], "values": values.tolist()}
    else:
        dims = order[:TRAVERSAL_DIMS]
        z = np.repeat(center[None, :], len(dims) * steps, axis=0)
        for i, j in enumerate(dims):
            z[i * steps: (i + 1) * steps, j] = values[j]
        traversal = {"kind": "dims", "dims": [int(j) for j in dims], "values": values[dims].tolist()}
    decoded = model.output_mean(model.decode(torch.as_tensor(z, dtype=param.dtype, device=device)))
    files["traversal"] = mosaic(pixels(decoded), cols=steps)
    for name, image in files.items():
        _save_png(folder / IMAGE_FILES[name], image)
    return {"latent_images": {name: IMAGE_FILES[name] for name in files}, "latent_traversal": traversal}
