"""One name -> object registry for everything users add to: activations, parameter laws,
block forms, losses, samplers, executors, claims and sweep studies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Objects by name, in registration order; a name can be registered once.

    Args:
        kind: what the objects are, for error messages (``"activation"``).
        name_of: the name of an object.
        aliases: other spellings of registered names (``{"linear": "identity"}``).
        case_sensitive: if false, names are looked up in lower case (upper case with
            ``upper=True``), so ``"ReLU"`` finds ``"relu"``.
    """

    def __init__(self, kind: str, name_of: Callable[[T], str], *,
                 aliases: Mapping[str, str] | None = None, case_sensitive: bool = True,
                 upper: bool = False):
        self.kind = kind
        self._name_of = name_of
        self._items: dict[str, T] = {}
        self._aliases = dict(aliases or {})
        self._case_sensitive = case_sensitive
        self._upper = upper

    def _fold(self, name: str) -> str:
        if not self._case_sensitive:
            name = name.upper() if self._upper else name.lower()
        return name

    def _key(self, name: str) -> str:
        name = self._fold(name)
        return self._aliases.get(name, name)

    def register(self, item: T, *, overwrite: bool = False) -> T:
        # stored under the folded name, so an item registered as "MyAct" is found by lookups
        name = self._fold(self._name_of(item))
        if name in self._items and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def all(self) -> dict[str, T]:
        return dict(self._items)

    def names(self, aliases: bool = False) -> list[str]:
        """The registered names (sorted), with their aliases if asked."""
        return sorted([*self._items, *(self._aliases if aliases else ())])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        key = self._key(name)
        if key not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of "
                             f"{self.names(aliases=True)}")
        return self._items[key]
