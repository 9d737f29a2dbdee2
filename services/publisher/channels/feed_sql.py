"""The feed's entries in the publisher's SQL database (SQLite or PostgreSQL): ``FeedStore`` over its engine.

The table belongs to the publisher's migrations: a revision calls ``create_feed_table()`` in ``upgrade()`` and
``drop_feed_table()`` in ``downgrade()`` (as it does for the outbox); ``feed_entries_table`` mirrors it.
``insert_once`` relies on the primary key: of two concurrent deliveries of one publication, one inserts and the
other reads the winner's row, on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.publisher.channels.feed_store import FeedEntry

__all__ = ["FEED_TABLE", "SqlFeedStore", "create_feed_table", "drop_feed_table", "feed_entries_table", "metadata"]

FEED_TABLE = "publisher_feed_entries"
_PUBLISHED_INDEX = "ix_publisher_feed_entries_published"


def _columns() -> list[Column[Any]]:
    return [
        Column("publication_id", String(128), primary_key=True),
        Column("title", Text(), nullable=False),
        Column("body", Text(), nullable=False),
        Column("url", Text(), nullable=False),
        Column("published", DateTime(timezone=True), nullable=False),
        Column("updated", DateTime(timezone=True), nullable=False),
        Column("retracted_at", DateTime(timezone=True), nullable=True),
    ]


metadata = MetaData()
feed_entries_table = Table(FEED_TABLE, metadata, *_columns(), Index(_PUBLISHED_INDEX, "published"))


def create_feed_table() -> None:
    """Create the feed table and its index; call from a publisher alembic revision's ``upgrade()``."""
    from alembic import op

    op.create_table(FEED_TABLE, *_columns())
    op.create_index(_PUBLISHED_INDEX, FEED_TABLE, ["published"])


def drop_feed_table() -> None:
    """Drop the feed table; call from a revision's ``downgrade()``."""
    from alembic import op

    op.drop_index(_PUBLISHED_INDEX, table_name=FEED_TABLE)
    op.drop_table(FEED_TABLE)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; we only ever store UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(entry: FeedEntry) -> dict[str, Any]:
    return {
        "publication_id": entry.publication_id,
        "title": entry.title,
        "body": entry.body,
        "url": entry.url,
        "published": _utc(entry.published),
        "updated": _utc(entry.updated),
        "retracted_at": None if entry.retracted_at is None else _utc(entry.retracted_at),
    }


def _entry(row: Any) -> FeedEntry:
    return FeedEntry(
        publication_id=row.publication_id,
        title=row.title,
        body=row.body,
        url=row.url,
        published=_utc(row.published),
        updated=_utc(row.updated),
        retracted_at=None if row.retracted_at is None else _utc(row.retracted_at),
    )


class SqlFeedStore:
    """``FeedStore`` over the publisher's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert_once(self, entry: FeedEntry) -> FeedEntry:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(feed_entries_table).values(**_row(entry)))
            return entry
        except IntegrityError:
            stored = await self.get(entry.publication_id)
            if stored is None:  # pragma: no cover - an integrity error is only the primary key here
                raise
            return stored

    async def get(self, publication_id: str) -> FeedEntry | None:
        async with self._engine.connect() as conn:
            query = select(feed_entries_table).where(feed_entries_table.c.publication_id == publication_id)
            row = (await conn.execute(query)).first()
        return None if row is None else _entry(row)

    async def save(self, entry: FeedEntry) -> None:
        values = _row(entry)
        del values["publication_id"]
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(feed_entries_table)
                .where(feed_entries_table.c.publication_id == entry.publication_id)
                .values(**values)
            )
        if result.rowcount == 0:
            raise KeyError(entry.publication_id)

    async def latest(self, limit: int) -> list[FeedEntry]:
        table = feed_entries_table
        query = select(table).order_by(table.c.published.desc(), table.c.publication_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_entry(row) for row in (await conn.execute(query)).all()]
