"""What a frozen representation knows about the classes: a linear probe, and two 2-D views of it.

- ``linear_probe``: softmax regression fitted on the training split's features and scored on the test split's
  (Alain & Bengio, 2016, arXiv:1610.01644). The features are frozen, computed once by the trained model, so the
  probe measures the representation, not a head that trained while the features moved.
- ``pca_view`` and ``tsne_view``: the features projected on their first two principal components, and embedded
  in the plane by t-SNE (van der Maaten & Hinton, 2008), both deterministic for a given seed.

Conventions as in scikit-learn: arrays in, numbers out, rows are examples; ``*_accuracy`` is higher-is-better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

#: Inverse L2 strength of the probe, on standardised features: scikit-learn's default, weak enough that a few
#: thousand examples of a 64-d embedding are fitted almost without bias, strong enough to keep 784 pixels stable.
PROBE_C = 1.0

#: L-BFGS iterations of the probe at most; standardised features converge in a few hundred.
PROBE_MAX_ITER = 1000

#: t-SNE's perplexity (scikit-learn's default), lowered to ``(N - 1) / 3`` for smaller samples.
PERPLEXITY = 30.0


def _features(name: str, f: np.ndarray) -> np.ndarray:
    f = np.asarray(f)
    if f.dtype != np.float32:  # float32 features (a model's) stay float32: the fit takes half as long
        f = f.astype(np.float64)
    if f.ndim != 2 or len(f) == 0 or f.shape[1] == 0:
        raise ValueError(f"{name} must be (N, D) features with N, D >= 1, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} must be finite: a diverged model's features cannot be probed")
    return f


def _labels(name: str, y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must hold one class per example, shape ({n},), got {y.shape}")
    return y


@dataclass(frozen=True)
class ProbeScore:
    """A linear probe's accuracies.

    Attributes:
        accuracy: on the test features.
        train_accuracy: on the training features it was fitted on.
        pred: ``(N_test,)`` predicted classes of the test features.
    """

    accuracy: float
    train_accuracy: float
    pred: np.ndarray


def probe_pipeline(*, c: float = PROBE_C) -> Pipeline:
    """The probe: standardisation fitted on the training features, then multinomial logistic regression (L-BFGS).

    Standardising puts every feature on one scale, so one regularisation constant means the same for the
    embedding of any model, whatever its scale.
    """
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=PROBE_MAX_ITER))


def linear_probe(
    f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray, *, c: float = PROBE_C,
) -> ProbeScore:
    """Softmax regression fitted on frozen training features, scored on the test features.

    Features in float32 are fitted in float32 (scikit-learn keeps the type), others in float64.

    Args:
        f_train: ``(N_train, D)`` features of training examples.
        y_train: ``(N_train,)`` their classes (at least two distinct).
        f_test: ``(N_test, D)`` features of test examples, from the same model.
        y_test: ``(N_test,)`` their classes.
        c: inverse L2 regularisation strength on standardised features.

    Example:
        >>> f = np.array([[0.0], [1.0], [3.0], [4.0]])  # one feature separates the classes at 2
        >>> linear_probe(f, np.array([0, 0, 1, 1]), np.array([[0.5], [3.5]]), np.array([0, 1])).accuracy
        1.0
    """
    f_train, f_test = _features("f_train", f_train), _features("f_test", f_test)
    y_train, y_test = _labels("y_train", y_train, len(f_train)), _labels("y_test", y_test, len(f_test))
    if f_train.shape[1] != f_test.shape[1]:
        raise ValueError(f"f_train and f_test differ in width: {f_train.shape[1]} vs {f_test.shape[1]}")
    if f_train.dtype != f_test.dtype:
        f_train, f_test = f_train.astype(np.float64), f_test.astype(np.float64)
    if len(np.unique(y_train)) < 2:
        raise ValueError("y_train holds a single class: a probe needs at least two to tell apart")
    if not c > 0:
        raise ValueError(f"c must be positive, got {c}")
    # One BLAS thread: the problem is small (10 classes x a few hundred weights), and on a machine whose cores are
    # busy with other runs a thread pool only waits for them (measured: 6 s instead of 0.1 s for 5,400 x 64).
    with threadpool_limits(limits=1):
        probe = probe_pipeline(c=c).fit(f_train, y_train)
        pred = probe.predict(f_test)
    return ProbeScore(accuracy=float((pred == y_test).mean()),
                      train_accuracy=float((probe.predict(f_train) == y_train).mean()), pred=pred)


def _plane(f: np.ndarray) -> np.ndarray:
    """One-dimensional features get a zero second coordinate, so that every view is ``(N, 2)``."""
    return np.hstack([f, np.zeros_like(f)]) if f.shape[1] == 1 else f


def pca_view(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``(N, 2)``: the features projected on their first two principal components (signs fixed by scikit-learn's
    ``svd_flip``, so the same features always give the same picture).

    >>> pca_view(np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]])).round(6).tolist()
    [[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]]
    """
    f = _plane(_features("features", features).astype(np.float64))
    if len(f) < 2:
        raise ValueError(f"a PCA view needs at least 2 examples, got {len(f)}")
    with threadpool_limits(limits=1):  # as in linear_probe: a busy machine's threads only wait for each other
        return PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(f)


def tsne_view(features: np.ndarray, *, seed: int = 0, perplexity: float = PERPLEXITY) -> np.ndarray:
    """``(N, 2)``: a t-SNE embedding of the features (Barnes-Hut, PCA initialisation, Euclidean distances).

    Deterministic for a given ``seed`` (scikit-learn's ``random_state``; with the PCA initialisation the start,
    and so the result, barely depends on it). Distances between clusters in the picture mean little; what it shows
    is which examples are neighbours. The perplexity is lowered to
    ``(N - 1) / 3`` for samples too small for it.

    Args:
        features: ``(N, D)`` features, ``N >= 4``.
        seed: the random state.
        perplexity: the effective number of neighbours each point attends to.
    """
    f = _plane(_features("features", features).astype(np.float64))
    if len(f) < 4:
        raise ValueError(f"a t-SNE view needs at least 4 examples, got {len(f)}")
    perplexity = min(perplexity, (len(f) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    with threadpool_limits(limits=1):  # as in linear_probe: measured 5 s on one thread, 26 s with a busy pool
        return np.asarray(tsne.fit_transform(f), dtype=np.float64)
