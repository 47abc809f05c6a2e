"""Parameter budgets: ``params = N`` picks the width that brings every family within 10% of N."""

from __future__ import annotations

import pytest
from torch import nn

from lineup.errors import SpecError
from lineup.models import create_model, list_models, model_options, width_for_params
from lineup.models._registry import PARAMS_TOLERANCE

SCALABLE = [name for name in list_models() if "width" in model_options(name)]
BUDGETS = [50_000, 200_000, 1_000_000]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_family_is_scalable() -> None:
    assert {"mlp", "lenet5", "vgg11", "vgg19", "resnet9", "resnet18", "resnet34", "unet"} <= set(SCALABLE)
    assert "params" in model_options("vgg16") and model_options("vgg16")["params"] is None
    assert "params" not in model_options("logistic_regression")  # no width, nothing to scale


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("name", SCALABLE)
def test_budget_is_met_within_tolerance(name: str, budget: int) -> None:
    model = create_model(name, (1, 28, 28), 2, params=budget)
    assert abs(n_params(model) - budget) <= PARAMS_TOLERANCE * budget
    # The model built is the one at the width reported, so a budget is a reproducible choice of width.
    width = width_for_params(name, (1, 28, 28), 2, budget)
    assert n_params(create_model(name, (1, 28, 28), 2, width=width)) == n_params(model)


def test_budget_respects_the_other_options() -> None:
    norm = create_model("vgg11", (3, 32, 32), 10, params=100_000, batch_norm=True, fc=(2048,))
    assert abs(n_params(norm) - 100_000) <= PARAMS_TOLERANCE * 100_000
    assert sum(isinstance(m, nn.BatchNorm2d) for m in norm.modules()) == 8
    # A hidden fc layer spends part of the budget, so the convolutions must be narrower to stay within it.
    plain = width_for_params("vgg11", (3, 32, 32), 10, 100_000)
    assert width_for_params("vgg11", (3, 32, 32), 10, 100_000, batch_norm=True, fc=(2048,)) < plain


def test_larger_budgets_give_wider_models() -> None:
    widths = [width_for_params("resnet9", (3, 32, 32), 10, b) for b in (30_000, 300_000, 3_000_000)]
    assert widths == sorted(widths) and len(set(widths)) == 3
    assert widths[2] == pytest.approx(10**0.5 * widths[1], rel=0.05)  # conv parameters grow with width²


def test_unreachable_budgets_name_the_reachable_range() -> None:
    with pytest.raises(SpecError) as e:
        create_model("vgg16", (1, 28, 28), 2, params=100)
    message = str(e.value)
    # The smallest vgg16 has one channel per layer: 13 convolutions of 9 + 1 and a 1·2+2 head.
    assert "'vgg16'" in message and "100 parameters" in message
    assert f"{13 * 10 + 4:,} parameters at the smallest" in message
    with pytest.raises(SpecError, match=r"at the largest \(width 64\)"):
        create_model("mlp", (1, 8, 8), 2, hidden=(4,), params=10**9)


def test_a_model_that_width_does_not_change_cannot_meet_other_budgets() -> None:
    # Without hidden layers an MLP is softmax regression: 7,850 parameters at every width.
    assert n_params(create_model("mlp", (1, 28, 28), 10, hidden=(), params=8_000)) == 7_850
    with pytest.raises(SpecError, match="7,850 parameters at the smallest"):
        create_model("mlp", (1, 28, 28), 10, hidden=(), params=20_000)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"params": 50_000, "width": 0.5}, "give width or params, not both"),
        ({"params": 0}, "params must be a positive number"),
        ({"params": 5e4}, "must be int or None, got float"),
    ],
)
def test_bad_budgets(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        create_model("resnet9", (1, 28, 28), 2, **options)
