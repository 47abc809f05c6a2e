"""What a learned code knows about the classes: clustering scores and linear classifiers on latent features.

An autoencoder or a VAE is trained without labels (or with a head that only probes), so its code is judged by
what can be read from it afterwards: how well an unsupervised clustering of it matches the classes
(``cluster_latents``: accuracy under the best one-to-one matching of clusters to classes, NMI, ARI) and how well
a linear SVM separates the classes in it (``svm_on_latents``). The same measurements on the raw pixels and on a
PCA of them (``pixel_features``, ``pca_features``) are the baselines a learned code has to beat; PCA is the
linear autoencoder's optimum (Baldi & Hornik, 1989), so a code that does no better than a PCA of the same width
has learned nothing a linear map could not.

Conventions as in scikit-learn: arrays in, numbers out, rows are examples; ``*_accuracy`` and ``*_score`` are
higher-is-better. Every estimator is fitted on the training features only and scored on the test features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

ClusterMethod = Literal["kmeans", "gmm"]

#: Features up to this width get full-covariance Gaussian mixtures; wider ones (raw pixels) diagonal ones, whose
#: D parameters per component can be estimated from a few thousand examples where D(D+1)/2 cannot.
FULL_COVARIANCE_MAX_DIM = 64

#: k-means++ restarts (the fit of lowest within-cluster sum of squares is kept): many for codes up to
#: ``FULL_COVARIANCE_MAX_DIM`` wide, where a restart costs milliseconds, fewer for wider features (raw pixels),
#: where each costs about half a second per 4,000 examples. With 10 restarts, k = 10 on PCA-8 of mnist-5k found a
#: different local minimum for each seed (cluster accuracy 49.1, 50.9 and 58.8%, the best of them the worst fit);
#: with 100 every seed reached the same sum of squares to 0.01% and 48.8 to 49.3%. Few restarts measure the
#: luck of the initialisation as much as the geometry of the code.
KMEANS_RESTARTS = 100
KMEANS_RESTARTS_WIDE = 10


def _labels(name: str, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {y.shape}")
    return y


def _matrix(name: str, z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"{name} must be (N, D) features, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} must be finite")
    return z


def contingency_matrix(y_true: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of the ``i``-th class (sorted) put in the ``j``-th cluster (sorted).

    >>> contingency_matrix(np.array([0, 0, 1]), np.array([5, 7, 7])).tolist()
    [[1, 1], [0, 1]]
    """
    y_true, clusters = _labels("y_true", y_true), _labels("clusters", clusters)
    if y_true.shape != clusters.shape:
        raise ValueError(f"y_true and clusters differ in length: {y_true.size} vs {clusters.size}")
    classes, yi = np.unique(y_true, return_inverse=True)
    groups, ci = np.unique(clusters, return_inverse=True)
    return np.bincount(yi * len(groups) + ci, minlength=len(classes) * len(groups)).reshape(len(classes), len(groups))


