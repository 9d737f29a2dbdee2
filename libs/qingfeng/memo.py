"""A bounded memo of a pure function: ``memo[key]`` is ``make(key)``, computed on first use.

A hit is a plain dict lookup (no Python call: only a miss reaches ``__missing__``), which is why the hot paths
(SimHash tables, enrichment of repeated short texts, post-id digests, reason documents) use it. When full it is emptied
whole rather than by dropping the oldest entry one by one: a dict emptied from the front keeps its deleted slots at
the start of its iteration order, so finding the oldest gets slower with every eviction, and the keys that repeat come
back at once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

__all__ = ["Memo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(dict[K, V]):
    """``make(key)`` for up to ``limit`` distinct keys at a time."""

    __slots__ = ("_limit", "_make")

    def __init__(self, make: Callable[[K], V], limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a memo holds at least one entry, not {limit}")
        super().__init__()
        self._make = make
        self._limit = limit

    def __missing__(self, key: K) -> V:
        if len(self) >= self._limit:
            self.clear()
        value = self[key] = self._make(key)
        return value
