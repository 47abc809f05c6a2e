"""Models: a registry of classic architectures behind one interface (``forward_features`` / ``forward_head``).

>>> from lineup.models import create_model
>>> model = create_model("lenet5", (1, 28, 28), 10, batch_norm=True)
>>> resnet = create_model("resnet18", (3, 32, 32), 10, params=200_000)  # the width that gives ~200k parameters
"""

from lineup._lazy import lazy_submodules

# Imported so that their models register.
from lineup.models import autoencoder, contrastive, estimators, gan, lenet, linear, mlp, resnet, unet, vae, vgg  # noqa: F401
from lineup.models._base import InputShape, LineupModel
from lineup.models._registry import (
    create_model,
    list_models,
    model_doc,
    model_options,
    register_model,
    register_variant,
    width_for_params,
)
from lineup.models.summary import LayerRow, ModelSummary, summarize

__all__ = [
    "InputShape",
    "LayerRow",
    "LineupModel",
    "ModelSummary",
    "create_model",
    "list_models",
    "model_doc",
    "model_options",
    "register_model",
    "register_variant",
    "summarize",
    "width_for_params",
]

__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.models.<submodule> without importing it first
