"""Learning dynamics on hand-made histories, with the expected numbers worked out in comments."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from lineup.analysis import dynamics
from lineup.analysis.dynamics import (
    best_epoch,
    cumulative_seconds,
    epochs_to_reach,
    generalization_gap,
    summarize_dynamics,
    train_risk_auc,
)

# Five epochs of 10 steps each; early stopping would pick epoch 3 (lowest val_loss).
HISTORY = [
    {"epoch": 1, "step": 10, "train_loss": 1.0, "train_acc": 0.50, "val_loss": 0.90, "val_acc": 0.60, "time_s": 2.0},
    {"epoch": 2, "step": 20, "train_loss": 0.6, "train_acc": 0.70, "val_loss": 0.70, "val_acc": 0.72, "time_s": 1.0},
    {"epoch": 3, "step": 30, "train_loss": 0.4, "train_acc": 0.85, "val_loss": 0.50, "val_acc": 0.78, "time_s": 1.0},
    {"epoch": 4, "step": 40, "train_loss": 0.2, "train_acc": 0.93, "val_loss": 0.55, "val_acc": 0.79, "time_s": 1.5},
    {"epoch": 5, "step": 50, "train_loss": 0.1, "train_acc": 0.98, "val_loss": 0.65, "val_acc": 0.80, "time_s": 0.5},
]


def test_epochs_to_reach_shares_of_the_final_accuracy() -> None:
    # final 0.80: 90% = 0.72 (epoch 2 has exactly 0.72), 95% = 0.76 (epoch 3: 0.78), 99% = 0.792 (epoch 5: 0.80)
    assert epochs_to_reach([0.60, 0.72, 0.78, 0.79, 0.80]) == {0.90: 2, 0.95: 3, 0.99: 5}


def test_epochs_to_reach_on_a_curve_that_falls_back() -> None:
    # final 0.70 after a peak of 0.90: 99% of 0.70 = 0.693 is first reached at epoch 2 (0.85)
    assert epochs_to_reach([0.5, 0.85, 0.9, 0.7], fractions=(0.99,)) == {0.99: 2}
    assert epochs_to_reach([], fractions=(0.9,)) == {0.9: None}
    assert epochs_to_reach([0.5, np.nan], fractions=(0.9,)) == {0.9: None}
    with pytest.raises(ValueError, match="fractions"):
        epochs_to_reach([0.5], fractions=(1.5,))


def test_train_risk_auc() -> None:
    # trapezoids: (1 + .6)/2 + (.6 + .4)/2 + (.4 + .2)/2 + (.2 + .1)/2 = .8 + .5 + .3 + .15 = 1.75 over 4 epochs
    assert train_risk_auc([1.0, 0.6, 0.4, 0.2, 0.1]) == pytest.approx(0.4375)
    assert train_risk_auc([0.3, 0.3, 0.3]) == pytest.approx(0.3)  # constant loss scores itself, any length
    assert train_risk_auc([0.7]) == 0.7
    with pytest.raises(ValueError, match="finite"):
        train_risk_auc([1.0, float("inf")])


def test_best_epoch_and_gaps() -> None:
    assert best_epoch([0.9, 0.7, 0.5, 0.55, 0.65]) == 3
    assert best_epoch([np.nan, 0.6, 0.6]) == 2  # NaN skipped, first of a tie
    assert best_epoch([np.nan]) is None
    gap = generalization_gap(HISTORY)
    # val_loss - train_loss: -.1, .1, .1, .35, .55; train_acc - val_acc: -.1, -.02, .07, .14, .18
    np.testing.assert_allclose(gap["loss_gap"], [-0.1, 0.1, 0.1, 0.35, 0.55])
    np.testing.assert_allclose(gap["acc_gap"], [-0.1, -0.02, 0.07, 0.14, 0.18], atol=1e-12)
    np.testing.assert_allclose(cumulative_seconds(HISTORY), [2.0, 3.0, 4.0, 5.5, 6.0])


def test_summarize_dynamics_by_hand() -> None:
    d = summarize_dynamics(HISTORY)
    assert d.epochs == 5 and d.final_val_acc == 0.80
    assert d.epochs_to == {0.90: 2, 0.95: 3, 0.99: 5}
    assert d.steps_to == {0.90: 20, 0.95: 30, 0.99: 50}  # 10 steps per epoch
    assert d.seconds_to == {0.90: 3.0, 0.95: 4.0, 0.99: 6.0}  # cumulative 2, 3, 4, 5.5, 6
    assert d.train_risk_auc == pytest.approx(0.4375)
    assert d.best_epoch == 3
    assert d.final_loss_gap == pytest.approx(0.55) and d.final_acc_gap == pytest.approx(0.18)


def test_summarize_dynamics_without_validation_or_with_divergence() -> None:
    no_val = [{k: v for k, v in e.items() if not k.startswith("val")} for e in HISTORY]
    d = summarize_dynamics(no_val)
    assert d.final_val_acc is None and d.epochs_to == {0.90: None, 0.95: None, 0.99: None}
    assert d.best_epoch is None and d.final_loss_gap is None and d.train_risk_auc == pytest.approx(0.4375)
    diverged = [*HISTORY[:2], {**HISTORY[2], "train_loss": math.nan}]
    assert summarize_dynamics(diverged).train_risk_auc is None
    assert summarize_dynamics([]).epochs == 0


def test_docstring_examples() -> None:
    for module in (dynamics,):
        assert doctest.testmod(module).failed == 0, module.__name__
