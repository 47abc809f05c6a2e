"""The fit loop, its callbacks and optimisers, on small generated data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lineup.data._types import Normalization, Split
from lineup.train import (
    DivergenceGuard,
    EarlyStopping,
    History,
    OptimConfig,
    TrainState,
    build_optimizer,
    create_objective,
    evaluate,
    fit,
)

NORM = Normalization(mean=(0.0,), std=(1.0,), scale=1.0)


def _blobs(n: int = 400, seed: int = 0) -> Split:
    """Two Gaussian blobs in 2-D, stored as (N, 1, 1, 2) float inputs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) + (y[:, None] * 2 - 1) * 2.0
    return Split(x.view(n, 1, 1, 2).float(), y.long(), torch.arange(n))


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _state(model: nn.Module) -> TrainState:
    return TrainState(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), history=History(),
                      max_epochs=100, steps_per_epoch=1)


# (monitored values per epoch, patience, mode, expected number of epochs run, expected best epoch)
EARLY_STOPPING_TABLE = [
    ([5.0, 4.0, 3.0, 2.0, 1.0], 2, "min", 5, 5),  # always improving: never stops
    ([5.0, 4.0, 4.5, 4.6, 3.0], 2, "min", 4, 2),  # two epochs without improvement after epoch 2
    ([5.0, 6.0, 7.0, 8.0, 9.0], 1, "min", 2, 1),  # patience 1: stops at the first non-improvement
    ([0.5, 0.6, 0.6, 0.6, 0.7], 3, "max", 5, 5),  # accuracy rising then flat for 2 < 3 epochs, then rising
    ([0.5, 0.6, 0.6, 0.6, 0.6], 3, "max", 5, 2),  # flat for exactly 3 epochs: stops at the fifth
    ([1.0, 1.0, 1.0, 1.0, 1.0], 2, "min", 3, 1),  # equal values are not improvements
]


@pytest.mark.parametrize(("values", "patience", "mode", "stop_after", "best"), EARLY_STOPPING_TABLE)
def test_early_stopping_epochs(values: list[float], patience: int, mode: str, stop_after: int, best: int) -> None:
    model = _Linear()
    es = EarlyStopping("m", mode=mode, patience=patience)
    state = _state(model)
    ran = 0
    for epoch, v in enumerate(values, start=1):
        ran = epoch
        es.on_epoch_end(state, {"epoch": epoch, "m": v})
        if state.should_stop:
            break
    assert ran == stop_after
    assert es.best_epoch == best


def test_early_stopping_min_delta_and_auto_mode() -> None:
    es = EarlyStopping("val_acc", patience=1, min_delta=0.05)
    assert es.mode == "max"
    state = _state(_Linear())
    es.on_epoch_end(state, {"epoch": 1, "val_acc": 0.80})
    es.on_epoch_end(state, {"epoch": 2, "val_acc": 0.84})  # +0.04 < min_delta: no improvement
    assert state.should_stop and es.best_epoch == 1


def test_early_stopping_unknown_metric_names_the_logged_ones() -> None:
    es = EarlyStopping("val_los")
    with pytest.raises(KeyError, match="val_loss"):
        es.on_epoch_end(_state(_Linear()), {"epoch": 1, "val_loss": 1.0})


def test_early_stopping_restores_best_weights() -> None:
    torch.manual_seed(0)
    model = _Linear()
    data = _blobs()
    opt = torch.optim.SGD(model.parameters(), lr=5.0)  # large steps: the loss bounces
    es = EarlyStopping("val_loss", patience=2)
    state = fit(model, create_objective("cross_entropy"), opt, data, NORM, epochs=8, batch_size=50, seed=0,
                device=torch.device("cpu"), val=data, callbacks=[es])
    best = min(state.history.epochs, key=lambda m: m["val_loss"])
    assert state.restored_epoch == best["epoch"] == es.best_epoch
    again = evaluate(model, create_objective("cross_entropy"), data, NORM, device=torch.device("cpu"))
    assert again.loss == pytest.approx(best["val_loss"], rel=1e-6)


