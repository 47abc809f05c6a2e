"""Clustering and linear read-outs of latent codes: Hungarian accuracy by hand, NMI/ARI, PCA and pixel baselines."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from lineup import data
from lineup.analysis.latent import (
    baseline_scores,
    cluster_latents,
    cluster_scores,
    contingency_matrix,
    hungarian_accuracy,
    latent_scores_on,
    pca_features,
    svm_on_latents,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # k-means on a few hundred points is a millisecond's work; on a busy machine OpenMP threads spinning for a
    # share of the cores make it take seconds.
    with threadpool_limits(limits=1):
        yield


def digits(classes: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, lineup's fixed stratified 80/20 split, pixels in [0, 1]."""
    b = data.load("digits", classes=classes, val_fraction=0.0)
    return b.train.x.numpy() / 255.0, b.train.y.numpy(), b.test.x.numpy() / 255.0, b.test.y.numpy()


# ------------------------------------------------------------------------------------------------------------
# Hungarian accuracy


def test_a_relabelled_clustering_is_perfect() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=200)
    permutation = np.array([3, 0, 4, 1, 2])
    assert hungarian_accuracy(y, permutation[y]) == 1.0
    assert hungarian_accuracy(y, 10 * permutation[y] + 7) == 1.0  # any cluster ids


def test_a_known_confusion_by_hand() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    # Rows are classes, columns clusters:
    #   class 0: 3 in cluster 0, 1 in cluster 1
    #   class 1: 2 in cluster 1, 1 in cluster 2
    #   class 2: 2 in cluster 2, 1 in cluster 0
    c = contingency_matrix(y, clusters)
    assert c.tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
    # The best one-to-one matching is the diagonal, 3 + 2 + 2 = 7 of 10; any other permutation takes at most one
    # diagonal entry (e.g. 3 + 1 + 0 or 1 + 1 + 1).
    assert hungarian_accuracy(y, clusters) == pytest.approx(0.7)


def test_more_or_fewer_clusters_than_classes() -> None:
    # Class 0 split over clusters 0 and 1: only one of them is matched, so 1 + 2 of 4 are right.
    assert hungarian_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])) == pytest.approx(0.75)
    # Classes 0 and 1 merged in cluster 0: only one of them gets it, so again 1 + 2 of 4.
    assert hungarian_accuracy(np.array([0, 1, 2, 2]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # One cluster for everything: the largest class.
    assert hungarian_accuracy(np.array([0, 1, 1, 1, 2]), np.zeros(5, dtype=int)) == pytest.approx(0.6)


def test_nmi_and_ari_are_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=300)
    clusters = np.where(rng.random(300) < 0.7, y, rng.integers(0, 6, size=300))  # 70% kept, the rest random
    scores = cluster_scores(y, clusters)
    assert scores.nmi == normalized_mutual_info_score(y, clusters)
    assert scores.ari == adjusted_rand_score(y, clusters)
    assert scores.accuracy == hungarian_accuracy(y, clusters)
    assert 0.7 < scores.accuracy < 0.85  # the kept 70% plus the random ones that happen to be right


def test_bad_input_fails_early() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        hungarian_accuracy(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="k must be between"):
        cluster_latents(np.zeros((3, 2)), np.zeros((2, 2)), np.array([0, 1]), k=4)
    with pytest.raises(ValueError, match="method"):
        cluster_latents(np.zeros((3, 2)), np.zeros((2, 2)), np.array([0, 1]), k=2, method="dbscan")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------
# Baselines on real digits


def test_pca_is_fitted_on_the_training_split_only() -> None:
    x_train, _, x_test, _ = digits()
    a, b = pca_features(x_train, x_test, dim=3)
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    mean = flat_train.mean(axis=0)
    components = np.linalg.svd(flat_train - mean, full_matrices=False)[2][:3]  # (3, 64)
    expected = (flat_test - mean) @ components.T
    signs = np.sign((b * expected).sum(axis=0))  # a principal direction is defined up to its sign
    np.testing.assert_allclose(b, expected * signs, atol=1e-8)
    np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=1e-10)  # centred on the training mean


