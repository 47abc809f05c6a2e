"""Shape templates with Gaussian pixel noise: the Bayes rule against independent template matching, and the
Bayes risk against the closed form and against fresh samples (within 3 binomial standard errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lineup.data.synthetic import SHAPES, shape_template, shape_templates


def phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def empirical_error(dist: object, n: int, seed: int) -> tuple[float, float]:
    x, y = dist.sample(n, seed=seed)  # type: ignore[attr-defined]
    r = float((dist.bayes_predict(x) != y).mean())  # type: ignore[attr-defined]
    return r, math.sqrt(r * (1 - r) / n)


def test_templates_are_binary_shapes_at_pixel_centres() -> None:
    square = shape_template("square", 5)  # pixel centres -0.8, -0.4, 0, 0.4, 0.8; inside where |u|, |v| <= 0.6
    assert square.tolist() == [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    for name in SHAPES:
        t = shape_template(name, 16)
        assert t.shape == (16, 16) and set(np.unique(t)) <= {0.0, 1.0} and 0 < t.sum() < 256
    # Every pair of shapes differs, or two classes would be indistinguishable.
    flat = [shape_template(s, 16).ravel() for s in SHAPES]
    assert min(np.abs(a - b).sum() for i, a in enumerate(flat) for b in flat[i + 1:]) > 0
    with pytest.raises(ValueError, match="unknown shape"):
        shape_template("hexagon", 16)


def test_two_shapes_with_shared_noise_have_the_closed_form() -> None:
    # Binary templates, noise sigma: delta = sqrt(#differing pixels) / sigma, R* = Phi(-delta / 2).
    sigma = 2.0
    g = shape_templates(("square", "disk"), size=16, noise=sigma)
    differing = np.abs(shape_template("square", 16) - shape_template("disk", 16)).sum()
    expected = phi(-math.sqrt(differing) / sigma / 2)
    r = g.bayes_risk()
    assert r.method == "closed-form"
    assert r.value == pytest.approx(expected, abs=1e-12)
    empirical, se = empirical_error(g, 20_000, seed=1)
    assert abs(empirical - r.value) <= 3 * se


def test_shared_noise_gives_the_template_matcher_and_unequal_noise_the_quadratic_rule() -> None:
    shapes = ("square", "disk", "cross", "diamond")
    templates = np.stack([shape_template(s, 16).ravel() for s in shapes])  # (4, 256)
    shared = shape_templates(shapes, noise=1.5)
    x, _ = shared.sample(2000, seed=0)
    rows = x.reshape(2000, -1)
    distances = ((rows[:, None, :] - templates[None]) ** 2).sum(axis=2)  # (N, 4)
    np.testing.assert_array_equal(shared.bayes_predict(x), distances.argmin(axis=1))
    # One level per class: argmax of -|x - t_k|^2 / (2 s_k^2) - D log s_k (equal priors).
    sigmas = np.array([1.0, 1.5, 2.0, 1.2])
    per_class = shape_templates(shapes, noise=sigmas)
    x, _ = per_class.sample(2000, seed=0)
    rows = x.reshape(2000, -1)
    distances = ((rows[:, None, :] - templates[None]) ** 2).sum(axis=2)
    score = -distances / (2 * sigmas**2) - 256 * np.log(sigmas)
    np.testing.assert_array_equal(per_class.bayes_predict(x), score.argmax(axis=1))
    np.testing.assert_allclose(per_class.posterior(x).sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "method"),
    [
        (dict(shapes=("square", "disk", "cross"), noise=2.0), "quadrature"),  # shared noise, 3 classes: the plane
        (dict(noise=1.5), "monte-carlo"),  # 4 classes: a 3-dimensional reduced problem
        (dict(noise=1.5, noise_profile="radial"), "monte-carlo"),
        (dict(noise=[2.0, 2.5, 3.0, 2.2], size=8), "monte-carlo"),  # quadratic rule
    ],
)
def test_bayes_risk_agrees_with_the_bayes_classifier_on_fresh_samples(kwargs: dict, method: str) -> None:
    g = shape_templates(**kwargs)
    r = g.bayes_risk()
    assert r.method == method
    empirical, se = empirical_error(g, 30_000, seed=2)
    # The Monte-Carlo estimate has its own standard error; the two are independent.
    assert abs(empirical - r.value) <= 3 * math.sqrt(se**2 + (r.standard_error or 0.0) ** 2)


def test_image_samples_have_image_shape_and_are_seeded() -> None:
    g = shape_templates(size=28)
    x, y = g.sample(10, seed=3)
    assert x.shape == (10, 1, 28, 28) and g.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(x, g.sample(10, seed=3)[0])
    assert g.class_names == ["square", "disk", "cross", "diamond"]
    # The radial profile's noise grows from the centre to the corners (0.5 to 1.5 times noise).
    radial = shape_templates(noise=1.0, noise_profile="radial")
    var = radial.covariances[0].reshape(16, 16)
    assert var[0, 0] > var[8, 8] and var[0, 0] == pytest.approx((0.5 + math.hypot(15 / 16, 15 / 16) / 2**0.5) ** 2)
