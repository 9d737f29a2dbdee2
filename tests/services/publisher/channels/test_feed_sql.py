"""The SQL feed store on SQLite and PostgreSQL: the table made by the migration helper, insert once (also when two
deliveries race), corrections and retractions, newest first; and the feed adapter on top of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from qingfeng.storage import build_engine
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.publisher.channels.feed import FeedAdapter, FeedSettings
from services.publisher.channels.feed_sql import FEED_TABLE, SqlFeedStore, create_feed_table, drop_feed_table
from services.publisher.channels.feed_store import FeedEntry
from services.publisher.ports import Delivery

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def _migrate(conn: Connection, step: str) -> None:
    # What a publisher alembic revision does, run through alembic's own operations.
    with Operations.context(MigrationContext.configure(conn)):
        create_feed_table() if step == "up" else drop_feed_table()


def _tables(conn: Connection) -> list[str]:
    return list(inspect(conn).get_table_names())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def feed_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # A sync fixture: an async one cannot ask for the (async) PostgreSQL database fixture by name.
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'feed.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
async def feed_engine(feed_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(feed_db_url)
    async with engine.begin() as conn:
        await conn.run_sync(_migrate, "up")
    try:
        yield engine
    finally:
        await engine.dispose()


def _entry(n: int, minutes: int = 0) -> FeedEntry:
    at = T0 + timedelta(minutes=minutes)
    return FeedEntry(f"pub-{n:04d}", f"通报{n}", "正文", f"https://jw.example/r/{n}", at, at)


async def test_insert_once_keeps_the_first(feed_engine: AsyncEngine) -> None:
    store = SqlFeedStore(feed_engine)
    first = _entry(1)
    assert await store.insert_once(first) == first
    assert await store.insert_once(replace(first, title="另一标题")) == first
    assert await store.get("pub-0001") == first
    assert await store.get("pub-none") is None


async def test_racing_inserts_store_one_row_and_agree_on_it(feed_engine: AsyncEngine) -> None:
    store = SqlFeedStore(feed_engine)
    results = await asyncio.gather(*(store.insert_once(replace(_entry(7), body=f"第{n}次")) for n in range(5)))
    assert len({r.body for r in results}) == 1
    assert await store.latest(10) == [results[0]]


async def test_save_and_latest_newest_first_with_times_in_utc(feed_engine: AsyncEngine) -> None:
    store = SqlFeedStore(feed_engine)
    for n in range(3):
        await store.insert_once(_entry(n, minutes=n))
    corrected = _entry(1, minutes=1).corrected("更正", T0 + timedelta(hours=1)).retracted(T0 + timedelta(hours=2))
    await store.save(corrected)
    latest = await store.latest(2)
    assert [e.publication_id for e in latest] == ["pub-0002", "pub-0001"]
    assert latest[1] == corrected and latest[1].retracted_at is not None
    assert latest[1].retracted_at.tzinfo is not None and latest[1].retracted_at == T0 + timedelta(hours=2)
    with pytest.raises(KeyError):
        await store.save(_entry(99))


async def test_the_feed_adapter_on_sql_delivers_once(feed_engine: AsyncEngine) -> None:
    settings = FeedSettings(site_url="https://jw.example/releases")
    adapter = FeedAdapter(settings, SqlFeedStore(feed_engine), clock=lambda: T0)
    delivery = Delivery("pub-0100", "website-feed", "辟谣", "系谣言。")
    first = await adapter.deliver(delivery)
    assert await adapter.deliver(delivery) == first == await adapter.find("pub-0100")
    assert len(await SqlFeedStore(feed_engine).latest(10)) == 1


async def test_the_migration_helpers_create_and_drop_the_table(feed_engine: AsyncEngine) -> None:
    async with feed_engine.begin() as conn:
        assert FEED_TABLE in await conn.run_sync(_tables)
        await conn.run_sync(_migrate, "down")
        assert FEED_TABLE not in await conn.run_sync(_tables)
