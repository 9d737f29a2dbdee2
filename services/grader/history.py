"""Each event's level history (issue 10): its level changes, with the reasons of every grade, kept in SQL.

A level change is the ``Alert`` that announced it (from and to which level, whether the event was rising, the
criteria that fired with their values and thresholds, the full grade), so the history is exactly what the alerts
topic carried, readable per event without scanning the topic. ``EngineOwner._effect`` records every alert of a step
together with publishing and indexing it, before the step's offsets are checkpointed: a crash replays the step and
records the same alerts again under the same keys ``(event_id, sequence)``, which replaces them instead of adding
rows. The last ``keep`` changes of each event are kept; the history outlives the event in memory (an event gone
past the clustering horizon still shows how it was graded).

Table ``grader_event_grades`` (migration ``0003``): event id, sequence, grade time (event time), the Alert as
protobuf bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Final, Protocol

from qingfeng.storage import session_factory
from qingfeng.v1 import event_pb2
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, Table, Text, delete, func, insert, select
from sqlalchemy import tuple_ as sql_tuple
from sqlalchemy.ext.asyncio import AsyncEngine

from services.grader.errors import InvalidArgument, NotFound, Unavailable

__all__ = ["KEEP_PER_EVENT", "GradeHistory", "SqlGradeHistory", "list_changes"]

KEEP_PER_EVENT: Final = 50
# Alerts written per statement: (event_id, sequence) pairs stay far below SQLite's bound on parameters.
_CHUNK: Final = 400

_metadata = MetaData()
_grades = Table(
    "grader_event_grades",
    _metadata,
    Column("event_id", Text(), primary_key=True),
    Column("sequence", BigInteger(), primary_key=True, autoincrement=False),
    Column("graded_at", DateTime(timezone=True), nullable=False),
    Column("alert", LargeBinary(), nullable=False),
)


class GradeHistory(Protocol):
    """Where the level changes of events are kept (``SqlGradeHistory``; the unit tests hold an in-memory one)."""

    async def record(self, alerts: Sequence[event_pb2.Alert]) -> None:
        """Keep these level changes (idempotent per alert id); raises when the store did not take them."""
        ...

    async def changes(self, event_id: str) -> list[event_pb2.Alert]:
        """The kept level changes of one event, oldest first (empty when none)."""
        ...


class SqlGradeHistory:
    """``GradeHistory`` over the grader's database; keeps the last ``keep`` changes of each event."""

    def __init__(self, engine: AsyncEngine, *, keep: int = KEEP_PER_EVENT) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._sessions = session_factory(engine)
        self._keep = keep

    async def record(self, alerts: Sequence[event_pb2.Alert]) -> None:
        if not alerts:
            return
        # The last write of an alert id wins (a batch cannot hold one twice, a replay can repeat an earlier batch).
        unique = {(a.event_id, a.sequence): a for a in alerts}
        async with self._sessions() as session, session.begin():
            keys = list(unique)
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                pairs = sql_tuple(_grades.c.event_id, _grades.c.sequence)
                await session.execute(delete(_grades).where(pairs.in_(chunk)))
                rows = [
                    {
                        "event_id": event_id,
                        "sequence": sequence,
                        "graded_at": unique[event_id, sequence].grade.graded_at.ToDatetime(tzinfo=UTC),
                        "alert": unique[event_id, sequence].SerializeToString(),
                    }
                    for event_id, sequence in chunk
                ]
                await session.execute(insert(_grades), rows)
            events = sorted({event_id for event_id, _ in keys})
            newer = _grades.alias("newer")
            newest = select(func.max(newer.c.sequence)).where(newer.c.event_id == _grades.c.event_id)
            for start in range(0, len(events), _CHUNK):
                await session.execute(
                    delete(_grades).where(
                        _grades.c.event_id.in_(events[start : start + _CHUNK]),
                        _grades.c.sequence <= newest.scalar_subquery() - self._keep,
                    )
                )

    async def changes(self, event_id: str) -> list[event_pb2.Alert]:
        query = select(_grades.c.alert).where(_grades.c.event_id == event_id).order_by(_grades.c.sequence)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [event_pb2.Alert.FromString(bytes(row.alert)) for row in rows]


async def list_changes(history: GradeHistory | None, event_id: str, *, live: bool) -> list[event_pb2.Alert]:
    """ListEventGrades: the event's kept level changes, oldest first.

    An event the grader holds in memory (``live``) with no change yet has an empty history; an unknown id that left
    no history either is ``NotFound``.
    """
    if not event_id:
        raise InvalidArgument.of("event_id", "is required")
    if history is None:
        raise Unavailable("this grader keeps no level history")
    changes = await history.changes(event_id)
    if not changes and not live:
        raise NotFound("event", event_id, f"event {event_id!r} is not live in the grader and has no level history")
    return changes
