"""Helpers of the collector's integration tests: numbered import posts, read a topic from the beginning, wait for
Elasticsearch, the indexer tests' posts and indexer (``IndexerKit``, the ``indexer_kit`` fixture)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from elasticsearch import AsyncElasticsearch
from qingfeng.kafka import Producer, Record
from qingfeng.v1 import common_pb2, post_pb2

from services.collector.indexer import PostIndexer
from services.collector.settings import CollectorSettings


def numbered_posts(n: int, t0: datetime) -> list[post_pb2.Post]:
    """``n`` distinct import posts ``jsonl:import:<i>``, one a second from ``t0``, texts that dedupe tells apart."""
    out = []
    for i in range(n):
        p = post_pb2.Post(
            id=f"jsonl:import:{i}",
            source_id="import",
            source_kind=common_pb2.SOURCE_KIND_JSONL_IMPORT,
            native_id=str(i),
            text=f"第{i}号通报：某区第{i * 7}号工程项目负责人因违规操作被问责，编号{i * 7919 % 10007}",
        )
        p.created_at.FromDatetime(t0 + timedelta(seconds=i))
        out.append(p)
    return out


async def read_topic(settings: CollectorSettings, topic: str, *, expect: int | None = None) -> list[tuple[str, bytes]]:
    """Every (key, value) on ``topic`` from the beginning to its current end (no consumer group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        # The collector creates its topics with the configured partition count.
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[tuple[str, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions) and (expect is None or len(out) >= expect):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                out += [(m.key.decode() if m.key else "", m.value) for m in messages]
            if expect is not None and len(out) < expect:
                ends = await consumer.end_offsets(partitions)
        return out
    finally:
        await consumer.stop()


def dead_letters(records: list[tuple[str, bytes]]) -> list[post_pb2.DeadLetter]:
    return [post_pb2.DeadLetter.FromString(value) for _, value in records]


async def wait_for_count(es: AsyncElasticsearch, index: str, expected: int, timeout_s: float = 60.0) -> int:
    """Poll the searchable count of ``index`` until it reaches ``expected`` (or the timeout); return the last count."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    count = -1
    while loop.time() < deadline:
        await es.indices.refresh(index=index)
        count = int((await es.count(index=index)).body["count"])
        if count >= expected:
            return count
        await asyncio.sleep(0.3)
    return count


class IndexerKit:
    """What the indexer's tests (``test_indexer_merge.py``, ``test_indexer_event_ids.py``) build: small enriched
    posts, the records the consumer would hand over for them, and a ``PostIndexer`` on the test's settings."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings

    @staticmethod
    def post(n: int) -> post_pb2.Post:
        p = post_pb2.Post(
            id=f"weibo:idx:{n}",
            source_id="idx",
            source_kind=common_pb2.SOURCE_KIND_WEIBO_API,
            native_id=str(n),
            text=f"某局长涉嫌受贿{n}",
            text_simplified=f"某局长涉嫌受贿{n}",
            keywords=["受贿"],
        )
        p.created_at.FromDatetime(datetime(2025, 3, 1, 8, n, tzinfo=UTC).replace(tzinfo=None))
        p.enrichment.relevance = 0.5
        p.enrichment.lexicon_version = "v1"
        return p

    @staticmethod
    def records(posts: list[post_pb2.Post], *, now: bool = False) -> list[Record]:
        """Records at offsets 0.. of one partition; ``now``: stamped with the current time (an event-id wait's
        deadline is then ahead), else with 0."""
        stamp = int(time.time() * 1000) if now else 0
        return [Record("t", 0, n, p.id.encode(), p.SerializeToString(), (), stamp) for n, p in enumerate(posts)]

    def indexer(self, es: AsyncElasticsearch, alias: str, producer: Producer) -> PostIndexer:
        s = self.settings
        return PostIndexer(es, alias, producer, kafka=s.kafka, topics=s.topics, settings=s.indexer)
