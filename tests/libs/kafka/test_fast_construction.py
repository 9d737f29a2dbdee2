"""The produce and consume paths' fast constructions give what the plain ones give.

``record_of``, ``OutgoingRecord.of`` and ``with_parent`` build their frozen dataclasses from one dict instead of the
generated ``__init__``; ``parse`` reads the content type through a per-value memo; ``Producer`` skips a send span's
name and attributes when the tracer is the no-op one. Each is compared here with the code it replaces.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from qingfeng.kafka import BadRecord, OutgoingRecord, Producer, Record, content_type_for, parse
from qingfeng.kafka.headers import header_value, proto_name_of
from qingfeng.kafka.records import headers_of, record_of, trace_context_of
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2, post_pb2

POST = post_pb2.Post(id="p1", title="某局长涉嫌受贿", text="县财政局局长被举报")
_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _message(headers: list[tuple[str, bytes]] | None, value: bytes | None = b"v") -> Any:
    return SimpleNamespace(
        topic="qf.posts.v1", partition=3, offset=42, key=b"k", value=value, headers=headers, timestamp=1_700_000_000_123
    )


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("event-type", b"post.collected"), ("event-id", b"p1")],
        [("traceparent", _PARENT.encode()), ("content-type", content_type_for(POST).encode())],
        [("k", None)],
    ],
)
def test_record_of_equals_the_dataclass_built_field_by_field(headers: list[tuple[str, Any]] | None) -> None:
    msg = _message(headers)
    got = record_of(msg)
    expected_headers = headers_of(msg.headers)
    plain = Record(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        headers=expected_headers,
        timestamp_ms=msg.timestamp,
        trace_context=trace_context_of(expected_headers),
    )
    assert got == plain
    assert type(got) is Record
    for f in dataclasses.fields(Record):
        if f.name != "trace_context":  # two contexts holding equal spans: compared by span context below
            assert getattr(got, f.name) == getattr(plain, f.name), f.name
    assert (
        trace.get_current_span(got.trace_context).get_span_context()
        == trace.get_current_span(plain.trace_context).get_span_context()
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.offset = 1  # type: ignore[misc]
    assert hash(got) == hash(plain)


def _old_parse(record: Record, message_type: Any) -> Any:
    """``parse`` before the content-type memo (frozen copy)."""
    expected = message_type.DESCRIPTOR.full_name
    if record.value is None:
        return ("bad", f"record has no value (tombstone); expected {expected}")
    content_type = header_value(record.headers, "content-type")
    if content_type is not None:
        name = proto_name_of(content_type)
        if name is None:
            return ("bad", f"content-type {content_type!r} is not protobuf; expected {expected}")
        if name != expected:
            return ("bad", f"payload is {name}, expected {expected}")
    try:
        return message_type.FromString(record.value)
    except Exception as err:
        return ("bad", f"cannot decode {expected}: {err or type(err).__name__}")


_POST_TYPE = content_type_for(POST).encode()
_EVENT_TYPE = content_type_for(event_pb2.Event()).encode()


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (POST.SerializeToString(), ()),
        (POST.SerializeToString(), (("content-type", _POST_TYPE),)),
        (POST.SerializeToString(), (("content-type", _EVENT_TYPE),)),
        (POST.SerializeToString(), (("content-type", b"application/json"),)),
        (POST.SerializeToString(), (("content-type", b"application/x-protobuf"),)),
        (POST.SerializeToString(), (("content-type", b"application/x-protobuf; proto="),)),
        (POST.SerializeToString(), (("content-type", b"\xff\xfe"),)),  # not UTF-8: as if absent
        (POST.SerializeToString(), (("content-type", b"application/json"), ("content-type", _POST_TYPE))),
        (POST.SerializeToString(), (("content-type", _POST_TYPE), ("content-type", b"text/plain"))),
        (POST.SerializeToString(), (("content-type", _POST_TYPE), ("content-type", b"\xff"))),
        (b"\xff\xff\xff", (("content-type", _POST_TYPE),)),
        (None, (("content-type", _POST_TYPE),)),
    ],
)
def test_parse_answers_as_before_the_memo(value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> None:
    for _ in range(2):  # the second time from the memo
        record = Record("t", 0, 1, b"k", value, headers, 0)
        got = parse(record, post_pb2.Post)
        old = _old_parse(record, post_pb2.Post)
        if isinstance(got, BadRecord):
            assert old == ("bad", got.message)
        else:
            assert got == old


def test_parse_memo_stays_small_under_foreign_content_types() -> None:
    from qingfeng.kafka import records

    for i in range(500):
        record = Record("t", 0, i, b"k", b"", (("content-type", f"application/x-{i}".encode()),), 0)
        assert isinstance(parse(record, post_pb2.Post), BadRecord)
    assert len(records._CONTENT_TYPES) <= records._CONTENT_TYPES_KEPT


def test_outgoing_record_of_and_with_parent_equal_the_plain_constructions() -> None:
    encoded = POST.SerializeToString()
    fast = OutgoingRecord.of("qf.posts.v1", "p1", POST, "post.collected", "p1", encoded)
    plain = OutgoingRecord("qf.posts.v1", "p1", POST, "post.collected", "p1", encoded=encoded)
    assert fast == plain and type(fast) is OutgoingRecord
    assert dataclasses.asdict(fast) == dataclasses.asdict(plain)
    parent = otel_context.Context({"x": 1})
    moved = fast.with_parent(parent)
    assert moved == dataclasses.replace(plain, parent=parent)
    assert moved.parent is parent and fast.parent is None  # the original is untouched
    assert moved.encoded is encoded and moved.message is POST
    with pytest.raises(dataclasses.FrozenInstanceError):
        moved.topic = "other"  # type: ignore[misc]


def _records() -> list[OutgoingRecord]:
    remote = NonRecordingSpan(SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1)))
    return [
        OutgoingRecord("qf.posts.v1", "p1", POST, "post.collected", "p1"),
        OutgoingRecord("qf.posts.v1", b"p2", POST, "post.collected", "p2", parent=otel_context.Context()),
        OutgoingRecord("qf.posts.v1", None, POST, "post.collected", "p3", parent=trace.set_span_in_context(remote)),
    ]


def test_spans_with_the_noop_tracer_are_the_ones_start_span_gives() -> None:
    producer = Producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), tracer_provider=trace.NoOpTracerProvider())
    records = _records()
    fast = producer._start_spans(records)
    plain = [producer._start_span(record) for record in records]
    assert [s.get_span_context() for s in fast] == [s.get_span_context() for s in plain]
    assert fast[2].get_span_context().is_valid  # the parent's context travels on, as it did
    assert not any(s.is_recording() for s in fast)


def test_spans_with_an_sdk_tracer_are_real_spans_with_their_attributes() -> None:
    producer = Producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), tracer_provider=TracerProvider())
    spans = producer._start_spans(_records())
    try:
        assert all(s.is_recording() for s in spans)
        first: Any = spans[0]
        assert first.name == "send qf.posts.v1"
        assert first.attributes["messaging.message.id"] == "p1"
        assert first.attributes["messaging.kafka.message.key"] == "p1"
        # the third record's parent is the remote span: the send span joins its trace
        assert spans[2].get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    finally:
        for span in spans:
            span.end()


def _old_encode_headers(record: OutgoingRecord) -> list[tuple[str, bytes]]:
    """The headers ``Producer._encode`` wrote before its header pairs were remembered (frozen copy, no tracing)."""
    own = [
        ("event-type", record.event_type.encode("utf-8")),
        ("event-id", record.event_id.encode("utf-8")),
        ("content-type", content_type_for(record.message).encode("utf-8")),
    ]
    if record.extra_headers:
        own.extend((k, v) for k, v in record.extra_headers if k not in {"event-type", "event-id", "content-type"})
    return own


def test_encoded_headers_are_the_ones_written_before() -> None:
    producer = Producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), tracer_provider=trace.NoOpTracerProvider())
    event = event_pb2.Event()
    records = [
        OutgoingRecord("qf.posts.v1", "p1", POST, "post.collected", "p1"),
        OutgoingRecord("qf.posts.v1", "p2", POST, "post.collected", "p2", extra_headers=(("origin", b"x"),)),
        OutgoingRecord("qf.events.v1", "e1", event, "event.graded", "e1", extra_headers=(("event-id", b"no"),)),
        OutgoingRecord("qf.posts.v1", "p3", POST, "事件", "p3"),
    ]
    for _ in range(2):  # the second time from the remembered pairs
        for record, span in zip(records, producer._start_spans(records), strict=True):
            encoded = producer._encode(record, span)
            assert encoded.headers == _old_encode_headers(record)
            assert encoded.value == record.message.SerializeToString()
            assert encoded.key == (record.key.encode() if isinstance(record.key, str) else record.key)
