"""The transactional outbox: a change and the events announcing it commit together, Kafka gets them afterwards.

A service writes its rows and calls ``add_to_outbox`` in the same transaction; if it rolls back, no event exists.
``relay_outbox`` (or the ``run_relay`` loop) then sends unpublished rows in id order through a ``Send`` port and marks
them published. That is at-least-once: a crash between the broker's acknowledgement and the mark sends a row again,
which every consumer tolerates by deduplicating on the ``event-id`` header.

Order per key follows the id order of the rows. The relay stops at the first failed send, so a later event for the
same key never overtakes an earlier one; rows sent before the failure are still marked. Ids are handed out at insert
time, so a service that emits events for one entity from concurrent transactions must serialise them on that entity
(it does when it updates the entity's row first, as the row lock is taken before the outbox insert).

The table lives in each service's own schema: ``outbox_table(metadata)`` for models, ``create_outbox_table()`` in a
migration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from qingfeng.telemetry import inject_headers

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "OUTBOX_TABLE",
    "OutboxRelayError",
    "Send",
    "add_to_outbox",
    "create_outbox_table",
    "drop_outbox_table",
    "outbox_table",
    "purge_published",
    "relay_outbox",
    "run_relay",
]

_log = logging.getLogger(__name__)

OUTBOX_TABLE: Final = "outbox"
# Header names every Qingfeng record carries (the same as ``qingfeng.kafka.headers``, not imported: no Kafka here).
EVENT_TYPE_HEADER: Final = "event-type"
EVENT_ID_HEADER: Final = "event-id"
_UNPUBLISHED_INDEX: Final = "ix_outbox_unpublished"
_UNPUBLISHED: Final = text("published_at IS NULL")


class Send(Protocol):
    """The port the relay sends through: returns once the broker has acknowledged the record, raises otherwise.

    ``headers`` are the row's stored headers plus ``event-type`` and ``event-id``, in Kafka's (name, bytes) form.
    Positional-only, so any ``async def send(topic, key, payload, headers)`` fits.
    """

    async def __call__(
        self, topic: str, key: str | None, payload: bytes, headers: Sequence[tuple[str, bytes]], /
    ) -> None: ...


class OutboxRelayError(RuntimeError):
    """A send failed; the rows before it were published (``published``), that row and the rest wait for the next run."""

    def __init__(self, published: int) -> None:
        super().__init__(f"outbox send failed after {published} published row(s)")
        self.published = published


def _columns() -> list[Column[Any]]:
    # A fresh set per table: a Column belongs to exactly one Table.
    return [
        # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=True),
        Column("event_type", String(255), nullable=False),
        Column("event_id", String(255), nullable=False, unique=True),
        Column("payload", LargeBinary(), nullable=False),
        Column("headers", JSON(), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
    ]


def outbox_table(metadata: MetaData) -> Table:
    """Add the ``outbox`` table to a service's ``metadata`` (for models and autogenerate) and return it."""
    table = Table(OUTBOX_TABLE, metadata, *_columns())
    # Partial index: the relay's scan stays small however many published rows are kept.
    Index(_UNPUBLISHED_INDEX, table.c.id, postgresql_where=_UNPUBLISHED, sqlite_where=_UNPUBLISHED)
    return table


# The kernel's own copy, used to build statements; it compiles to the same SQL as any service's copy.
_outbox = outbox_table(MetaData())


def create_outbox_table() -> None:
    """Create the outbox table and its index; call from a service's alembic revision ``upgrade()``."""
    from alembic import op

    op.create_table(OUTBOX_TABLE, *_columns())
    op.create_index(
        _UNPUBLISHED_INDEX,
        OUTBOX_TABLE,
        ["id"],
        postgresql_where=_UNPUBLISHED,
        sqlite_where=_UNPUBLISHED,
    )


def drop_outbox_table() -> None:
    """Drop the outbox table; call from a revision's ``downgrade()``."""
    from alembic import op

    op.drop_index(_UNPUBLISHED_INDEX, table_name=OUTBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)


async def add_to_outbox(
    session: AsyncSession,
    *,
    topic: str,
    key: str | None,
    event_type: str,
    event_id: str,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> None:
    """Queue an event in the caller's transaction; it reaches Kafka only if that transaction commits.

    The current trace context (``traceparent``) is added to ``headers`` unless they carry one, so the trace continues
    from the request that caused the event. ``payload`` is already serialised, so pass ``content-type`` in ``headers``
    when consumers check it; ``event-type`` and ``event-id`` are added by the relay from the columns. A second row with
    the same ``event_id`` raises ``IntegrityError``.
    """
    stored = dict(headers or {})
    if "traceparent" not in stored:
        stored.update((k, v.decode("ascii")) for k, v in inject_headers())
    await session.execute(
        insert(_outbox).values(
            topic=topic,
            key=key,
            event_type=event_type,
            event_id=event_id,
            payload=payload,
            headers=stored,
            created_at=now or datetime.now(UTC),
        )
    )


async def relay_outbox(
    sessions: async_sessionmaker[AsyncSession],
    send: Send,
    *,
    batch_size: int = 100,
) -> int:
    """Send up to ``batch_size`` unpublished rows in id order and mark them published; return how many.

    Rows are read and marked in two short transactions and sent in between, so no database lock is held while waiting
    for the broker. Raises ``OutboxRelayError`` (from the send's exception) after marking the rows sent before it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    async with sessions() as session:
        query = select(_outbox).where(_outbox.c.published_at.is_(None)).order_by(_outbox.c.id).limit(batch_size)
        rows = (await session.execute(query)).all()
        await session.commit()

    sent: list[int] = []
    failure: Exception | None = None
    for row in rows:
        own = (EVENT_TYPE_HEADER, EVENT_ID_HEADER)
        headers = [(k, str(v).encode("utf-8")) for k, v in dict(row.headers).items() if k not in own]
        headers += [
            (EVENT_TYPE_HEADER, row.event_type.encode("utf-8")),
            (EVENT_ID_HEADER, row.event_id.encode("utf-8")),
        ]
        try:
            await send(row.topic, row.key, row.payload, headers)
        except Exception as exc:  # any failure of the port: stop here, keep the per-key order
            failure = exc
            break
        sent.append(row.id)

    if sent:
        async with sessions() as session, session.begin():
            await session.execute(update(_outbox).where(_outbox.c.id.in_(sent)).values(published_at=datetime.now(UTC)))
    if failure is not None:
        raise OutboxRelayError(len(sent)) from failure
    return len(sent)


async def run_relay(
    sessions: async_sessionmaker[AsyncSession],
    send: Send,
    stop: asyncio.Event,
    *,
    batch_size: int = 100,
    idle_s: float = 0.5,
    retry_s: float = 2.0,
) -> None:
    """Relay until ``stop`` is set: straight on while batches come back full, ``idle_s`` pauses when drained, and
    ``retry_s`` pauses after a failure (logged; the rows are retried)."""
    while not stop.is_set():
        pause = idle_s
        try:
            if await relay_outbox(sessions, send, batch_size=batch_size) == batch_size:
                pause = 0.0
        except OutboxRelayError as exc:
            _log.warning("outbox relay: send failed after %s row(s): %s", exc.published, exc.__cause__)
            pause = retry_s
        except Exception:
            _log.exception("outbox relay: database error")
            pause = retry_s
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)


async def purge_published(session: AsyncSession, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete rows published more than ``older_than`` ago, in the caller's transaction; return how many."""
    cutoff = (now or datetime.now(UTC)) - older_than
    result = await session.execute(
        delete(_outbox).where(_outbox.c.published_at.is_not(None), _outbox.c.published_at < cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)
