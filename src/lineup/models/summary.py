"""A model's layer table, parameter counts and forward FLOPs, measured on one example."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerRow:
    """One call of a leaf module during the forward pass.

    Attributes:
        name: the module's dotted name in the model, e.g. ``features.conv1``.
        type: the module's class name, e.g. ``Conv2d``.
        output_shape: shape of its output for one example (no batch dimension); None when not a tensor.
        params: parameters of the module; 0 on the second and later calls of a module used twice.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int


@dataclass(frozen=True)
class ModelSummary:
    """What ``summarize`` measured.

    Attributes:
        input_shape: the ``(channels, height, width)`` of the example it ran on.
        layers: leaf-module calls in execution order.
        total_params: number of parameter values in the model (including any held by non-leaf modules).
        trainable_params: those with ``requires_grad``.
        flops: forward FLOPs for one example, counted by ``torch.utils.flop_counter`` for matrix products and
            convolutions only, at 2 FLOPs per multiply-add; activations, norms and pooling are not counted.
    """

    input_shape: tuple[int, ...]
    layers: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    flops: int

    def to_rows(self) -> list[dict[str, str | int]]:
        """The layer table as plain rows (for CSV/Markdown/HTML): name, type, output shape as text, params."""
        return [
            {"name": r.name, "type": r.type, "output_shape": _shape_text(r.output_shape), "params": r.params}
            for r in self.layers
        ]

    def format_table(self) -> str:
        """The layer table and totals as aligned plain text."""
        header = ("Layer", "Type", "Output shape", "Params")
        body = [
            (str(r["name"]), str(r["type"]), str(r["output_shape"]), f"{r['params']:,}")
            for r in self.to_rows()
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]

        def line(row: Sequence[str]) -> str:
            # Text columns left-aligned, the number right-aligned so digits line up.
            return "  ".join(
                [*(c.ljust(w) for c, w in zip(row[:3], widths[:3], strict=True)), row[3].rjust(widths[3])]
            ).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join(
            [
                line(header),
                rule,
                *map(line, body),
                rule,
                f"Input: {_shape_text(self.input_shape)}",
                f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Forward FLOPs per example: {self.flops:,}",
            ]
        )


def summarize(model: nn.Module, input_shape: Sequence[int]) -> ModelSummary:
    """Run ``model`` on one zero example of ``input_shape``; record each leaf module's output and parameters.

    The pass runs in eval mode under ``torch.no_grad`` so that batch norm uses (and does not update) its
    running statistics and dropout is off; every submodule's train/eval mode is restored afterwards.

    Args:
        model: any module taking a ``(1, *input_shape)`` float tensor.
        input_shape: ``(channels, height, width)`` of one example.

    Returns:
        The layer rows, parameter counts and forward FLOPs per example.
    """
    # A model that is itself a single layer is its own (unnamed) leaf.
    leaves = [
        (name or type(m).__name__, m) for name, m in model.named_modules() if next(m.children(), None) is None
    ]
    rows: list[LayerRow] = []
    seen: set[int] = set()

    def record(name: str, module: nn.Module) -> Callable[[nn.Module, object, object], None]:
        def hook(_: nn.Module, __: object, output: object) -> None:
            first = id(module) not in seen
            seen.add(id(module))
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
            params = sum(p.numel() for p in module.parameters()) if first else 0
            rows.append(LayerRow(name, type(module).__name__, shape, params))

        return hook

    param = next(model.parameters(), None)
    x = (
        torch.zeros(1, *input_shape)
        if param is None
        else torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype)
    )
    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(record(name, m)) for name, m in leaves]
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training  # per module: a model may hold submodules in different modes
    return ModelSummary(
        input_shape=tuple(input_shape),
        layers=tuple(rows),
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        flops=int(counter.get_total_flops()),
    )


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "—" if shape is None else "×".join(map(str, shape))
