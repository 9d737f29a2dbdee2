"""The collector's pipeline over the real Producer and Kafka when the broker refuses one record batch: the call
raises, the posts of the refused batch are not remembered as produced (a retry produces them again), the posts of the
batches Kafka acknowledged are (a retry counts them as re-deliveries and produces nothing)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from qingfeng.kafka import PayloadTooLargeError, Producer, TopicSpec, ensure_topics
from qingfeng.settings import KafkaSettings
from qingfeng.text import default_enricher

from services.collector.core import Deduper
from services.collector.pipeline import Outcome, Pipeline
from services.collector.settings import CollectorTopics, PipelineSettings
from tests.services.collector.unit.test_pipeline import NOW, STORY, post
from tests.services.collector.unit.test_pipeline_send_each import MemoryIds

pytestmark = pytest.mark.integration


@pytest.fixture
async def small_topics(kafka_bootstrap: str) -> AsyncIterator[tuple[KafkaSettings, CollectorTopics]]:
    run = uuid.uuid4().hex[:10]
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id=f"qftest-{run}", request_timeout_s=20)
    topics = CollectorTopics(
        posts=f"qftest.{run}.posts.v1",
        posts_deadletter=f"qftest.{run}.posts.deadletter.v1",
        deadletter=f"qftest.{run}.deadletter.v1",
    )
    # The posts topic takes record batches of at most 6,000 bytes (the producer allows 1 MiB).
    specs = [TopicSpec(topics.posts, partitions=1, config={"max.message.bytes": "6000"})]
    specs += [TopicSpec(name, partitions=1) for name in (topics.posts_deadletter, topics.deadletter)]
    await ensure_topics(kafka, specs)
    yield kafka, topics
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([spec.name for spec in specs])
    finally:
        await admin.close()


async def keys_in(kafka: KafkaSettings, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        keys: list[bytes] = []
        async with asyncio.timeout(30):
            while len(keys) < count:
                batch = await consumer.getmany(timeout_ms=500)
                keys.extend(m.key for msgs in batch.values() for m in msgs if m.key is not None)
        extra = await consumer.getmany(timeout_ms=1000)  # nothing more arrives
        keys.extend(m.key for msgs in extra.values() for m in msgs if m.key is not None)
        return keys
    finally:
        await consumer.stop()


async def test_a_refused_batch_is_not_remembered_the_acknowledged_ones_are(
    small_topics: tuple[KafkaSettings, CollectorTopics],
) -> None:
    kafka, topics = small_topics
    store = MemoryIds()
    small = [post(f"s{i}", f"{STORY}，补充细节编号{i * 7919}", minutes=i) for i in range(12)]
    big = post("big", "长" * 3000 + STORY, minutes=30)  # ~9 KB enriched: a batch of its own, over the topic's limit
    async with Producer(kafka, batch_bytes=2048) as producer:
        pipeline = Pipeline(
            producer,
            enricher=default_enricher(),
            deduper=Deduper(),
            settings=PipelineSettings(),
            topics=topics,
            clock=lambda: NOW,
            produced_ids=store,
        )
        with pytest.raises(PayloadTooLargeError):
            await pipeline.ingest([*small[:6], big, *small[6:]])
        assert store.ids == {p.id for p in small}

        report = await pipeline.ingest(small)  # the caller's retry of what was acknowledged: nothing produced
        assert all(r.outcome is Outcome.DUPLICATE and r.redelivered for r in report.results)
        with pytest.raises(PayloadTooLargeError):  # not remembered: produced (and refused) again
            await pipeline.ingest([big])
        assert "big" not in store.ids

    keys = await keys_in(kafka, topics.posts, len(small))
    assert sorted(keys) == sorted(p.id.encode() for p in small)
