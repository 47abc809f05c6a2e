"""Synthetic data: distributions known exactly (Gaussian mixtures on the plane, noisy shape templates) with
their posterior, Bayes classifier and Bayes risk, and contour plots of random polynomials.

``load_synthetic`` draws a named dataset's splits (``lineup.data.load`` hands synthetic names to it);
``DATASETS`` lists the names with their options.
"""

from lineup.data.synthetic._catalog import (
    DATASETS,
    dataset_options,
    has_known_distribution,
    is_synthetic,
    list_datasets,
    load_synthetic,
)
from lineup.data.synthetic._distribution import (
    BayesRisk,
    DecisionGrid,
    KnownDistribution,
    LabelNoise,
    bayes_risk_monte_carlo,
    decision_grid,
)
from lineup.data.synthetic.contours import PolynomialContours, render_contours
from lineup.data.synthetic.images import SHAPES, shape_template, shape_templates
from lineup.data.synthetic.mixtures import (
    GaussianMixture,
    bayes_risk_quadrature,
    moons,
    rings,
    shared_covariance_reduction,
    spirals,
    two_gaussian_bayes_risk,
    two_gaussians,
    xor_blobs,
)

__all__ = [
    "DATASETS",
    "SHAPES",
    "BayesRisk",
    "DecisionGrid",
    "GaussianMixture",
    "KnownDistribution",
    "LabelNoise",
    "PolynomialContours",
    "bayes_risk_monte_carlo",
    "bayes_risk_quadrature",
    "dataset_options",
    "decision_grid",
    "has_known_distribution",
    "is_synthetic",
    "list_datasets",
    "load_synthetic",
    "moons",
    "render_contours",
    "rings",
    "shape_template",
    "shape_templates",
    "shared_covariance_reduction",
    "spirals",
    "two_gaussian_bayes_risk",
    "two_gaussians",
    "xor_blobs",
]