def hungarian_accuracy(y_true: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy of a clustering under the best one-to-one matching of clusters to classes.

    The matching maximises the number of examples whose cluster is matched to their class: a linear assignment
    problem on the contingency matrix, solved exactly by the Hungarian method (Kuhn, 1955;
    ``scipy.optimize.linear_sum_assignment``). The usual clustering accuracy of deep clustering papers (e.g.
    Xie, Girshick & Farhadi, 2016, arXiv:1511.06335). With more clusters than classes the unmatched clusters
    count as errors, with fewer the unmatched classes do, so splitting a class into two clusters is not rewarded.

    Args:
        y_true: ``(N,)`` true classes (any labels).
        clusters: ``(N,)`` cluster ids (any labels, any number of them).

    >>> hungarian_accuracy(np.array([0, 0, 1, 1, 2]), np.array([2, 2, 0, 0, 1]))  # a relabelling
    1.0
    """
    c = contingency_matrix(y_true, clusters)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


@dataclass(frozen=True)
class ClusterScores:
    """How well a clustering matches the classes; each is 1 for a perfect match.

    Attributes:
        accuracy: ``hungarian_accuracy``.
        nmi: normalised mutual information (arithmetic normalisation, scikit-learn's default), in [0, 1].
        ari: adjusted Rand index, 0 in expectation for a random clustering, can be negative.
    """

    accuracy: float
    nmi: float
    ari: float


def cluster_scores(y_true: np.ndarray, clusters: np.ndarray) -> ClusterScores:
    """Hungarian accuracy, NMI and ARI of ``clusters`` against the classes ``y_true``."""
    accuracy = hungarian_accuracy(y_true, clusters)
    return ClusterScores(
        accuracy=accuracy,
        nmi=float(normalized_mutual_info_score(y_true, clusters)),
        ari=float(adjusted_rand_score(y_true, clusters)),
    )


def cluster_latents(
    z_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, *, k: int, method: ClusterMethod = "kmeans",
    seed: int = 0,
) -> ClusterScores:
    """Fit ``k`` clusters on the training codes, assign the test codes, and score them against the test classes.

    ``"kmeans"``: k-means++ with ``KMEANS_RESTARTS`` restarts (``KMEANS_RESTARTS_WIDE`` for codes wider than
    ``FULL_COVARIANCE_MAX_DIM``; scikit-learn's ``KMeans``); ``"gmm"``: a Gaussian mixture fitted by
    EM from a k-means start, with full covariances for codes up to ``FULL_COVARIANCE_MAX_DIM`` values wide and
    diagonal ones beyond. The codes are used as they are, not standardised: their geometry is what is judged.

    Args:
        z_train: ``(N_train, D)`` codes to fit the clusters on (no labels are used).
        z_test: ``(N_test, D)`` codes to assign.
        y_test: ``(N_test,)`` their classes.
        k: number of clusters (usually the number of classes).
        method: ``"kmeans"`` or ``"gmm"``.
        seed: seed of the initialisation.
    """
    z_train = _matrix("z_train", z_train)
    z_test, y_test = _held_out(z_train, "z_test", z_test, "y_test", y_test)
    return cluster_scores(y_test, _fit_clusters(z_train, k, method, seed).predict(z_test))


def _fit_clusters(z_train: np.ndarray, k: int, method: ClusterMethod, seed: int) -> KMeans | GaussianMixture:
    """``cluster_latents``'s clustering, fitted on the training codes."""
    if not 1 <= k <= len(z_train):
        raise ValueError(f"k must be between 1 and the number of training codes ({len(z_train)}), got {k}")
    if method == "kmeans":
        restarts = KMEANS_RESTARTS if z_train.shape[1] <= FULL_COVARIANCE_MAX_DIM else KMEANS_RESTARTS_WIDE
        return KMeans(n_clusters=k, n_init=restarts, random_state=seed).fit(z_train)
    if method == "gmm":
        covariance = "full" if z_train.shape[1] <= FULL_COVARIANCE_MAX_DIM else "diag"
        return GaussianMixture(k, covariance_type=covariance, reg_covar=1e-4, random_state=seed).fit(z_train)
    raise ValueError(f"method must be 'kmeans' or 'gmm', got {method!r}")


def _held_out(z_train: np.ndarray, z_name: str, z: np.ndarray, y_name: str, y: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Held-out codes and their classes, checked against each other and against the training codes' width."""
    z, y = _matrix(z_name, z), _labels(y_name, y)
    if z_train.shape[1] != z.shape[1] or len(z) != len(y):
        raise ValueError(f"shapes do not fit: z_train {z_train.shape}, {z_name} {z.shape}, {y_name} {y.shape}")
    return z, y


def svm_on_latents(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, *, seed: int = 0,
    c: float = 1.0,
) -> float:
    """Test accuracy of a linear SVM trained on standardised training codes.

    Standardisation (fitted on the training codes) puts every dimension on one scale, so the SVM's single
    regularisation constant means the same for codes of any scale; the classifier is scikit-learn's
    ``LinearSVC`` (squared hinge loss, one-vs-rest). This is the linear read-out of Radford et al. (2015,
    arXiv:1511.06434, section 5.1) and of the VAE + SVM comparisons a study makes.

    Args:
        z_train: ``(N_train, D)`` training codes.
        y_train: ``(N_train,)`` their classes.
        z_test: ``(N_test, D)`` test codes.
        y_test: ``(N_test,)`` their classes.
        seed: seed of the solver's coordinate order.
        c: the SVM's inverse regularisation strength.
    """
    z_train, y_train = _matrix("z_train", z_train), _labels("y_train", y_train)
    if len(z_train) != len(y_train):
        raise ValueError(f"shapes do not fit: z_train {z_train.shape}, y_train {y_train.shape}")
    z_test, y_test = _held_out(z_train, "z_test", z_test, "y_test", y_test)
    return float((_fit_svm(z_train, y_train, seed, c).predict(z_test) == y_test).mean())


def _fit_svm(z_train: np.ndarray, y_train: np.ndarray, seed: int, c: float) -> Pipeline:
    """``svm_on_latents``'s classifier, fitted on the training codes."""
    return make_pipeline(StandardScaler(), LinearSVC(C=c, random_state=seed, max_iter=10_000)).fit(z_train, y_train)


# ------------------------------------------------------------------------------------------------------------
# Baselines


def pixel_features(x: np.ndarray) -> np.ndarray:
    """Images ``(N, ...)`` as flat float64 rows ``(N, D)``: the raw-pixel baseline."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def pca_features(x_train: np.ndarray, *held_out: np.ndarray, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Every split projected on the first ``dim`` principal components of the training split.

    The PCA is fitted on the training images only, as a learned encoder would be, so the held-out splits (test,
    validation) are encoded without having been seen.

    Returns:
        ``(train (N_train, dim), *held_out (N_i, dim))``.
    """
    a, others = pixel_features(x_train), [pixel_features(x) for x in held_out]
    for b in others:
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"splits have different numbers of values per example: {a.shape[1]} vs {b.shape[1]}")
    if not 1 <= dim <= min(a.shape):
        raise ValueError(f"dim must be between 1 and min(N_train, D) = {min(a.shape)}, got {dim}")
    pca = PCA(n_components=dim, random_state=seed).fit(a)
    return pca.transform(a), *(pca.transform(b) for b in others)


@dataclass(frozen=True)
class LatentScores:
    """Every read-out of one representation: the linear SVM's test accuracy and both clusterings' scores."""

    svm_accuracy: float
    kmeans: ClusterScores
    gmm: ClusterScores


def latent_scores(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, *, k: int | None = None,
    seed: int = 0,
) -> LatentScores:
    """``svm_on_latents`` and ``cluster_latents`` with both methods; ``k`` defaults to the number of classes."""
    return latent_scores_on(z_train, y_train, {"test": (z_test, y_test)}, k=k, seed=seed)["test"]


def latent_scores_on(
    z_train: np.ndarray, y_train: np.ndarray, held_out: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
    k: int | None = None, seed: int = 0,
) -> dict[str, LatentScores]:
    """``latent_scores`` of several held-out sets (``name -> (codes, classes)``: the test split, the validation
    split), with each estimator fitted once on the training codes, so every set is scored by the same fits."""
    z_train, y_train = _matrix("z_train", z_train), _labels("y_train", y_train)
    if len(z_train) != len(y_train):
        raise ValueError(f"shapes do not fit: z_train {z_train.shape}, y_train {y_train.shape}")
    sets = {name: _held_out(z_train, f"{name} codes", z, f"{name} classes", y) for name, (z, y) in held_out.items()}
    k = len(np.unique(y_train)) if k is None else k
    svm = _fit_svm(z_train, y_train, seed, 1.0)
    kmeans, gmm = (_fit_clusters(z_train, k, method, seed) for method in ("kmeans", "gmm"))
    return {name: LatentScores(svm_accuracy=float((svm.predict(z) == y).mean()),
                               kmeans=cluster_scores(y, kmeans.predict(z)), gmm=cluster_scores(y, gmm.predict(z)))
            for name, (z, y) in sets.items()}


def baseline_scores(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
    pca_dims: tuple[int, ...] = (2, 10), k: int | None = None, seed: int = 0,
) -> dict[str, LatentScores]:
    """``latent_scores`` on the raw pixels (``"pixels"``) and on PCAs of each width (``"pca-2"`` ...)."""
    out = {"pixels": latent_scores(pixel_features(x_train), y_train, pixel_features(x_test), y_test, k=k, seed=seed)}
    for dim in pca_dims:
        a, b = pca_features(x_train, x_test, dim=dim, seed=seed)
        out[f"pca-{dim}"] = latent_scores(a, y_train, b, y_test, k=k, seed=seed)
    return out
