"""A linear probe of every model's ``forward_features``, measured where the run executes.

After training, the model computes the features of a fixed subset of the training split (at most
``PROBE_TRAIN_EXAMPLES``, the same examples for every run of a study) and of the whole test split, once, in
evaluation mode; softmax regression is fitted on the training features and scored on the test features
(``lineup.analysis.probe.linear_probe``). The probe is the same for every model, so a triplet-trained encoder, a
classifier's penultimate layer and the raw pixels of softmax regression are read alike. A run's summary gets:

- ``probe_acc``: the probe's test accuracy; ``probe_train_acc``: its accuracy on the examples it was fitted on;
- ``probe_dim``: the width of the features; ``probe_train_examples``: how many training examples it saw;
- ``probe_seconds``: what the features and the fit cost, in seconds of wall-clock time;
- ``probe_error`` instead, when the features are not finite.

The features are only read here: training never sees the probe, and the probe never changes the model.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from lineup.data._types import DataBundle, Normalization, Split

#: Training examples, at most, whose features the probe is fitted on (a fixed random subset beyond that): enough
#: for 10 classes and a few hundred features, and a fit of seconds even on the 784 pixels of softmax regression.
PROBE_TRAIN_EXAMPLES = 10_000


def has_probe(model: torch.nn.Module) -> bool:
    """Whether the model's features are a learned representation worth probing: every model trained by gradients
    (a scikit-learn estimator behind the model interface returns its class probabilities as features)."""
    return callable(getattr(model, "forward_features", None)) and not getattr(model, "fits_without_gradients", False)


@torch.no_grad()
def forward_features(model: Any, split: Split, norm: Normalization, *, device: torch.device,
                     batch_size: int) -> np.ndarray:
    """``(N, D)`` float32 features of every example of ``split``, in the model's current mode."""
    chunks = [model.forward_features(norm.apply(split.x[lo: lo + batch_size].to(device))).float().cpu().numpy()
              for lo in range(0, len(split), batch_size)]
    return np.concatenate(chunks)


def probe_results(model: Any, data: DataBundle, rows: torch.Tensor, *, device: torch.device,
                  batch_size: int) -> dict[str, Any]:
    """The summary entries of the module docstring.

    Args:
        model: the trained model; put in evaluation mode for the features and returned to its mode after.
        data: the run's data (its training and test splits are read).
        rows: positions in the training split of the examples the probe is fitted on.
        device: where the model is.
        batch_size: examples per forward pass.
    """
    # scikit-learn only now, after training: a worker that imported it at start would carry its ~100 MB through
    # every epoch.
    from lineup.analysis.probe import PROBE_C, linear_probe

    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        train = data.train.take(rows)
        f_train = forward_features(model, train, data.normalization, device=device, batch_size=batch_size)
        f_test = forward_features(model, data.test, data.normalization, device=device, batch_size=batch_size)
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"probe_dim": int(f_train.shape[1]), "probe_train_examples": len(train),
                           "probe_c": PROBE_C}
    y_train = train.y.numpy()
    if not (np.isfinite(f_train).all() and np.isfinite(f_test).all()):
        out["probe_error"] = "the features are not finite: no probe of them is possible"
    elif len(np.unique(y_train)) < 2:
        out["probe_error"] = "the probe's training examples hold a single class"
    else:
        score = linear_probe(f_train, y_train, f_test, data.test.y.numpy())
        out.update(probe_acc=score.accuracy, probe_train_acc=score.train_accuracy)
    out["probe_seconds"] = time.perf_counter() - t0
    return out
