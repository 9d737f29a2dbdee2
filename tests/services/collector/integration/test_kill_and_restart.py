"""Nothing is lost, nothing is doubled, when the collector dies mid-batch and starts again (real Kafka and ES).

- The indexer crashes after a batch reached Elasticsearch but before its offsets were committed: the restarted
  indexer gets the batch again and re-indexes it under the same ids (the documents' _version shows the redelivery).
- The indexer task is cancelled in the middle of the stream (a kill): the restarted one resumes from the last commit.
- The collector dies after producing part of a fetch it never acknowledged: the fetch is ingested again by a fresh
  process (empty memory of produced ids), so some posts are on Kafka twice, and Elasticsearch still ends with each once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import IndexNames, ensure_index
from qingfeng.kafka import Producer, Record, run_batches
from qingfeng.v1 import post_pb2

from services.collector.app import build_pipeline
from services.collector.indexer import PostIndexer
from services.collector.settings import CollectorSettings, IndexerSettings
from tests.services.collector.integration.helpers import numbered_posts, read_topic, wait_for_count

pytestmark = pytest.mark.integration

N = 300
BATCH = 40
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


class Crash(Exception):
    """The process dies."""


def posts(n: int = N) -> list[post_pb2.Post]:
    return numbered_posts(n, T0)


def small_batches(settings: CollectorSettings) -> CollectorSettings:
    indexer = IndexerSettings(group_id=settings.indexer.group_id, batch_size=BATCH, retry_backoff_s=0.2)
    return settings.model_copy(update={"indexer": indexer})


def make_indexer(settings: CollectorSettings, es: AsyncElasticsearch, producer: Producer, alias: str) -> PostIndexer:
    return PostIndexer(es, alias, producer, kafka=settings.kafka, topics=settings.topics, settings=settings.indexer)


class SlowIndexer(PostIndexer):
    """Takes its time per batch, so that the kill lands in the middle of the stream."""

    async def handle(self, records: list[Record]) -> None:
        await super().handle(records)
        await asyncio.sleep(0.3)


async def count_now(es: AsyncElasticsearch, names: IndexNames) -> int:
    await es.indices.refresh(index=names.read_alias)
    return int((await es.count(index=names.read_alias)).body["count"])


async def finish_with_a_fresh_indexer(
    settings: CollectorSettings, es: AsyncElasticsearch, producer: Producer, names: IndexNames
) -> int:
    stop = asyncio.Event()
    task = asyncio.create_task(make_indexer(settings, es, producer, names.write_alias).run(stop))
    try:
        return await wait_for_count(es, names.read_alias, N)
    finally:
        stop.set()
        await task


async def test_crash_after_indexing_before_commit_reindexes_the_batch_once(
    settings: CollectorSettings, es: AsyncElasticsearch
) -> None:
    settings = small_batches(settings)
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    async with Producer(settings.kafka) as producer:
        assert (await build_pipeline(settings, producer)(posts())).rejected == 0
        first = make_indexer(settings, es, producer, names.write_alias)
        batches = 0
        crashed_ids: list[str] = []

        async def index_then_die(records: list[Record]) -> None:
            nonlocal batches
            batches += 1
            await first.handle(records)  # the effect is durable in Elasticsearch …
            if batches == 2:
                crashed_ids.extend(r.key_text or "" for r in records)
                raise Crash()  # … and the process dies before run_batches commits the offsets

        with pytest.raises(Crash):
            await run_batches(
                settings.kafka,
                [settings.topics.posts],
                settings.indexer.group_id,
                index_then_die,
                asyncio.Event(),
                max_records=BATCH,
            )
        partial = await count_now(es, names)
        assert 0 < partial < N
        assert await finish_with_a_fresh_indexer(settings, es, producer, names) == N
    await asyncio.sleep(0.5)
    assert await count_now(es, names) == N  # and stays there: nothing indexed twice under another id
    # The crashed batch was redelivered onto the same ids. The indexer merges (update with doc_as_upsert, so an event
    # id the grader wrote survives), and Elasticsearch skips an update that changes nothing: the version may stay 1.
    found = await es.mget(index=names.write_alias, ids=crashed_ids, source=False)
    assert crashed_ids and all(doc["found"] for doc in found.body["docs"])


async def test_killed_indexer_resumes_from_the_last_commit(settings: CollectorSettings, es: AsyncElasticsearch) -> None:
    settings = small_batches(settings)
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    async with Producer(settings.kafka) as producer:
        await build_pipeline(settings, producer)(posts())
        slow = SlowIndexer(
            es, names.write_alias, producer, kafka=settings.kafka, topics=settings.topics, settings=settings.indexer
        )
        task = asyncio.create_task(slow.run(asyncio.Event()))
        assert await wait_for_count(es, names.read_alias, BATCH) >= BATCH
        task.cancel()  # killed mid-stream, wherever it was
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await count_now(es, names) < N
        assert await finish_with_a_fresh_indexer(settings, es, producer, names) == N
    assert await count_now(es, names) == N


async def test_collector_restarted_mid_fetch_loses_and_doubles_nothing(
    settings: CollectorSettings, es: AsyncElasticsearch
) -> None:
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    items = posts()
    async with Producer(settings.kafka) as producer:
        # The first process produced the first 120 posts, then died before its caller recorded the fetch.
        await build_pipeline(settings, producer)(items[:120])
        # The restarted process fetches the same content again and ingests all of it.
        summary = await build_pipeline(settings, producer)(items)
        assert summary.accepted + summary.duplicate == N and summary.rejected == 0
        on_kafka = await read_topic(settings, settings.topics.posts, expect=N + 120)
        assert len(on_kafka) == N + 120 and len({key for key, _ in on_kafka}) == N
        assert await finish_with_a_fresh_indexer(settings, es, producer, names) == N
    await asyncio.sleep(0.5)
    assert await count_now(es, names) == N
