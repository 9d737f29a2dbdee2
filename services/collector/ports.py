"""The seams between the collector's fetching side and its pipeline, and the outside systems they use.

Data flows one way: a source adapter turns what it fetched into ``Post`` messages (normalised, not yet enriched) or
``Rejected`` items; the pipeline (``Ingest``) enriches, de-duplicates and hands them to Kafka, dead-lettering the
rejects. The source registry (``SourceStore``) keeps each source's configuration, schedule and fetch status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from qingfeng.v1 import post_pb2, source_pb2

__all__ = ["FetchState", "Ingest", "IngestSummary", "Rejected", "SourceStore"]


@dataclass(frozen=True)
class Rejected:
    """Input that could not become a post: it goes to the dead-letter topic with this reason, never silently away."""

    reason: post_pb2.DeadLetterReason.ValueType
    message: str
    payload: bytes
    source_id: str
    # Where the item came from (feed URL, page URL, file:line), for the operator reading the dead letter.
    origin: str = ""


@dataclass(frozen=True)
class IngestSummary:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0


class Ingest(Protocol):
    """Enrich, de-duplicate and publish posts; dead-letter rejects. Returns once all of it is acknowledged."""

    async def __call__(self, items: Sequence[post_pb2.Post | Rejected]) -> IngestSummary: ...


@dataclass(frozen=True)
class FetchState:
    """What conditional GET needs to remember per URL."""

    etag: str = ""
    last_modified: str = ""


class SourceStore(Protocol):
    """The source registry: configuration, schedule and fetch status of every source."""

    async def due(self, now: datetime) -> list[source_pb2.Source]:
        """Unpaused sources whose next fetch time has come."""
        ...

    async def record_fetch(
        self,
        source_id: str,
        *,
        at: datetime,
        summary: IngestSummary,
        error: str | None,
        fetch_state: FetchState | None,
        next_fetch_at: datetime,
    ) -> None:
        """Store the outcome of one fetch (status, counters, conditional-GET state, next due time)."""
        ...
