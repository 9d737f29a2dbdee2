"""Helpers of the collector's integration tests: numbered import posts, read a topic from the beginning, wait for
Elasticsearch."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from elasticsearch import AsyncElasticsearch
from qingfeng.v1 import common_pb2, post_pb2

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
