"""A small name -> builder registry shared by models, datasets and objectives (after timm's ``_registry``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from lineup.errors import UnknownNameError

T = TypeVar("T", bound=Callable[..., object])


def did_you_mean(name: str, choices: list[str]) -> str:
    """A hint naming the closest choices, or an empty string when none is close."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """Builders registered by name; a duplicate name is an error, an unknown one gets a hint.

    Args:
        kind: what the registry holds, used in messages ("model", "dataset", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, fn: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
        """Register ``fn`` under ``name`` (default: its ``__name__``); usable as a decorator."""

        def add(f: T) -> T:
            key = name or f.__name__  # type: ignore[attr-defined]
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = f
            return f

        return add(fn) if fn is not None else add

    def get(self, name: str) -> T:
        """The builder for ``name``; an unknown name raises with the list of known names."""
        try:
            return self._items[name]
        except KeyError:
            names = self.names()
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, names)} Known: {', '.join(names)}."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
