"""Issue 13 on the real Kafka: a collector killed between Kafka's acknowledgement and remembering the ids.

A first pipeline produces a chunk of posts; a second one over an empty database (the kill -9 landed after the acks,
before the ids were stored) reads the posts topic's tail at start and answers the client's re-sent chunk as
re-deliveries, producing nothing. Only the pipeline's ``post.collected`` records count; the read is bounded in
records per partition and in time; a broker that cannot be reached leaves the collector as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr
from qingfeng.kafka import Producer
from qingfeng.kafka.tail_keys import read_tail_keys
from qingfeng.settings import DatabaseSettings, KafkaSettings
from qingfeng.storage import create_engine, run_migrations
from qingfeng.text import default_enricher
from qingfeng.v1 import post_pb2

from services.collector.adapters.produced_ids import SqlProducedIds
from services.collector.adapters.produced_tail import recall_produced_tail
from services.collector.app import MIGRATIONS, VERSION_TABLE, build_pipeline
from services.collector.pipeline import POST_EVENT_TYPE, Outcome
from services.collector.settings import CollectorSettings, PipelineSettings
from tests.services.collector.integration.helpers import numbered_posts

pytestmark = pytest.mark.integration

N = 90
T0 = datetime.now(UTC) - timedelta(hours=2)


def posts() -> list[post_pb2.Post]:
    return numbered_posts(N, T0)


@pytest.fixture
async def producer(settings: CollectorSettings) -> AsyncIterator[Producer]:
    value = Producer(settings.kafka)
    await value.start()
    try:
        yield value
    finally:
        await value.stop()


async def records_on(settings: CollectorSettings, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_restart_after_acks_before_store_produces_nothing_again(
    settings: CollectorSettings, producer: Producer, tmp_path: Path
) -> None:
    chunk = posts()
    bad = post_pb2.Post(id="jsonl:import:bad", source_id="import")  # no text: a dead letter, on its own topic
    first = await build_pipeline(settings, producer).ingest([*chunk, bad])
    assert [r.outcome for r in first.results] == [Outcome.ACCEPTED] * N + [Outcome.REJECTED]
    # Another writer's record on the posts topic is not something the pipeline produced.
    await producer.send(settings.topics.posts, "foreign:1", chunk[0], event_type="post.other", event_id="foreign:1")
    assert await records_on(settings, settings.topics.posts) == N + 1

    # The restarted process: a database that never heard of the chunk.
    url = f"sqlite+aiosqlite:///{tmp_path / 'collector.db'}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    try:
        store = SqlProducedIds(engine)
        assert await store.known([p.id for p in chunk]) == set()
        restarted = build_pipeline(settings, producer, default_enricher(), produced_ids=store)
        assert await recall_produced_tail(settings, restarted) == N
        again = await restarted.ingest([*chunk, post_pb2.Post(id="foreign:1", source_id="x", text="新的帖子内容")])
    finally:
        await engine.dispose()
    assert [(r.outcome, r.redelivered) for r in again.results[:N]] == [(Outcome.DUPLICATE, True)] * N
    assert (again.results[N].outcome, again.results[N].redelivered) == (Outcome.ACCEPTED, False)
    assert await records_on(settings, settings.topics.posts) == N + 2  # only the post it had never produced


async def test_tail_is_bounded_per_partition_and_keeps_the_last(
    settings: CollectorSettings, producer: Producer
) -> None:
    chunk = posts()
    await build_pipeline(settings, producer).ingest(chunk)
    full = await read_tail_keys(
        settings.kafka, settings.topics.posts, last=10_000, timeout_s=20, event_type=POST_EVENT_TYPE
    )
    assert full.complete and full.partitions == settings.kafka.partitions
    assert sorted(full.keys) == sorted(p.id for p in chunk)
    tail = await read_tail_keys(settings.kafka, settings.topics.posts, last=9, timeout_s=20, event_type=POST_EVENT_TYPE)
    assert tail.complete and 0 < len(tail.keys) <= 9 and tail.records == len(tail.keys)
    by_id = {p.id: i for i, p in enumerate(chunk)}
    assert min(by_id[k] for k in tail.keys) > N // 2  # ingested in order: only late posts are in a short tail
    cut = await read_tail_keys(settings.kafka, settings.topics.posts, last=10_000, timeout_s=0.001)
    assert not cut.complete and len(cut.keys) < N  # out of time: what was read by then, no error


async def test_a_tail_read_that_cannot_reach_kafka_leaves_memory_as_before(settings: CollectorSettings) -> None:
    nowhere = KafkaSettings(bootstrap_servers="127.0.0.1:1", client_id="qftest-nowhere", request_timeout_s=2)
    down = settings.model_copy(update={"kafka": nowhere, "pipeline": PipelineSettings(recall_tail_timeout_s=3.0)})
    producer = Producer(settings.kafka)  # never started: nothing is sent
    assert await recall_produced_tail(down, build_pipeline(down, producer)) == 0