def test_pca2_kmeans_tells_zeros_from_ones() -> None:
    """Zeros (a ring of ink) and ones (a central stroke) differ along the first principal direction of their
    pixels, so two k-means clusters of the first two components are the two digits. Measured on lineup's split
    (288 training, 72 test images): 71 of 72 test images right (0.986), the same for every seed; the threshold
    allows two more mistakes. For contrast, all ten digits in the same two dimensions reach only 0.59."""
    x_train, y_train, x_test, y_test = digits([0, 1])
    a, b = pca_features(x_train, x_test, dim=2)
    for method in ("kmeans", "gmm"):
        scores = cluster_latents(a, b, y_test, k=2, method=method, seed=0)
        assert scores.accuracy >= 0.95 and scores.ari > 0.8, (method, scores)

    x_train, y_train, x_test, y_test = digits()
    a, b = pca_features(x_train, x_test, dim=2)
    assert cluster_latents(a, b, y_test, k=10, seed=0).accuracy < 0.75


def test_kmeans_restarts_make_the_clustering_a_property_of_the_code_not_of_the_seed() -> None:
    """k = 10 on PCA-8 of the digits has many local minima. Measured: with 10 restarts the cluster accuracy of
    seeds 0-5 spread from 0.666 to 0.747 (8 points, the best of them a worse fit); with ``KMEANS_RESTARTS`` (100)
    from 0.666 to 0.669, one test image. The bound allows a little more than that."""
    x_train, _, x_test, y_test = digits()
    a, b = pca_features(x_train, x_test, dim=8)
    accuracies = [cluster_latents(a, b, y_test, k=10, seed=seed).accuracy for seed in range(6)]
    assert max(accuracies) - min(accuracies) <= 0.01, accuracies


def test_linear_svm_and_baseline_table() -> None:
    x_train, y_train, x_test, y_test = digits()
    table = baseline_scores(x_train, y_train, x_test, y_test, pca_dims=(2, 10), seed=0)
    assert list(table) == ["pixels", "pca-2", "pca-10"]
    a, b = pca_features(x_train, x_test, dim=2)
    assert table["pca-2"].kmeans == cluster_latents(a, b, y_test, k=10, seed=0)
    assert table["pca-2"].svm_accuracy == svm_on_latents(a, y_train, b, y_test, seed=0)
    # A linear SVM reads the ten digits from their 64 pixels well, from two principal components badly.
    assert table["pixels"].svm_accuracy > 0.9
    assert table["pca-2"].svm_accuracy < table["pca-10"].svm_accuracy < table["pixels"].svm_accuracy
    for scores in table.values():
        for clustering in (scores.kmeans, scores.gmm):
            assert 0 < clustering.accuracy <= 1 and 0 < clustering.nmi <= 1


def test_several_held_out_sets_are_scored_by_one_fit_each() -> None:
    """The test and validation splits read by the same fits give what separate fits on each give (every fit is
    seeded), and the PCA projects each held-out set as it would alone."""
    b = data.load("digits", classes=[3, 5, 8])
    x_train, x_val, x_test = (s.x.numpy().reshape(len(s), -1) / 255.0 for s in (b.train, b.val, b.test))
    y_train, y_val, y_test = (s.y.numpy() for s in (b.train, b.val, b.test))
    a, p_val, p_test = pca_features(x_train, x_val, x_test, dim=3)
    np.testing.assert_allclose(pca_features(x_train, x_test, dim=3)[1], p_test)
    both = latent_scores_on(a, y_train, {"val": (p_val, y_val), "test": (p_test, y_test)}, seed=1)
    for name, (z, y) in (("val", (p_val, y_val)), ("test", (p_test, y_test))):
        assert both[name].svm_accuracy == svm_on_latents(a, y_train, z, y, seed=1)
        assert both[name].kmeans == cluster_latents(a, z, y, k=3, method="kmeans", seed=1)
        assert both[name].gmm == cluster_latents(a, z, y, k=3, method="gmm", seed=1)
    assert len(y_val) != len(y_test) and both["val"] != both["test"]
    with pytest.raises(ValueError, match="shapes do not fit: z_train .*, val codes \\(2, 2\\)"):
        latent_scores_on(a, y_train, {"val": (np.zeros((2, 2)), np.array([0, 1]))})
