"""What a run on data with a known distribution adds to its results, computed where the run executes.

The report reads the store only and never draws or loads data, so everything it needs to set a model against the
best possible classifier is measured here, once, while the data and the model are at hand: the Bayes risk of the
distribution (with its error bound and how it was computed), the model's test risk, how far its predicted posterior
is from the true one (mean KL divergence on the test sample) and its calibration (ECE). On inputs of two values the
model's class probabilities on a fixed grid are kept too, as a prediction split named ``"grid"`` whose labels are
the Bayes classifier's decisions at the same points, so the report can draw decision regions with the Bayes boundary.

A model that is a density itself (a VAE with a Gaussian decoder) is also set against the true density of the inputs:
``KL(p_true || p_model)`` estimated on test points, with ``log p_model`` from the importance-weighted bound, which
makes the estimate an upper bound on the KL that tightens as the number of importance samples grows
(``density_results``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lineup.analysis.generative import isotropic_gaussian_log_density, iwae_log_likelihoods, kl_to_true_density
from lineup.data._types import DataBundle, Split
from lineup.data.splits import fixed_rows
from lineup.data.synthetic import decision_grid
from lineup.train import Evaluation, evaluate
from lineup.train.objectives import Objective

#: Cells per side of the decision-region grid: 100 x 100 predictions, about 80 kB of probabilities per run.
GRID_CELLS = 100
#: Confidence bins of the stored ECE (Guo et al.'s 15).
ECE_BINS = 15
#: The stored prediction split that holds a run's predictions on the grid.
GRID_SPLIT = "grid"


def grid_extent(x: torch.Tensor) -> tuple[float, float, float, float]:
    """``(x_min, x_max, y_min, y_max)`` around a sample of two-value inputs: the 0.1% to 99.9% quantiles of each
    coordinate, widened by 10% of their range on each side. Computed from the test sample, which every run of a data
    setting shares, so every model of a setting is drawn on the same grid."""
    rows = x.reshape(len(x), -1).double().cpu().numpy()  # (N, 2)
    lo, hi = np.quantile(rows, 0.001, axis=0), np.quantile(rows, 0.999, axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def known_distribution_results(model: torch.nn.Module, objective: Objective, data: DataBundle, test: Evaluation, *,
                               device: torch.device, batch_size: int = 1024,
                               cells: int = GRID_CELLS) -> tuple[dict[str, Any], Evaluation | None]:
    """The summary entries of a run on ``data`` (which must carry its ``distribution``), and its grid predictions.

    Args:
        model: the trained model (evaluated in eval mode).
        objective: maps the model's outputs to class probabilities.
        data: the run's data; ``data.distribution`` is the distribution the test sample was drawn from (with label
            noise, the noisy one: its posterior, its Bayes risk and the test labels all include the noise).
        test: the model's evaluation on ``data.test``.
        device: where the model is.
        batch_size: examples per evaluation batch.
        cells: grid cells per side.

    Returns:
        ``(summary, grid)``: ``summary`` holds ``bayes_risk``, ``bayes_risk_error_bound`` (``None`` for a
        Monte-Carlo estimate), ``bayes_risk_standard_error`` (``None`` unless Monte-Carlo), ``bayes_risk_method``,
        ``test_risk`` (error rate on the test sample), ``posterior_kl`` (mean KL(true || model) in nats), ``ece``
        and, on two-value inputs, ``grid`` (``{"cells": n, "extent": [x_min, x_max, y_min, y_max]}``); ``grid`` is
        the model's evaluation on the ``n x n`` cell centres (row ``i`` is the ``i``-th y value) with the Bayes
        decisions as labels, or ``None`` for other inputs.
    """
    # scipy.stats (through the risk analyses) only for runs on a known distribution: about 45 MB that a run on real
    # data never needs.
    from lineup.analysis.risk import expected_calibration_error, mean_kl_divergence

    dist = data.distribution
    risk = dist.bayes_risk()
    summary: dict[str, Any] = {
        "bayes_risk": risk.value, "bayes_risk_error_bound": risk.error_bound,
        "bayes_risk_standard_error": risk.standard_error, "bayes_risk_method": risk.method,
        "test_risk": float((test.pred != test.y).mean()),
        "posterior_kl": mean_kl_divergence(dist.posterior(data.test.x), test.probs.astype(np.float64)),
        "ece": expected_calibration_error(test.y, test.probs.astype(np.float64), n_bins=ECE_BINS),
    }
    if int(np.prod(data.input_shape)) != 2:
        return summary, None
    extent = grid_extent(data.test.x)
    bayes = decision_grid(dist, extent, n=cells)
    gx, gy = np.meshgrid(bayes.x, bayes.y)  # (n, n): row i is y[i], as decision_grid lays it out
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).reshape(-1, *data.input_shape)  # (n*n, C, H, W)
    split = Split(x=torch.from_numpy(points.astype(np.float32)),
                  y=torch.from_numpy(bayes.predict.ravel().astype(np.int64)),
                  index=torch.arange(cells * cells, dtype=torch.int64))
    grid = evaluate(model, objective, split, data.normalization, device=device, batch_size=batch_size)
    summary["grid"] = {"cells": cells, "extent": list(extent)}
    return summary, grid


# ------------------------------------------------------------------------------------------------------------
# The model's density against the true one

#: Importance samples per test point of the IWAE bound (Burda et al., 2015): the largest gives the stored KL, the
#: smaller ones show how much the bound tightens (``k = 1`` is the ELBO).
DENSITY_KS = (1, 10, 100, 1000)
#: Test points, at most (a fixed random subset), on which the KL is estimated.
DENSITY_POINTS = 2000
#: Decoded values per batch of the IWAE bound (points x importance samples x values per input), which bounds its
#: memory: 2^24 float32 values are 64 MB per tensor of the decoder's size.
DENSITY_VALUES = 1 << 24


def has_density(model: torch.nn.Module) -> bool:
    """Whether the model defines a density of its continuous inputs that the IWAE bound can evaluate: a VAE
    (``encode``, ``decode``, ``log_likelihood``) with a Gaussian decoder. A Bernoulli decoder's likelihood is a
    probability of binary values, not a density of real ones, so it is not compared with a density; nor is a VAE
    trained with ``elbo_weight = 0``, whose decoder never trained."""
    return all(callable(getattr(model, name, None)) for name in ("encode", "decode", "log_likelihood")) \
        and getattr(model, "likelihood", None) == "gaussian" and getattr(model, "elbo_weight", 1.0) > 0


def density_results(model: torch.nn.Module, data: DataBundle, *, device: torch.device, seed: int,
                    ks: tuple[int, ...] = DENSITY_KS, points: int = DENSITY_POINTS) -> dict[str, Any]:
    """``KL(p_true || p_model)`` of a model with ``has_density`` on data whose distribution has ``log_density``.

    On a fixed subset of at most ``points`` test points ``x_i ~ p_true``, the mean of ``log p_true(x_i) - L_k(x_i)``
    (``lineup.analysis.generative.kl_to_true_density``), where ``L_k`` is the IWAE bound on the model's
    ``log p_model(x_i)`` with ``k`` importance samples, moved from the model's normalised inputs to the stored ones
    by the normalisation's Jacobian. Every ``k`` of ``ks`` uses the same points and the first ``k`` of one set of
    draws seeded by ``seed`` (``iwae_log_likelihoods``).

    Returns:
        ``density_kl``, ``density_kl_standard_error`` and ``density_kl_k`` (the largest ``k``), ``density_kl_points``,
        ``density_kl_by_k`` (``{str(k): [value, standard error]}``) and ``density_val_log_p``, the mean
        ``log p_true`` of the validation inputs in the model's coordinates, which added to a validation negative
        ELBO (``val_reconstruction + val_kl``) gives the epoch's ``k = 1`` bound on the KL; and the baseline
        ``density_kl_gaussian`` (with its ``_standard_error``), the KL on the same points of the isotropic Gaussian
        fitted to the training inputs (``isotropic_gaussian_log_density``), the best a collapsed VAE can do. Empty
        when the model or the distribution has no density; ``density_error`` when the bound is not finite.
    """
    dist = data.distribution
    if not (has_density(model) and callable(getattr(dist, "log_density", None))) or len(data.test) < 2:
        return {}
    rows = data.test.x[fixed_rows(len(data.test), points)]
    log_p_true = dist.log_density(rows.double().numpy())  # (n,)
    jacobian = data.normalization.log_det_jacobian(data.input_shape)
    x = data.normalization.apply(rows.to(device))
    chunk = max(1, DENSITY_VALUES // (len(rows) * int(np.prod(data.input_shape))))
    generator = torch.Generator(device=device).manual_seed(seed)
    bounds = iwae_log_likelihoods(model, x, ks=ks, generator=generator, chunk=chunk)  # type: ignore[arg-type]
    by_k = {}
    for k, bound in bounds.items():
        if not bool(torch.isfinite(bound).all()):  # e.g. a decoder scale driven to 0: no estimate, and no crash
            return {"density_error": f"the model's log-density bound (k = {k}) is not finite on some test points"}
        by_k[k] = kl_to_true_density(log_p_true, bound.double().cpu().numpy() + jacobian, k=k)
    top = by_k[max(ks)]
    val_log_p = float(dist.log_density(data.val.x.double().numpy()).mean()) - jacobian if len(data.val) else None
    out = {"density_kl": top.value, "density_kl_standard_error": top.standard_error, "density_kl_k": top.k,
           "density_kl_points": top.n, "density_kl_by_k": {str(k): [r.value, r.standard_error] for k, r in
                                                           by_k.items()},
           "density_val_log_p": val_log_p}
    try:
        log_p_gaussian = isotropic_gaussian_log_density(data.train.x.double().flatten(1).numpy(),
                                                        rows.double().flatten(1).numpy())
    except ValueError:  # constant training inputs have no Gaussian density
        return out
    gaussian = kl_to_true_density(log_p_true, log_p_gaussian)
    return {**out, "density_kl_gaussian": gaussian.value,
            "density_kl_gaussian_standard_error": gaussian.standard_error}
