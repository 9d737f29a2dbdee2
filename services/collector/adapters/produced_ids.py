"""The collector's durable memory of the post ids it produced (``ProducedIds``), over the collector's database.

Without it a restarted collector forgot every id it had produced and a re-fetched feed or a re-run import went to
Kafka again (issue 13: 4,984 of 5,000 posts re-produced after a restart). The pipeline asks ``known`` for the ids of
a slice it does not remember in memory and calls ``remember`` once Kafka acknowledged the slice, so the table holds
only acknowledged posts. A crash between the acknowledgement and the write re-produces at most those posts, which
the consumers ignore (they are idempotent on the post id).

Bounded: rows older than ``retention`` go, and beyond ``max_rows`` the oldest go, pruned every ``prune_every_s``
from ``remember``. Past the retention a re-import is produced again and the grader drops it as older than its
horizon; the posts index overwrites the same document.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from qingfeng.storage import session_factory
from sqlalchemy import Column, DateTime, String, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from services.collector.adapters.sql import metadata

__all__ = ["SqlProducedIds", "produced_table"]

_log = logging.getLogger(__name__)

produced_table = Table(
    "collector_produced",
    metadata,
    Column("post_id", String(512), primary_key=True),
    Column("produced_at", DateTime(timezone=True), nullable=False, index=True),
)
_p = produced_table.c

# Bound parameters per statement: SQLite's default limit is 32,766 (999 before 3.32), asyncpg's 32,767.
_CHUNK: Final = 900


def _rowcount(result: Any) -> int:
    # A DELETE's result is a CursorResult; the async session types it as the generic Result.
    return max(0, int(getattr(result, "rowcount", 0) or 0))


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class SqlProducedIds:
    """``ProducedIds`` over one async engine (SQLite or PostgreSQL), table ``collector_produced``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention: timedelta = timedelta(days=14),
        max_rows: int = 5_000_000,
        prune_every_s: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory(engine)
        self._insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._retention = retention
        self._max_rows = max_rows
        self._prune_every_s = prune_every_s
        self._monotonic = monotonic
        self._next_prune = monotonic() + prune_every_s

    async def known(self, post_ids: Sequence[str]) -> set[str]:
        """The ids among ``post_ids`` that were produced (and not pruned since)."""
        found: set[str] = set()
        async with self._sessions() as session:
            for chunk in _chunks(list(dict.fromkeys(post_ids))):
                rows = await session.execute(select(_p.post_id).where(_p.post_id.in_(chunk)))
                found.update(row[0] for row in rows)
        return found

    async def remember(self, post_ids: Iterable[str], at: datetime) -> None:
        """Record ids Kafka acknowledged (an id already recorded keeps its first time); prune when due."""
        ids = list(dict.fromkeys(post_ids))
        if ids:
            rows = [{"post_id": post_id, "produced_at": at} for post_id in ids]
            # executemany: several times faster than one multi-VALUES statement per chunk (measured on SQLite).
            statement = self._insert(produced_table).on_conflict_do_nothing()
            async with self._sessions() as session, session.begin():
                await session.execute(statement, rows)
        if self._monotonic() >= self._next_prune:
            self._next_prune = self._monotonic() + self._prune_every_s
            await self.prune(at)

    async def prune(self, now: datetime) -> int:
        """Forget ids older than the retention, then the oldest beyond ``max_rows``; returns how many went."""
        async with self._sessions() as session, session.begin():
            gone = await session.execute(delete(produced_table).where(_p.produced_at < now - self._retention))
            removed = _rowcount(gone)
            cut = await session.scalar(
                select(_p.produced_at).order_by(_p.produced_at.desc()).offset(self._max_rows).limit(1)
            )
            if cut is not None:
                extra = await session.execute(delete(produced_table).where(_p.produced_at <= cut))
                removed += _rowcount(extra)
        if removed:
            _log.info("forgot %d produced post ids (older than %s or beyond %d)", removed, self._retention,
                      self._max_rows)  # fmt: skip
        return removed
