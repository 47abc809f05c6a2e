"""scikit-learn classifiers as lineup models: reference points that no gradient trains.

A kernel machine or a forest is what a neural network is usually measured against on small tabular or 2-D data
(the RBF SVM is consistent for any distribution with a suitable kernel width, Steinwart, 2005). Here such an
estimator sits behind the same interface as every model, so the same study runs it on the same data and seeds, and
the report shows its accuracy, its error decomposition and its decision regions beside the networks'. The worker
fits it on the whole training split with ``fit_split`` instead of the gradient loop (``fits_without_gradients``);
the study's optimiser settings do not apply to it.

``forward_features`` returns the estimator's class probabilities and ``forward_head`` their logarithm, so
``softmax(forward(x))`` is ``predict_proba(x)`` and the cross-entropy objective measures the estimator's log-loss.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from lineup.models._base import InputShape, LineupModel
from lineup.models._registry import register_model

#: Floor of a predicted probability before its logarithm: an estimator certain of a class (a forest whose trees all
#: agree) gets a large finite log-loss on a mistake, not an infinite one.
PROBABILITY_FLOOR = 1e-7


class EstimatorModel(LineupModel):
    """A fitted-at-once scikit-learn classifier on the flattened input.

    Before ``fit_split`` it predicts the uniform distribution, so the study can check the model contract before
    anything is trained.

    Args:
        input_shape: ``(C, H, W)`` of one example.
        num_classes: number of classes.
        estimator: an unfitted scikit-learn classifier with ``predict_proba``.
    """

    fits_without_gradients: ClassVar[bool] = True

    def __init__(self, input_shape: InputShape, num_classes: int, estimator: Any) -> None:
        super().__init__()
        self.estimator = estimator
        self.num_classes = num_classes
        self.feature_dim = num_classes
        self.in_features = math.prod(input_shape)
        self.fitted = False

    def fit_split(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> None:
        """Fit the estimator on model inputs ``x`` ``(N, C, H, W)`` (normalised) and labels ``y`` ``(N,)``.

        Args:
            seed: the run's seed, for estimators that draw random numbers (a forest's bootstrap samples, the
                cross-validation of an SVM's probability calibration).
        """
        if "random_state" in self.estimator.get_params():
            self.estimator.set_params(random_state=seed % 2**32)
        self.estimator.fit(x.detach().reshape(len(x), -1).cpu().double().numpy(), y.cpu().numpy())
        self.fitted = True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, num_classes)``; a class absent from the training split gets 0."""
        if not self.fitted:
            return torch.full((len(x), self.num_classes), 1.0 / self.num_classes, device=x.device)
        rows = x.detach().reshape(len(x), -1).cpu().double().numpy()  # (N, C*H*W)
        probs = np.zeros((len(x), self.num_classes))
        probs[:, self.estimator.classes_] = self.estimator.predict_proba(rows)
        return torch.from_numpy(probs).float().to(x.device)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return torch.log(features.clamp_min(PROBABILITY_FLOOR))


@register_model
def rbf_svm(input_shape: InputShape, num_classes: int, *, c: float = 1.0, gamma: float | None = None
            ) -> EstimatorModel:
    """Support vector machine with a Gaussian (RBF) kernel, fitted by scikit-learn, with Platt-scaled probabilities.

    The SVM is fitted on the whole training split and a sigmoid (Platt, 1999) maps its decision values to
    probabilities, fitted on decision values cross-validated over 5 folds (``CalibratedClassifierCV`` with
    ``ensemble=False``). Its fit grows about quadratically with the training examples: keep it to a few thousand.

    Args:
        c: inverse strength of the regularisation.
        gamma: kernel coefficient ``exp(-gamma |x - x'|^2)``; ``None``: scikit-learn's ``"scale"``,
            ``1 / (D var(x))``.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    svm = SVC(C=c, kernel="rbf", gamma="scale" if gamma is None else gamma)
    return EstimatorModel(input_shape, num_classes, CalibratedClassifierCV(svm, method="sigmoid", ensemble=False))


@register_model
def random_forest(input_shape: InputShape, num_classes: int, *, trees: int = 100, max_depth: int | None = None,
                  min_samples_leaf: int = 1) -> EstimatorModel:
    """Random forest (Breiman, 2001) fitted by scikit-learn; its probabilities are the trees' mean votes.

    Args:
        trees: number of trees.
        max_depth: depth limit of each tree (``None``: grown until the leaves are pure or small).
        min_samples_leaf: training examples a leaf holds at least; larger smooths the probabilities.
    """
    from sklearn.ensemble import RandomForestClassifier

    return EstimatorModel(input_shape, num_classes,
                          RandomForestClassifier(n_estimators=trees, max_depth=max_depth,
                                                 min_samples_leaf=min_samples_leaf, n_jobs=1))
