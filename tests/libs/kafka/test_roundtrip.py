"""A protobuf post through the real Kafka: payload, headers and the trace context survive the trip."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, get_current_span
from qingfeng.kafka import CONTENT_TYPE, EVENT_ID, EVENT_TYPE, BadRecord, Producer, parse
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

pytestmark = pytest.mark.integration


def make_post(post_id: str) -> post_pb2.Post:
    post = post_pb2.Post(
        id=post_id,
        source_id="weibo-demo",
        url=f"https://weibo.example/{post_id}",
        title="某局长涉嫌受贿被纪委带走",
        text="网传某县住建局局长涉嫌受贿，已被纪委带走调查。",
        keywords=["受贿", "局长", "纪委"],
        reposts=120,
        author=post_pb2.Author(id="u1", name="网友甲", followers=3000),
    )
    post.created_at.FromDatetime(datetime(2025, 3, 1, 8, 30, tzinfo=UTC))
    return post


async def test_protobuf_roundtrip_keeps_payload_headers_and_trace(
    kafka_settings: KafkaSettings,
    new_topic,
    consume,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    topic = await new_topic()
    post = make_post(f"p-{uuid.uuid4().hex[:8]}")
    event_id = uuid.uuid4().hex

    async with Producer(kafka_settings, tracer_provider=tracer_provider) as producer:
        delivery = await producer.send(
            topic, post.id, post, event_type="post.collected", event_id=event_id, extra_headers=[("x-extra", b"1")]
        )
    assert delivery.topic == topic
    assert delivery.offset == 0

    (record,) = await consume(topic, f"g-{uuid.uuid4().hex[:8]}", 1)

    decoded = parse(record, post_pb2.Post)
    assert not isinstance(decoded, BadRecord)
    assert decoded == post
    assert record.key == post.id.encode()
    assert record.event_type == "post.collected"
    assert record.event_id == event_id
    header_names = [k for k, _ in record.headers]
    assert {EVENT_TYPE, EVENT_ID, CONTENT_TYPE, "traceparent", "x-extra"} <= set(header_names)
    assert record.content_type == "application/x-protobuf; proto=qingfeng.v1.Post"

    spans = span_exporter.get_finished_spans()
    (producer_span,) = [s for s in spans if s.kind is SpanKind.PRODUCER]
    # One span per batch, none per record (qingfeng.trace_batches).
    (batch_span,) = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert batch_span.name.endswith(" process batch")
    assert producer_span.attributes is not None
    assert producer_span.attributes["messaging.destination.name"] == topic
    assert producer_span.attributes["messaging.message.id"] == event_id
    # The batch span is a root linking to the producer span rather than adopting one of the batch's traces.
    assert batch_span.parent is None
    assert [link.context.span_id for link in batch_span.links] == [producer_span.context.span_id]
    # The record hands the producer's context to per-record work: the trace continues across Kafka.
    with record.traced():
        current = get_current_span().get_span_context()
        assert (current.trace_id, current.span_id) == (producer_span.context.trace_id, producer_span.context.span_id)
