"""Stacked training against separate runs, on scikit-learn's 8x8 digits (512 training images).

A stack is not bitwise equal to separate runs: its convolutions are one grouped convolution over the members,
whose kernels add the same products in another order (differences of about 1e-7 relative per step). Plain SGD
keeps such differences at that size over a few epochs, so it is held to 1e-4 relative. Adam divides each step by
the root of the squared gradients, so a gradient that is a near-cancelling sum has its rounding noise turned into
a step of full size: it drifts faster, and is held to 1e-2 relative and the same predictions on 98% of the test
images. The optimiser itself is exact: given the same gradients it computes what torch.optim computes, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lineup.data import load
from lineup.data._types import DataBundle
from lineup.models import create_model
from lineup.train import (
    Callback,
    Checkpoint,
    DivergenceGuard,
    EarlyStopping,
    OptimConfig,
    ProgressBar,
    TrainState,
    build_optimizer,
    create_objective,
    evaluate,
    fit,
)
from lineup.train.augment import Augmentation
from lineup.train.stacked import (
    _StackedOptimizer,
    fit_auto,
    fit_stacked,
    measure_stacking,
    stacking_refusal,
)

CPU = torch.device("cpu")
CE = create_objective("cross_entropy")
SEEDS = [0, 1, 2]


@pytest.fixture(autouse=True)
def _one_thread(seeded_one_thread: None) -> None:
    """Tiny models: one thread each, see conftest."""


@lru_cache(maxsize=1)
def _digits() -> DataBundle:
    return load("digits", train_size=512, val_fraction=0.2)


def _lenet(seed: int, name: str = "lenet5") -> nn.Module:
    """The model a worker builds for a run with this seed: seeded first (kernel 3, as 8x8 inputs need)."""
    torch.manual_seed(seed)
    d = _digits()
    return create_model(name, d.input_shape, d.num_classes, kernel_size=3)


def _separate(seed: int, cfg: OptimConfig, epochs: int, callbacks: Sequence[Callback] = (), **kw: object) -> TrainState:
    d, model = _digits(), _lenet(seed)
    return fit(model, CE, build_optimizer(model.parameters(), cfg), d.train, d.normalization, epochs=epochs,
               batch_size=32, seed=seed, device=CPU, val=d.val, callbacks=callbacks, **kw)  # type: ignore[arg-type]


def _stacked(cfgs: Sequence[OptimConfig], epochs: int, **kw: object) -> list[TrainState]:
    d = _digits()
    return fit_stacked([_lenet(s) for s in SEEDS[:len(cfgs)]], CE, cfgs, d.train, d.normalization, epochs=epochs,
                       batch_size=32, seeds=SEEDS[:len(cfgs)], device=CPU, val=d.val, **kw)  # type: ignore[arg-type]


def _assert_same_run(a: TrainState, b: TrainState, *, rtol: float, agree: float) -> None:
    """``b`` (stacked) reports what ``a`` (separate) reports: epochs, metrics, steps, and test predictions."""
    assert [e["epoch"] for e in a.history.epochs] == [e["epoch"] for e in b.history.epochs]
    assert a.history.epochs[0].keys() == b.history.epochs[0].keys()
    for ea, eb in zip(a.history.epochs, b.history.epochs, strict=True):
        assert ea["step"] == eb["step"] and ea["lr"] == eb["lr"]
        for k in ("train_loss", "grad_norm", "val_loss"):
            assert eb[k] == pytest.approx(ea[k], rel=rtol), k
    np.testing.assert_allclose(b.history.step_loss, a.history.step_loss, rtol=rtol * 10)
    d = _digits()
    pa = evaluate(a.model, CE, d.test, d.normalization, device=CPU)
    pb = evaluate(b.model, CE, d.test, d.normalization, device=CPU)
    assert (pa.pred == pb.pred).mean() >= agree
    if agree == 1.0:
        np.testing.assert_allclose(pb.probs, pa.probs, atol=rtol)
    assert (a.epoch, a.step, a.stop_reason, a.restored_epoch) == (b.epoch, b.step, b.stop_reason, b.restored_epoch)


OPTIMIZERS = [("adam", "coupled"), ("adam", "decoupled"), ("adamw", "coupled"), ("sgd", "coupled"),
              ("sgd", "decoupled")]


@pytest.mark.parametrize(("name", "mode"), OPTIMIZERS)
def test_stacked_update_is_torch_optim_bit_for_bit(name: str, mode: str) -> None:
    # Same gradients in, same weights out: per-run lr and weight decay (0 for one run), a decaying schedule, and
    # gradients from 1e-9 to 1 so that Adam's epsilon and bias corrections matter.
    g = torch.Generator().manual_seed(0)
    cfgs = [OptimConfig(name=name, lr=lr, weight_decay=wd, weight_decay_mode=mode)
            for lr, wd in [(1e-3, 0.0), (2e-3, 1e-2), (3e-2, 0.1)]]
    theta = torch.randn(3, 500, generator=g)
    params = [nn.Parameter(row.clone()) for row in theta]
    opts = [build_optimizer([p], c) for p, c in zip(params, cfgs, strict=True)]
    stacked = _StackedOptimizer(cfgs[0], [c.lr for c in cfgs], [c.weight_decay for c in cfgs], theta)
    for step in range(10):
        factor = 1.0 - step / 20
        grad = torch.randn(3, 500, generator=g) * 10.0 ** -torch.randint(0, 10, (3, 500), generator=g)
        for p, opt, cfg, row in zip(params, opts, cfgs, grad, strict=True):
            opt.param_groups[0]["lr"] = cfg.lr * factor
            p.grad = row.clone()
            opt.step()
        stacked.step(theta, grad, factor)
    for p, row in zip(params, theta, strict=True):
        assert torch.equal(p.detach(), row)
    assert not torch.equal(theta[0], torch.randn(3, 500, generator=torch.Generator().manual_seed(0))[0])  # it moved


def test_sgd_stack_matches_separate_runs() -> None:
    # Three runs that differ in seed (initialisation and batch order), learning rate and weight decay.
    cfgs = [OptimConfig(name="sgd", lr=lr, weight_decay=wd) for lr, wd in [(0.05, 0.0), (0.02, 1e-3), (0.1, 0.0)]]
    stacked = _stacked(cfgs, epochs=3)
    for seed, cfg, b in zip(SEEDS, cfgs, stacked, strict=True):
        _assert_same_run(_separate(seed, cfg, 3), b, rtol=1e-4, agree=1.0)
    # The optimiser state handed back is the one the separate run holds, so the state could be checkpointed.
    a = _separate(SEEDS[1], cfgs[1], 3)
    opt_a, opt_b = a.optimizer, stacked[1].optimizer
    assert isinstance(opt_a, torch.optim.SGD) and isinstance(opt_b, torch.optim.SGD)
    for pa, pb in zip(a.model.parameters(), stacked[1].model.parameters(), strict=True):
        torch.testing.assert_close(opt_b.state[pb]["momentum_buffer"], opt_a.state[pa]["momentum_buffer"],
                                   rtol=1e-3, atol=1e-5)


def test_adam_stack_matches_separate_runs_with_schedule_and_augmentation() -> None:
    cfgs = [OptimConfig(name="adam", lr=lr) for lr in (1e-3, 3e-3, 2e-3)]
    aug = Augmentation(shift=1)
    stacked = _stacked(cfgs, epochs=3, lr_schedule="cosine", augment=aug)
    for seed, cfg, b in zip(SEEDS, cfgs, stacked, strict=True):
        a = _separate(seed, cfg, 3, lr_schedule="cosine", augment=aug)
        _assert_same_run(a, b, rtol=1e-2, agree=0.98)
        assert b.optimizer.state_dict()["state"][0]["step"] == a.optimizer.state_dict()["state"][0]["step"]


def test_early_stopping_takes_one_member_out_and_leaves_the_others_alone() -> None:
    # min_delta = 1e9: the first epoch improves on +inf, no later one can, so with patience 1 the first run stops
    # after epoch 2 and goes back to its epoch-1 weights; the others train all 4 epochs, without it from epoch 3.
    def callbacks(i: int) -> list[Callback]:
        return [DivergenceGuard(), EarlyStopping("val_loss", patience=1, min_delta=1e9)] if i == 0 else []

    cfgs = [OptimConfig(name="sgd", lr=lr) for lr in (0.05, 0.02, 0.1)]
    stacked = _stacked(cfgs, epochs=4, callbacks=callbacks)
    assert [len(s.history.epochs) for s in stacked] == [2, 4, 4]
    assert stacked[0].restored_epoch == 1 and stacked[0].stop_reason.startswith("early stopping")
    for i, (seed, cfg, b) in enumerate(zip(SEEDS, cfgs, stacked, strict=True)):
        _assert_same_run(_separate(seed, cfg, 4, callbacks(i)), b, rtol=1e-4, agree=1.0)


def test_a_diverging_member_is_trained_again_separately() -> None:
    # lr = 1e4 blows the logits up within a step or two; the run must end as a separate run ends, at that step.
    cfgs = [OptimConfig(name="sgd", lr=lr) for lr in (0.05, 1e4)]
    d = _digits()
    choice = measure_stacking([_lenet(0), _lenet(1)], CE, cfgs, d.train, d.normalization, batch_size=32, device=CPU)
    choice = type(choice)(True, choice.stacked_s, choice.separate_s, 2, "cpu")  # stacked, whatever was faster
    states, _ = fit_auto([_lenet(0), _lenet(1)], CE, cfgs, d.train, d.normalization, epochs=2, batch_size=32,
                         seeds=SEEDS[:2], device=CPU, val=d.val, callbacks=lambda i: [DivergenceGuard()],
                         choice=choice)
    separate = _separate(1, cfgs[1], 2, [DivergenceGuard()])
    assert separate.diverged and states[1].diverged
    assert states[1].diverged_step == separate.diverged_step
    assert states[1].history.to_dict()["step_loss"][:-1] == separate.history.to_dict()["step_loss"][:-1]
    _assert_same_run(_separate(0, cfgs[0], 2, [DivergenceGuard()]), states[0], rtol=1e-4, agree=1.0)


def test_measuring_leaves_models_and_random_state_alone_and_records_both_timings() -> None:
    d = _digits()
    models = [_lenet(s) for s in SEEDS]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    rng = torch.get_rng_state()
    cfgs = [OptimConfig(lr=1e-3)] * 3
    choice = measure_stacking(models, CE, cfgs, d.train, d.normalization, batch_size=32, device=CPU, steps=2)
    assert torch.equal(torch.get_rng_state(), rng)
    for m, b in zip(models, before, strict=True):
        assert all(torch.equal(v, b[k]) for k, v in m.state_dict().items())
    assert choice.stacked_s > 0 and choice.separate_s > 0 and choice.stacked == (choice.stacked_s < choice.separate_s)
    record = choice.provenance()["stacking"]
    assert record["choice"] == ("stacked" if choice.stacked else "separate") and record["runs"] == 3
    refused = measure_stacking([_lenet(0, "lenet5_dropout")] * 2, CE, cfgs[:2], d.train, d.normalization,
                               batch_size=32, device=CPU)
    assert not refused.stacked and "dropout" in refused.provenance()["stacking"]["refused"]


def _models(*names: str) -> list[nn.Module]:
    return [_lenet(i, name) for i, name in enumerate(names)]


ADAM = OptimConfig()
# (models, objective, optimiser settings, callbacks of the first run, words of the refusal)
REFUSALS = [
    (("lenet5", "lenet5_classic"), "cross_entropy", [ADAM, ADAM], [], "structure"),  # same shapes, tanh vs relu
    (("lenet5_bn", "lenet5_bn"), "cross_entropy", [ADAM, ADAM], [], "buffers"),
    (("lenet5_dropout", "lenet5_dropout"), "cross_entropy", [ADAM, ADAM], [], "dropout"),
    (("lenet5", "lenet5"), "cross_entropy", [OptimConfig(name="rmsprop")] * 2, [], "rmsprop"),
    (("lenet5", "lenet5"), "cross_entropy", [OptimConfig(name="sgd", momentum=0.9),
                                             OptimConfig(name="sgd", momentum=0.5)], [], "other than lr"),
    (("lenet5", "lenet5"), "cross_entropy", [ADAM, ADAM], [ProgressBar()], "ProgressBar"),
    (("lenet5", "lenet5"), "reconstruction", [ADAM, ADAM], [], "from the model"),
]


@pytest.mark.parametrize(("names", "objective", "cfgs", "cbs", "words"), REFUSALS)
def test_what_cannot_be_reproduced_is_refused(names: tuple[str, ...], objective: str, cfgs: list[OptimConfig],
                                              cbs: list[Callback], words: str) -> None:
    models, obj = _models(*names), create_objective(objective)
    reason = stacking_refusal(models, obj, cfgs, [cbs, []])
    assert reason is not None and words in reason
    d = _digits()
    with pytest.raises(ValueError, match="cannot be stacked"):
        fit_stacked(models, obj, cfgs, d.train, d.normalization, epochs=1, batch_size=32, seeds=[0, 1], device=CPU,
                    callbacks=lambda i: cbs if i == 0 else [])


def test_stackable_runs_are_not_refused() -> None:
    cfgs = [OptimConfig(lr=1e-3, weight_decay=0.0), OptimConfig(lr=3e-3, weight_decay=1e-4)]
    assert stacking_refusal(_models("lenet5", "lenet5"), CE, cfgs, [[EarlyStopping(), DivergenceGuard()], []]) is None
    checkpoint = [[Checkpoint(Path("x.pt"))], []]
    assert "Checkpoint" in str(stacking_refusal(_models("lenet5", "lenet5"), CE, cfgs, checkpoint))


class _NoisyInput(nn.Module):
    """Adds fresh noise to its input in every forward pass: random, yet no dropout layer to see."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1) + torch.randn_like(x.flatten(1)))


def test_randomness_in_the_forward_pass_fails_instead_of_differing() -> None:
    d = _digits()
    models = [_NoisyInput(), _NoisyInput()]
    assert stacking_refusal(models, CE, [ADAM, ADAM]) is None  # invisible to the checks ...
    with pytest.raises(RuntimeError, match="random"):  # ... so vmap(randomness="error") stops it
        fit_stacked(models, CE, [ADAM, ADAM], d.train, d.normalization, epochs=1, batch_size=32, seeds=[0, 1],
                    device=CPU)
