"""Where the website feed's entries live: a small port and its in-memory implementation.

The publisher's SQL store implements the same Protocol over its own engine and migrations; the in-memory one
serves the tests and a single-process demo (it forgets everything on restart, so it is not for production).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

__all__ = ["FeedEntry", "FeedStore", "InMemoryFeedStore"]


@dataclass(frozen=True)
class FeedEntry:
    """One release on the official website's feed. Keyed by the publication id, which is also its external id."""

    publication_id: str
    title: str
    body: str
    # The release's page on the website.
    url: str
    published: datetime
    # Last change of the content (a correction moves it; a retraction does not change the content).
    updated: datetime
    retracted_at: datetime | None = None

    def corrected(self, text: str, at: datetime) -> FeedEntry:
        return replace(self, body=text, updated=at)

    def retracted(self, at: datetime) -> FeedEntry:
        return self if self.retracted_at is not None else replace(self, retracted_at=at)


class FeedStore(Protocol):
    """Feed entries by publication id."""

    async def insert_once(self, entry: FeedEntry) -> FeedEntry:
        """Store the entry unless one with its publication id exists; return the stored one either way."""
        ...

    async def get(self, publication_id: str) -> FeedEntry | None: ...

    async def save(self, entry: FeedEntry) -> None:
        """Replace the stored entry with the same publication id (a correction or a retraction)."""
        ...

    async def latest(self, limit: int) -> list[FeedEntry]:
        """The ``limit`` most recently published entries, newest first, retracted ones included."""
        ...


class InMemoryFeedStore:
    def __init__(self) -> None:
        self._entries: dict[str, FeedEntry] = {}
        self._lock = asyncio.Lock()

    async def insert_once(self, entry: FeedEntry) -> FeedEntry:
        async with self._lock:
            return self._entries.setdefault(entry.publication_id, entry)

    async def get(self, publication_id: str) -> FeedEntry | None:
        return self._entries.get(publication_id)

    async def save(self, entry: FeedEntry) -> None:
        async with self._lock:
            if entry.publication_id not in self._entries:
                raise KeyError(entry.publication_id)
            self._entries[entry.publication_id] = entry

    async def latest(self, limit: int) -> list[FeedEntry]:
        ordered = sorted(self._entries.values(), key=lambda e: (e.published, e.publication_id), reverse=True)
        return ordered[:limit]
