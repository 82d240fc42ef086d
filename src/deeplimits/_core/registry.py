"""A name -> object registry, for the things users add to: claims and sweep studies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects by name, in registration order; a name can be registered once."""

    def __init__(self, kind: str, name_of: Callable[[T], str]):
        self.kind = kind
        self._name_of = name_of
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        name = self._name_of(item)
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def all(self) -> dict[str, T]:
        return dict(self._items)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {sorted(self._items)}")
        return self._items[name]
