"""Undecodable records become BadRecords with a reason and are dead-lettered; oversized sends raise a typed error."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from qingfeng.kafka import (
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    BadRecord,
    DeadLetterSender,
    PayloadTooLargeError,
    Producer,
    parse,
    parse_batch,
)
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

pytestmark = pytest.mark.integration


async def test_corrupt_payload_becomes_bad_record_and_dead_letter(
    kafka_settings: KafkaSettings, new_topic, consume
) -> None:
    topic = await new_topic()
    dead_topic = await new_topic(prefix="qftest.deadletter")
    good = post_pb2.Post(id="p-good", title="正常的帖子")

    # A foreign producer writes garbage claiming to be a Post, then a real post follows.
    raw = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    await raw.start()
    try:
        await raw.send_and_wait(
            topic,
            value=b"\xff\xff\xff\xff",
            key=b"p-bad",
            headers=[("content-type", b"application/x-protobuf; proto=qingfeng.v1.Post")],
        )
    finally:
        await raw.stop()
    async with Producer(kafka_settings) as producer:
        await producer.send(topic, good.id, good, event_type="post.collected", event_id="e-good")

    records = await consume(topic, f"g-{uuid.uuid4().hex[:8]}", 2)
    batch = parse_batch(records, post_pb2.Post)
    assert [post.id for _, post in batch.good] == ["p-good"]
    (bad,) = batch.bad
    assert bad.reason == post_pb2.DEAD_LETTER_REASON_UNDECODABLE
    assert "cannot decode qingfeng.v1.Post" in bad.message
    assert bad.record.offset == 0

    async with Producer(kafka_settings) as producer:
        (delivery,) = await DeadLetterSender(producer, source="test", topic=dead_topic).send_bad(batch.bad)
    assert delivery.topic == dead_topic

    (letter_record,) = await consume(dead_topic, f"g-{uuid.uuid4().hex[:8]}", 1)
    letter = parse(letter_record, post_pb2.DeadLetter)
    assert isinstance(letter, post_pb2.DeadLetter)
    assert letter.topic == topic
    assert letter.key == "p-bad"
    assert letter.reason == post_pb2.DEAD_LETTER_REASON_UNDECODABLE
    assert letter.payload == b"\xff\xff\xff\xff"
    assert letter.source == "test"
    assert letter.headers["content-type"].startswith("application/x-protobuf")
    assert letter.occurred_at.seconds > 0
    assert letter_record.event_id == f"dl:{topic}:0:0"
    headers = dict(letter_record.headers)
    assert headers[ORIGINAL_TOPIC] == topic.encode()
    assert headers[ORIGINAL_PARTITION] == b"0"
    assert headers[ORIGINAL_OFFSET] == b"0"


async def test_record_of_another_type_is_rejected_by_content_type(kafka_settings: KafkaSettings, new_topic, consume):
    topic = await new_topic()
    async with Producer(kafka_settings) as producer:
        await producer.send(topic, "e1", post_pb2.DeadLetter(topic="x"), event_type="deadletter", event_id="e1")
    (record,) = await consume(topic, f"g-{uuid.uuid4().hex[:8]}", 1)
    result = parse(record, post_pb2.Post)
    assert isinstance(result, BadRecord)
    assert result.message == "payload is qingfeng.v1.DeadLetter, expected qingfeng.v1.Post"


async def test_oversized_payload_raises_typed_error(kafka_bootstrap: str, new_topic) -> None:
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, max_request_size_bytes=4096)
    topic = await new_topic()
    huge = post_pb2.Post(id="p-huge", text="贪" * 5000)
    async with Producer(settings) as producer:
        with pytest.raises(PayloadTooLargeError) as caught:
            await producer.send(topic, huge.id, huge, event_type="post.collected", event_id="e-huge")
        assert caught.value.topic == topic
        assert caught.value.limit_bytes == 4096
        assert caught.value.size_bytes > 15000
        # The producer is still usable afterwards.
        small = post_pb2.Post(id="p-small", text="小")
        delivery = await producer.send(topic, small.id, small, event_type="post.collected", event_id="e-small")
        assert delivery.offset == 0
