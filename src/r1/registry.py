"""A tiny registry: every plug-in (task, reward, rollout engine, advantage norm, loss aggregation) is chosen by name.

Entries may be objects or lazy ``"package.module:attr"`` strings, so optional dependencies are imported only when
their entry is used. A miss lists the valid names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, TypeVar

from r1.errors import R1Error

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None) -> Callable[[T], T] | None:
        """Register ``obj`` under ``name``; used bare as a decorator when ``obj`` is None. Duplicates are refused."""
        if obj is not None:
            self._add(name, obj)
            return None

        def deco(o: T) -> T:
            self._add(name, o)
            return o

        return deco

    def _add(self, name: str, obj: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise R1Error(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._entries))}")
        obj = self._entries[name]
        if isinstance(obj, str):  # lazy "pkg.mod:attr"
            mod, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(mod), attr)
            self._entries[name] = obj
        return obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
