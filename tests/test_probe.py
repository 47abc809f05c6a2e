"""The linear probe against scikit-learn, its use of the training split only, and the PCA and t-SNE views."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from lineup.analysis.probe import PROBE_C, linear_probe, pca_view, tsne_view


def _blobs(n: int, *, seed: int, d: int = 5, k: int = 3, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples of ``k`` Gaussian classes in ``d`` dimensions whose means are 2 apart on the first axes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    f = spread * rng.normal(size=(n, d))
    f[np.arange(n), y] += 2.0
    return f, y


def test_probe_is_logistic_regression_on_training_standardised_features() -> None:
    # Cross-check against scikit-learn built by hand: standardise with the training split's mean and standard
    # deviation, fit multinomial logistic regression (L2, C = 1) on the training split, predict the test split.
    f_train, y_train = _blobs(300, seed=0)
    f_test, y_test = _blobs(200, seed=1)
    f_train[:, 1] *= 50.0  # one feature on another scale: the probe must standardise (with training statistics)
    f_test[:, 1] *= 50.0
    scaler = StandardScaler().fit(f_train)
    reference = LogisticRegression(C=PROBE_C, max_iter=1000).fit(scaler.transform(f_train), y_train)
    expected = reference.predict(scaler.transform(f_test))
    score = linear_probe(f_train, y_train, f_test, y_test)
    assert np.array_equal(score.pred, expected)
    assert score.accuracy == pytest.approx(float((expected == y_test).mean()), abs=1e-12)
    assert score.train_accuracy == pytest.approx(
        float((reference.predict(scaler.transform(f_train)) == y_train).mean()), abs=1e-12)
    # Means 2 apart with unit noise: about 85% for three classes, far above the chance level of 1/3.
    assert 0.7 < score.accuracy < 1.0


def test_probe_learns_from_the_training_labels_only() -> None:
    # Training labels shuffled against their features: nothing is left to learn, and a probe that (wrongly) saw the
    # test labels would still score well. Over 600 test examples chance is 1/3 +- 0.02.
    f_train, y_train = _blobs(300, seed=0)
    f_test, y_test = _blobs(600, seed=1)
    shuffled = np.random.default_rng(2).permutation(y_train)
    assert linear_probe(f_train, shuffled, f_test, y_test).accuracy < 0.45
    assert linear_probe(f_train, y_train, f_test, y_test).accuracy > 0.75


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"f_train": np.zeros((4, 2)), "f_test": np.zeros((2, 3))}, "differ in width"),
    ({"y_train": np.zeros(4, dtype=int)}, "single class"),
    ({"f_train": np.full((4, 2), np.nan)}, "finite"),
    ({"y_test": np.zeros(3, dtype=int)}, r"shape \(2,\)"),
])
def test_probe_refuses_bad_input(kwargs: dict[str, np.ndarray], message: str) -> None:
    args = {"f_train": np.arange(8.0).reshape(4, 2), "y_train": np.array([0, 0, 1, 1]),
            "f_test": np.zeros((2, 2)), "y_test": np.array([0, 1]), **kwargs}
    with pytest.raises(ValueError, match=message):
        linear_probe(args["f_train"], args["y_train"], args["f_test"], args["y_test"])


def test_views_are_deterministic_and_keep_separated_classes_apart() -> None:
    f, y = _blobs(150, seed=3, d=10, spread=0.3)
    f[np.arange(150), y] += 4.0  # three tight, well-separated clusters
    for view in (pca_view, tsne_view):
        a, b = view(f, seed=0), view(f.copy(), seed=0)
        assert a.shape == (150, 2)
        assert np.array_equal(a, b)
        # Each point's nearest neighbour in the plane is of its class: the clusters survive the projection.
        d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.diag(np.full(150, np.inf))
        assert (y[d.argmin(axis=1)] == y).mean() > 0.95


def test_pca_view_is_the_projection_on_the_two_leading_directions() -> None:
    # Points on a line along (1, 1, 0) plus a smaller spread along (0, 0, 1): PC 1 is the line, PC 2 the z axis,
    # and the coordinates are the centred distances along them (up to the sign, which PCA fixes the same way).
    t = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    z = np.array([0.5, -0.5, 0.0, -0.5, 0.5])  # centred and orthogonal to t, so the two directions do not mix
    f = np.stack([t, t, z], axis=1)
    v = pca_view(f)
    np.testing.assert_allclose(np.abs(v[:, 0]), np.abs(t) * np.sqrt(2), atol=1e-9)
    np.testing.assert_allclose(np.abs(v[:, 1]), np.abs(z), atol=1e-9)
    # One-dimensional features (logistic regression's single logit) get a zero second coordinate.
    np.testing.assert_allclose(pca_view(t[:, None])[:, 1], 0.0, atol=1e-12)


def test_views_refuse_too_few_examples() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        tsne_view(np.zeros((3, 2)))
