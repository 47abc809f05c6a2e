"""Shared by the tests that register their own models, datasets, objectives and metrics in this process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def isolated_registries() -> Iterator[None]:
    """Everything registered inside is forgotten afterwards, so that registry-driven tests elsewhere (every model
    builds, every dataset loads ...) never meet a part that a test made broken on purpose."""
    from lineup import plugins
    from lineup.analysis.scores import _metrics
    from lineup.data import custom
    from lineup.data.catalog import DATASETS
    from lineup.models._registry import _models
    from lineup.train.objectives import _objectives

    with pytest.MonkeyPatch.context() as mp:
        for registry in (_models, DATASETS, _objectives, _metrics):
            mp.setattr(registry, "_items", dict(registry._items))
        mp.setattr(plugins, "_registered_modules", {k: list(v) for k, v in plugins._registered_modules.items()})
        mp.setattr(plugins, "_plugins", dict(plugins._plugins))
        mp.setattr(custom, "_built", {})
        yield
