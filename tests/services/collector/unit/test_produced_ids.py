"""Issue 13: the collector remembers the post ids it produced across restarts, in its database (bounded).

The pipeline over an in-memory sink (Kafka stands in) and the real ``SqlProducedIds`` on SQLite and PostgreSQL,
migrated by the collector's own migrations. A "restart" is a new engine, pipeline, deduper and sink over the same
database, as a new process would build them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from qingfeng.settings import DatabaseSettings
from qingfeng.storage import create_engine, run_migrations
from qingfeng.text import default_enricher
from qingfeng.v1 import post_pb2
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.collector.adapters.produced_ids import SqlProducedIds, produced_table
from services.collector.app import MIGRATIONS, VERSION_TABLE
from services.collector.core import Deduper
from services.collector.pipeline import Pipeline, ProducedIds
from services.collector.settings import PipelineSettings
from tests.libs.storage.conftest import backend, db_url, pg_admin_url, pg_database_url  # noqa: F401 (fixtures)
from tests.services.collector.unit.test_pipeline import NOW, STORY, TOPICS, FakeSink, post

TEXTS = [f"{STORY}，第{i}位网友补充了新的细节编号{i * 7919}" for i in range(40)]


@pytest.fixture
async def migrated(db_url: str) -> AsyncIterator[str]:  # noqa: F811 (the imported fixture)
    await run_migrations(db_url, MIGRATIONS, VERSION_TABLE)
    yield db_url


def engine_for(url: str) -> AsyncEngine:
    return create_engine(DatabaseSettings(url=SecretStr(url)))


def pipeline(sink: FakeSink, store: ProducedIds | None, slice_size: int = 500) -> Pipeline:
    return Pipeline(
        sink,
        enricher=default_enricher(),
        deduper=Deduper(),
        settings=PipelineSettings(slice_size=slice_size),
        topics=TOPICS,
        clock=lambda: NOW,
        produced_ids=store,
    )


def batch(n: int = 40, prefix: str = "p") -> list[post_pb2.Post]:
    return [post(f"{prefix}{i}", TEXTS[i % len(TEXTS)], minutes=i) for i in range(n)]


async def test_restart_then_the_same_posts_produce_nothing(migrated: str) -> None:
    engine = engine_for(migrated)
    first = FakeSink()
    summary = await pipeline(first, SqlProducedIds(engine), slice_size=16)(batch())
    assert summary.accepted + summary.duplicate == 40 and len(first.on(TOPICS.posts)) == 40
    await engine.dispose()

    engine = engine_for(migrated)  # the restarted process
    again = FakeSink()
    report = await pipeline(again, SqlProducedIds(engine), slice_size=16).ingest(batch() + batch(3, prefix="new"))
    assert again.on(TOPICS.posts) and {r.key for r in again.on(TOPICS.posts)} == {"new0", "new1", "new2"}
    assert sum(r.redelivered for r in report.results) == 40  # each one counted as a duplicate, none produced
    assert report.summary.duplicate >= 40 and report.summary.rejected == 0
    await engine.dispose()


async def test_without_the_store_a_restart_produces_everything_again(migrated: str) -> None:
    """What the store changes (and what the collector did before it): the memory alone forgets on restart."""
    await pipeline(FakeSink(), None)(batch())
    again = FakeSink()
    await pipeline(again, None)(batch())
    assert len(again.on(TOPICS.posts)) == 40


async def test_a_failed_send_is_not_remembered(migrated: str) -> None:
    engine = engine_for(migrated)
    sink = FakeSink()
    sink.fail = ConnectionError("kafka down")
    with pytest.raises(ConnectionError):
        await pipeline(sink, SqlProducedIds(engine))(batch(10))
    assert await SqlProducedIds(engine).known([f"p{i}" for i in range(10)]) == set()
    retry = FakeSink()
    assert (await pipeline(retry, SqlProducedIds(engine))(batch(10))).rejected == 0
    assert len(retry.on(TOPICS.posts)) == 10
    await engine.dispose()


class BrokenStore:
    async def known(self, post_ids: Sequence[str]) -> set[str]:
        raise ConnectionError("database down")

    async def remember(self, post_ids: Collection[str], at: datetime) -> None:
        raise ConnectionError("database down")


async def test_an_unavailable_store_does_not_stop_ingest() -> None:
    sink = FakeSink()
    ingest = pipeline(sink, BrokenStore())
    await ingest(batch(5))
    assert len(sink.on(TOPICS.posts)) == 5
    report = await ingest.ingest(batch(5))
    assert all(r.redelivered for r in report.results)  # memory still knows them
    assert len(sink.on(TOPICS.posts)) == 5


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(produced_table)) or 0)


async def test_pruned_by_age_and_by_row_count(migrated: str) -> None:
    engine = engine_for(migrated)
    ticks = iter(range(1000))
    store = SqlProducedIds(
        engine, retention=timedelta(days=2), max_rows=50, prune_every_s=1e9, monotonic=lambda: next(ticks) * 60.0
    )
    await store.remember([f"old{i}" for i in range(30)], NOW - timedelta(days=3))
    await store.remember(["old0", "mid"], NOW - timedelta(days=1))  # a known id keeps its first time
    assert await count(engine) == 31
    assert await store.prune(NOW) == 30
    assert await store.known(["old0", "mid", "never"]) == {"mid"}
    for day in range(4):
        await store.remember([f"d{day}-{i}" for i in range(20)], NOW + timedelta(hours=day))
    assert await store.prune(NOW + timedelta(hours=4)) > 0
    left = await count(engine)
    assert 40 <= left <= 50  # the newest rows stay, the total within max_rows
    assert await store.known(["d3-0", "d3-19"]) == {"d3-0", "d3-19"}
    assert await store.known(["mid"]) == set()
    await engine.dispose()


async def test_remember_prunes_when_due(migrated: str) -> None:
    engine = engine_for(migrated)
    clock = [0.0]
    store = SqlProducedIds(engine, retention=timedelta(days=1), prune_every_s=600.0, monotonic=lambda: clock[0])
    await store.remember(["a", "b"], NOW - timedelta(days=2))
    await store.remember(["c"], NOW)
    assert await count(engine) == 3  # not due yet
    clock[0] = 601.0
    await store.remember(["d"], NOW)
    assert await store.known(["a", "b", "c", "d"]) == {"c", "d"}
    await engine.dispose()
