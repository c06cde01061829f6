"""Small name -> factory registries: strings in a recipe resolve here, once, at the edge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pretune.errors import PretuneError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory. `register(name)(fn)` adds one; `get(name)` looks one up."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # old name -> current name, kept so old recipes load

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = entry
            return entry

        return add

    def alias(self, old: str, name: str) -> None:
        """`old` keeps resolving to `name` (recipes and runs written before a rename)."""
        self._aliases[old] = name

    def get(self, name: str) -> T:
        try:
            return self._entries[self._aliases.get(name, name)]
        except KeyError:
            raise PretuneError(
                f"unknown {self.kind} '{name}'; known: {', '.join(self.available())}"
            ) from None

    def available(self) -> list[str]:
        return sorted(self._entries)

    def canonical(self, name: str) -> str:
        return self._aliases.get(name, name)

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) in self._entries
