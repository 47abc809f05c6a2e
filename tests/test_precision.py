"""Mixed precision: [train] precision = "bf16" runs the training forward pass under bfloat16 autocast."""

from __future__ import annotations

import math

import pytest
import torch

from lineup.data import load
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.spec import parse_study
from lineup.study.runner import prepare
from lineup.train import build_optimizer, create_objective, fit
from lineup.train.engine import OptimConfig, autocast

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread(seeded_one_thread: None) -> None:
    """Tiny models: one thread each, see conftest."""


def _train(precision: str) -> tuple[torch.nn.Module, list[torch.dtype], float]:
    d = load("digits", train_size=256, val_fraction=0.25)
    torch.manual_seed(0)
    model = create_model("mlp", d.input_shape, d.num_classes, hidden=[32])
    seen: list[torch.dtype] = []
    model.register_forward_hook(lambda m, i, out: seen.append(out.dtype) if m.training else None)
    state = fit(model, create_objective("cross_entropy"), build_optimizer(model.parameters(), OptimConfig(lr=1e-2)),
                d.train, d.normalization, epochs=3, batch_size=32, seed=0, device=CPU, val=d.val,
                precision=precision)
    return model, seen, state.history.epochs[-1]["val_loss"]


def test_bf16_computes_in_bfloat16_and_keeps_float32_weights() -> None:
    model, seen, val_loss = _train("bf16")
    assert seen and set(seen) == {torch.bfloat16}  # every training forward pass
    assert all(p.dtype == torch.float32 for p in model.parameters())
    _, seen32, val_loss32 = _train("fp32")
    assert set(seen32) == {torch.float32}
    # bfloat16 keeps 8 bits of mantissa: the same training, a little apart (relative error of 2^-8 per product)
    assert math.isfinite(val_loss) and val_loss != val_loss32 and val_loss == pytest.approx(val_loss32, rel=0.05)


def test_an_unknown_precision_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of fp32, bf16"):
        autocast(CPU, "fp8")
    doc = {"study": {"name": "p", "seeds": [0]}, "data": {"dataset": "digits"}, "train": {"precision": "fp16"},
           "models": [{"name": "m", "model": "mlp"}]}
    with pytest.raises(SpecError, match="precision"):
        parse_study(doc)


def test_bf16_for_an_objective_that_takes_its_own_steps_is_refused_before_training() -> None:
    doc = {"study": {"name": "p", "seeds": [0]},
           "data": {"dataset": "polynomial-contours", "options": {"n_train": 40, "n_test": 20, "size": 16}},
           "train": {"precision": "bf16"},
           "models": [{"name": "gan", "model": "dcgan", "options": {"latent_dim": 8, "channels": [4, 8]}}]}
    with pytest.raises(SpecError, match="precision = 'bf16' is not available for objective 'gan'"):
        prepare(parse_study(doc))
