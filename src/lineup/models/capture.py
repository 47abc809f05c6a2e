"""Reading a model's representations: ``forward_features`` and its declared intermediate layers in one pass.

The layers are the submodules that ``LineupModel.representation_layers`` names; forward hooks copy their outputs
while ``forward_features`` runs, so recording them costs no extra forward pass. A layer's output with spatial
dimensions is averaged over them, one value per channel: a 6×28×28 map becomes 6 numbers per example, which keeps
the stored arrays and the CKA computed on them small (CKA's cost grows with the product of two layers' widths)
at the price of ignoring where in the image a channel responds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from lineup.models._base import LineupModel


def channel_means(output: torch.Tensor) -> torch.Tensor:
    """``(N, C, *spatial)`` to ``(N, C)`` by averaging over the spatial dimensions; ``(N, D)`` is kept as it is.

    >>> channel_means(torch.arange(8.0).reshape(1, 2, 2, 2)).tolist()
    [[1.5, 5.5]]
    """
    if output.ndim < 2:
        raise ValueError(f"a layer output must be (N, C, ...), got shape {tuple(output.shape)}")
    return output if output.ndim == 2 else output.mean(dim=tuple(range(2, output.ndim)))


def check_layers(model: nn.Module, layers: dict[str, nn.Module]) -> None:
    """Fail early, naming the culprit, when a declared layer cannot be recorded.

    Raises:
        TypeError: a name is not a non-empty string or a value is not a module.
        ValueError: a module is not part of ``model`` (its hook would never fire).
    """
    own = {id(m) for m in model.modules()}
    for name, module in layers.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(model).__name__}.representation_layers(): layer names must be non-empty "
                            f"strings, got {name!r}")
        if not isinstance(module, nn.Module):
            raise TypeError(f"{type(model).__name__}.representation_layers(): layer {name!r} must be a submodule, "
                            f"got {type(module).__name__}")
        if id(module) not in own:
            raise ValueError(f"{type(model).__name__}.representation_layers(): layer {name!r} is not a submodule "
                             "of the model, so it never runs in forward_features")


@torch.inference_mode()
def record_representations(model: LineupModel, batches: Iterable[torch.Tensor]
                           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``forward_features`` and every declared layer's channel means on ``batches``, in eval mode.

    Args:
        model: the model; its training mode is restored afterwards.
        batches: input batches ``(B, C, H, W)``, ready for the model (normalised, on its device).

    Returns:
        ``(features (N, D), {layer: (N, C_layer)})``: float32 arrays over all batches in order, the layers in
        the order the model declares them (input side first).

    Raises:
        ValueError: a declared layer did not run exactly once in a ``forward_features`` call, or its output is
            not ``(B, C, ...)``.
    """
    layers = model.representation_layers()
    check_layers(model, layers)
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def keep(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise ValueError(f"layer {name!r} returned {type(output).__name__}, not a tensor")
            outputs[name].append(channel_means(output).float().cpu())
        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in layers.items()]
    was_training = model.training
    model.eval()
    features = []
    try:
        for calls, x in enumerate(batches, start=1):
            features.append(model.forward_features(x).float().cpu())
            for name, got in outputs.items():
                if len(got) != calls:
                    raise ValueError(f"layer {name!r} of {type(model).__name__} ran {len(got) - calls + 1} times in "
                                     "one forward_features call; declare a module that runs exactly once")
                if got[-1].shape[0] != x.shape[0]:
                    raise ValueError(f"layer {name!r} gave {got[-1].shape[0]} rows for a batch of {x.shape[0]}")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not features:
        raise ValueError("no batches to record representations on")
    return torch.cat(features).numpy(), {name: torch.cat(parts).numpy() for name, parts in outputs.items()}
