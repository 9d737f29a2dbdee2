"""Issue 13: a record the grader cannot read costs only itself: it is dead-lettered and the grader moves on.

Before, a record whose Kafka timestamp is past year 9999 raised while converting it; the batch failed, the grader
recovered from its checkpoint and read the same record again, forever. Real Kafka; topics and database are the
test's own.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from qingfeng.kafka import CONTENT_TYPE, EVENT_TYPE, Producer
from qingfeng.v1 import post_pb2

from tests.services.grader.integration.conftest import MakeSettings, Running
from tests.services.grader.integration.helpers import POST_EVENT_TYPE, produce_posts, read_topic, synthetic_stream

pytestmark = pytest.mark.integration

PAST_9999_MS = 253_402_300_800_000 * 10  # year 82269


async def accept_any_timestamp(bootstrap: str, topic: str) -> None:
    """Kafka 4 refuses a CreateTime more than an hour ahead by default; a broker configured otherwise does not."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"message.timestamp.after.max.ms": str(2**63 - 1)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)])
    finally:
        await admin.close()


async def test_a_record_timestamp_past_year_9999_is_dead_lettered_and_the_grader_moves_on(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    stream = synthetic_stream()
    running = await Running.start(settings)
    await accept_any_timestamp(settings.kafka.bootstrap_servers, settings.topics.posts)
    producer = Producer(settings.kafka)
    await producer.start()
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await raw.start()
    try:
        await produce_posts(producer, settings.topics.posts, stream[:100])
        headers = [(CONTENT_TYPE, b"application/x-protobuf; proto=qingfeng.v1.Post")]
        headers.append((EVENT_TYPE, POST_EVENT_TYPE.encode()))
        poisoned = post_pb2.Post()
        poisoned.CopyFrom(stream[100])
        poisoned.id = "jsonl:synthetic:year-82269"
        value, topic = poisoned.SerializeToString(), settings.topics.posts
        await raw.send_and_wait(topic, value, key=b"year-82269", headers=headers, timestamp_ms=PAST_9999_MS)
        await produce_posts(producer, settings.topics.posts, stream[100:])
        await running.wait_posts(len(stream), timeout_s=90)
        dead = await read_topic(settings.kafka, settings.topics.deadletter, expect=1)
        assert running.app.consumer.dead_lettered == 1
        assert not running.app.owner.stale
    finally:
        await raw.stop()
        await producer.stop()
        await running.graceful()
    [(key, value, _)] = dead
    letter = post_pb2.DeadLetter.FromString(value)
    assert key == "year-82269"
    assert letter.reason == post_pb2.DEAD_LETTER_REASON_INVALID
    assert "timestamp" in letter.message and str(PAST_9999_MS) in letter.message