def test_fit_learns_and_records_history() -> None:
    torch.manual_seed(0)
    model = _Linear()
    train, val = _blobs(400, 0), _blobs(200, 1)
    opt = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=0.05))
    state = fit(model, create_objective("cross_entropy"), opt, train, NORM, epochs=5, batch_size=32, seed=0,
                device=torch.device("cpu"), val=val)
    h = state.history
    assert [m["epoch"] for m in h.epochs] == [1, 2, 3, 4, 5]
    assert len(h.step_loss) == 5 * 13  # ceil(400 / 32) = 13 steps per epoch
    assert h.epochs[-1]["val_acc"] > 0.95  # blobs 4 standard deviations apart
    assert h.epochs[-1]["train_loss"] < h.epochs[0]["train_loss"]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "grad_norm", "time_s", "lr"):
        assert key in h.epochs[0]


def test_fit_is_deterministic_per_seed() -> None:
    def once(seed: int) -> list[float]:
        torch.manual_seed(seed)
        model = _Linear()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return fit(model, create_objective("cross_entropy"), opt, _blobs(), NORM, epochs=2, batch_size=16,
                   seed=seed, device=torch.device("cpu")).history.step_loss

    assert once(3) == once(3)
    assert once(3) != once(4)


def _fit_infinite(**kw: object) -> TrainState:
    """Three epochs of a linear model whose weights are infinite from the start."""
    torch.manual_seed(0)
    model = _Linear()
    with torch.no_grad():
        model.fc.weight.fill_(float("inf"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return fit(model, create_objective("cross_entropy"), opt, _blobs(), NORM, epochs=3, batch_size=50, seed=0,
               device=torch.device("cpu"), **kw)  # type: ignore[arg-type]


def test_divergence_guard_stops_at_the_first_bad_step() -> None:
    state = _fit_infinite(callbacks=[DivergenceGuard()])
    assert state.diverged and state.diverged_step == 1
    assert state.stop_reason.startswith("diverged")
    assert len(state.history.epochs) == 1


def test_a_diverged_run_under_early_stopping_is_diverged_not_an_error() -> None:
    # The loop skips validation once a run has diverged; early stopping must not then ask for val_loss.
    state = _fit_infinite(val=_blobs(100, seed=1), callbacks=[DivergenceGuard(), EarlyStopping("val_loss", patience=1)])
    assert state.diverged and state.diverged_step == 1
    assert "val_loss" not in state.history.epochs[-1]


def test_binary_cross_entropy_probabilities_sum_to_one() -> None:
    obj = create_objective("binary_cross_entropy")
    out = torch.tensor([[0.0], [2.0], [-3.0]])
    p = obj.predict_proba(out)
    assert torch.allclose(p.sum(1), torch.ones(3))
    assert p[0, 1] == pytest.approx(0.5)
    # mean of -log(sigmoid(2)) and -log(1 - sigmoid(-3)) = mean(0.126928, 0.048587)
    assert float(obj.loss(out[1:], torch.tensor([1, 0]))) == pytest.approx((0.126928 + 0.048587) / 2, abs=1e-5)


def _one_step(cfg: OptimConfig) -> torch.Tensor:
    w = nn.Parameter(torch.tensor([1.0]))
    opt = build_optimizer([w], cfg)
    w.grad = torch.tensor([0.0])  # no data gradient: any change comes from weight decay alone
    opt.step()
    return w.detach()


def test_weight_decay_coupled_vs_decoupled() -> None:
    # SGD without momentum, lr 0.1, wd 0.5: coupled adds 0.5*w to the gradient -> w = 1 - 0.1*0.5 = 0.95;
    # decoupled shrinks by lr*wd -> also 0.95 (the two agree for plain SGD).
    for mode in ("coupled", "decoupled"):
        w = _one_step(OptimConfig(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.5, weight_decay_mode=mode))
        assert float(w) == pytest.approx(0.95)
    # Adam: coupled decay becomes a gradient of 0.5, normalised by Adam to a full step of lr: 1 - 0.1 = 0.9;
    # decoupled (AdamW) shrinks by lr*wd = 0.05 and takes no gradient step: 0.95.
    assert float(_one_step(OptimConfig(name="adam", lr=0.1, weight_decay=0.5))) == pytest.approx(0.9, abs=1e-6)
    assert float(_one_step(OptimConfig(name="adam", lr=0.1, weight_decay=0.5, weight_decay_mode="decoupled"))) \
        == pytest.approx(0.95)
