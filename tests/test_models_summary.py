"""The model summary: layer shapes, parameter counts and FLOPs checked against hand counts."""

from __future__ import annotations

import torch
from torch import nn

from lineup.models import create_model, summarize


def test_lenet5_layer_shapes_and_parameters() -> None:
    summary = summarize(create_model("lenet5", (1, 28, 28), 10), (1, 28, 28))
    main = [(r.type, r.output_shape) for r in summary.layers if r.type in {"Conv2d", "MaxPool2d", "Linear"}]
    assert main == [
        ("Conv2d", (6, 28, 28)),  # padding 2 keeps 28×28
        ("MaxPool2d", (6, 14, 14)),
        ("Conv2d", (16, 10, 10)),  # 14 - 5 + 1
        ("MaxPool2d", (16, 5, 5)),
        ("Linear", (120,)),
        ("Linear", (84,)),
        ("Linear", (10,)),
    ]
    # 156 + 2,416 + 48,120 + 10,164 + 850, see test_models.test_lenet5_has_61706_parameters
    assert summary.total_params == summary.trainable_params == 61_706
    assert [r.params for r in summary.layers if r.params] == [156, 2_416, 48_120, 10_164, 850]
    assert summary.layers[0].name == "features.conv1" and summary.layers[-1].name == "head.fc"


def test_flops_of_softmax_regression() -> None:
    # One (1×784)·(784×10) product: 784·10 multiply-adds at 2 FLOPs each; the bias add is not counted.
    summary = summarize(create_model("softmax_regression", (1, 28, 28), 10), (1, 28, 28))
    assert summary.flops == 2 * 784 * 10


def test_flops_of_lenet5_are_per_example() -> None:
    # 2 · multiply-adds, per layer: conv1 (6·28·28 outputs · 25) + conv2 (16·10·10 · 150)
    #                              + fc1 400·120 + fc2 120·84 + fc3 84·10
    macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert summarize(create_model("lenet5", (1, 28, 28), 10), (1, 28, 28)).flops == 2 * macs == 833_040


def test_frozen_parameters_are_not_trainable() -> None:
    model = create_model("lenet5", (1, 28, 28), 10)
    model.features.requires_grad_(False)
    summary = summarize(model, (1, 28, 28))
    assert (summary.total_params, summary.trainable_params) == (61_706, 850)


def test_restores_each_modules_mode_and_leaves_batch_norm_statistics_alone() -> None:
    model = create_model("lenet5_bn", (1, 28, 28), 10)
    model.features.conv1_bn.eval()  # a mixed state must come back as it was, module by module
    modes = {name: m.training for name, m in model.named_modules()}
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}

    summarize(model, (1, 28, 28))

    assert {name: m.training for name, m in model.named_modules()} == modes
    for key, value in model.state_dict().items():
        if key in stats:
            assert torch.equal(value, stats[key]), key


def test_module_called_twice_is_counted_once() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x.flatten(1)))

    summary = summarize(Twice(), (1, 2, 2))
    assert [(r.name, r.params) for r in summary.layers] == [("fc", 20), ("fc", 0)]
    assert summary.total_params == 20 and summary.flops == 2 * (2 * 4 * 4)


def test_text_rendering() -> None:
    summary = summarize(create_model("lenet5", (1, 28, 28), 10), (1, 28, 28))
    rows = summary.to_rows()
    assert rows[0] == {"name": "features.conv1", "type": "Conv2d", "output_shape": "6×28×28", "params": 156}
    table = summary.format_table()
    lines = table.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params"]
    assert len(lines) == len(rows) + 7  # header, 2 rules, input, 3 totals
    assert "Total params: 61,706" in table and "Forward FLOPs per example: 833,040" in table
