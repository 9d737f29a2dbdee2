"""Batch-level produce (``qingfeng.kafka.batching``) through the real Kafka: what consumers see is what one
``send`` per record gave them, and a batch the broker refuses fails its own records only."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from qingfeng.kafka import OutgoingRecord, PayloadTooLargeError, Producer, Record
from qingfeng.kafka.batching import murmur2, murmur2_many
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

from tests.libs.kafka.conftest import Consume

pytestmark = pytest.mark.integration

PARTITIONS = [0, 1, 2]


def records(topic: str, n: int, prefix: str, text: str = "网传某县住建局局长涉嫌受贿") -> list[OutgoingRecord]:
    return [
        OutgoingRecord(
            topic,
            f"{prefix}{i}",
            post_pb2.Post(id=f"{prefix}{i}", source_id="s", text=f"{text}{i}"),
            "post.collected",
            f"{prefix}{i}",
            extra_headers=(("x-extra", str(i).encode()),),
        )
        for i in range(n)
    ]


def by_key(consumed: list[Record]) -> dict[bytes, Record]:
    found = {record.key: record for record in consumed if record.key is not None}
    assert len(found) == len(consumed), "a key arrived twice"
    return found


def test_murmur2_is_aiokafkas() -> None:
    rng = random.Random(12)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))) for _ in range(3000)]
    keys += [f"jsonl:import:{rng.randrange(10**12)}".encode() for _ in range(3000)]
    assert [murmur2(key) for key in keys] == [aiokafka_murmur2(key) for key in keys]


def test_murmur2_many_is_aiokafkas_for_every_length() -> None:
    # Many keys of a few lengths (the numpy route, every tail length 0-3) and a few of many lengths (the word loop).
    rng = random.Random(13)
    keys = [
        bytes(rng.randrange(256) for _ in range(length)) for length in (0, 1, 2, 3, 4, 41, 42, 43) for _ in range(40)
    ]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))) for _ in range(200)]
    rng.shuffle(keys)
    assert murmur2_many(keys) == [aiokafka_murmur2(key) for key in keys]
    assert murmur2_many([]) == []


async def test_batches_keep_keys_headers_partitions_and_order(
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., Awaitable[str]],
    consume: Consume,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    batched_topic = await new_topic(partitions=3)
    single_topic = await new_topic(partitions=3)
    n = 300
    # 2 KiB batches: each partition gets several, so offsets within batches and across them are both exercised.
    async with Producer(kafka_settings, batch_bytes=2048, tracer_provider=tracer_provider) as producer:
        deliveries = await producer.send_many(records(batched_topic, n, "p"))
    async with Producer(kafka_settings, batched=False) as producer:  # one client send() per record, as before
        singles = await producer.send_many(records(single_topic, n, "p"))

    # The same partition for each key as aiokafka's own send() chose, and as the Java client's partitioner.
    assert [d.partition for d in deliveries] == [d.partition for d in singles]
    expected = [DefaultPartitioner()(f"p{i}".encode(), PARTITIONS, PARTITIONS) for i in range(n)]
    assert [d.partition for d in deliveries] == expected
    assert len(set(expected)) == 3

    consumed = by_key(await consume(batched_topic, f"g-{uuid.uuid4().hex[:8]}", n))
    assert len(consumed) == n
    spans = {
        s.attributes["messaging.message.id"]: s
        for s in span_exporter.get_finished_spans()
        if s.name == f"send {batched_topic}" and s.attributes is not None
    }
    last_offset = {p: -1 for p in PARTITIONS}
    for i, delivery in enumerate(deliveries):
        record = consumed[f"p{i}".encode()]
        # Each delivery names where its record really is; within a partition, input order is log order.
        assert (record.partition, record.offset) == (delivery.partition, delivery.offset)
        assert record.offset > last_offset[record.partition]
        last_offset[record.partition] = record.offset
        assert record.event_type == "post.collected"
        assert record.event_id == f"p{i}"
        headers = dict(record.headers)
        assert headers["content-type"] == b"application/x-protobuf; proto=qingfeng.v1.Post"
        assert headers["x-extra"] == str(i).encode()
        span = spans[f"p{i}"]
        assert headers["traceparent"].decode() == (
            f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{int(span.context.trace_flags):02x}"
        )
        assert span.attributes is not None and span.attributes["messaging.kafka.offset"] == delivery.offset
        decoded = post_pb2.Post.FromString(record.value or b"")
        assert decoded.id == f"p{i}"
    assert max(d.offset for d in deliveries) >= 20  # several batches per partition (the offsets go past one)


async def test_a_refused_batch_fails_its_records_and_the_others_arrive(
    kafka_settings: KafkaSettings, new_topic: Callable[..., Awaitable[str]], consume: Consume
) -> None:
    # The topic takes batches of at most 4,000 bytes; the producer allows 1 MiB, so the broker refuses the batch.
    topic = await new_topic(partitions=1, config={"max.message.bytes": "4000"})
    small = records(topic, 20, "s")
    big = records(topic, 1, "big", text="长" * 4000)  # ~12 KB, alone in its batch
    after = records(topic, 20, "a")
    async with Producer(kafka_settings, batch_bytes=2048) as producer:
        outcomes = await producer.send_each([*small, *big, *after])
        with pytest.raises(PayloadTooLargeError):
            await producer.send_many(big)
    assert isinstance(outcomes[20], PayloadTooLargeError)
    delivered = [o for i, o in enumerate(outcomes) if i != 20]
    assert not any(isinstance(o, Exception) for o in delivered)
    consumed = by_key(await consume(topic, f"g-{uuid.uuid4().hex[:8]}", 40))
    assert set(consumed) == {r.event_id.encode() for r in (*small, *after)}
