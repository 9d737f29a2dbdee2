"""Consumed records and their decoding into protobuf messages.

A record that cannot be decoded as the expected message becomes a ``BadRecord`` carrying a reason code and a
message: the caller dead-letters it and carries on. Decoding never raises and never drops a record silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from qingfeng.kafka import headers as hdr
from qingfeng.telemetry import extract_context
from qingfeng.v1 import post_pb2

__all__ = [
    "BadRecord",
    "ParsedBatch",
    "Record",
    "headers_of",
    "parse",
    "parse_batch",
    "record_of",
    "trace_context_of",
]

M = TypeVar("M", bound=Message)

_UNDECODABLE = post_pb2.DEAD_LETTER_REASON_UNDECODABLE


@dataclass(frozen=True)
class Record:
    """One consumed Kafka record.

    ``trace_context`` holds the producer's span (restored from the ``traceparent`` header; records get no consumer
    span of their own, their batch does: ``qingfeng.trace_batches``). Wrap per-record work in ``with
    record.traced():`` so spans and records it produces join the producer's trace.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    trace_context: otel_context.Context = field(default_factory=otel_context.Context, compare=False, repr=False)

    @property
    def timestamp(self) -> datetime:
        """The record's timestamp (set by the producer or the broker) as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def event_type(self) -> str | None:
        return hdr.header_value(self.headers, hdr.EVENT_TYPE)

    @property
    def event_id(self) -> str | None:
        return hdr.header_value(self.headers, hdr.EVENT_ID)

    @property
    def content_type(self) -> str | None:
        return hdr.header_value(self.headers, hdr.CONTENT_TYPE)

    @property
    def key_text(self) -> str | None:
        """The key as text (keys are entity ids), with undecodable bytes replaced."""
        return None if self.key is None else self.key.decode("utf-8", "replace")

    @contextmanager
    def traced(self) -> Iterator[None]:
        """Make this record's trace context (its producer's span) current for the duration of the block."""
        token = otel_context.attach(self.trace_context)
        try:
            yield
        finally:
            otel_context.detach(token)


# A W3C traceparent as our producers write it (version 00, lower-case hex, nothing after the flags).
_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def trace_context_of(headers: Sequence[tuple[str, bytes]]) -> Context:
    """The trace context the headers carry: what ``extract_context`` returns, in a fraction of its time.

    Every record carries a traceparent, and the generic propagator (a regex search, a carrier dict, a logger check)
    cost ~15 µs per record. The common case (one version-00 traceparent, no tracestate) is read here; anything else
    (a tracestate, another version, a malformed or zero id) goes to ``extract_context``, so the result is the same
    whatever the headers hold (tests/libs/kafka/test_trace_context.py).
    """
    parent: bytes | None = None
    for key, value in headers:
        if key == "traceparent":
            parent = value
        elif key == "tracestate":
            return extract_context(headers)
    if parent is None:
        return Context()
    match = _TRACEPARENT.fullmatch(parent)
    trace_id = int(match[1], 16) if match else 0
    span_id = int(match[2], 16) if match else 0
    if match is None or not trace_id or not span_id:
        return extract_context(headers)
    span = trace.NonRecordingSpan(
        trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(match[3], 16)))
    )
    return trace.set_span_in_context(span, Context())


def headers_of(raw: Any) -> tuple[tuple[str, bytes], ...]:
    """The headers as (str, bytes) pairs: aiokafka's as they are when they already are (nearly always)."""
    if not raw:
        return ()
    for pair in raw:
        if type(pair) is not tuple or type(pair[1]) is not bytes or type(pair[0]) is not str:
            return tuple((str(k), bytes(v) if v is not None else b"") for k, v in raw)
    return tuple(raw)


def record_of(msg: Any) -> Record:
    """The ``Record`` of an aiokafka ``ConsumerRecord``, with the trace context its headers carry.

    Equal to ``Record(topic=msg.topic, …)``, built from one dict: a frozen dataclass's ``__init__`` sets its eight
    fields one ``object.__setattr__`` at a time, about 1 µs of every consumed record."""
    headers = headers_of(msg.headers)
    record = _new(Record)
    _set(
        record,
        "__dict__",
        {
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": msg.key,
            "value": msg.value,
            "headers": headers,
            "timestamp_ms": msg.timestamp,
            "trace_context": trace_context_of(headers),
        },
    )
    return record


_new = object.__new__
_set = object.__setattr__


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be used: ``reason`` classifies it (the ``DeadLetter`` contract), ``message`` explains."""

    record: Record
    reason: post_pb2.DeadLetterReason.ValueType
    message: str


@dataclass(frozen=True)
class ParsedBatch(Generic[M]):
    """A batch split into decoded messages (in record order) and bad records."""

    good: list[tuple[Record, M]]
    bad: list[BadRecord]


def parse(record: Record, message_type: type[M]) -> M | BadRecord:
    """Decode ``record`` as ``message_type``; any problem becomes a ``BadRecord`` instead of an exception.

    The ``content-type`` header, when present, must name ``message_type``: a record of another type would often
    decode without error into garbage, because protobuf keeps unknown fields.
    """
    expected = message_type.DESCRIPTOR.full_name
    value = record.value
    if value is None:
        return BadRecord(record, _UNDECODABLE, f"record has no value (tombstone); expected {expected}")
    # The last content-type header's value (``record.content_type``), read as its bytes: the few values producers
    # write are decoded and parsed once (``_content_type``), not once per record.
    raw: bytes | None = None
    for key, header in record.headers:
        if key == _CONTENT_TYPE and header is not None:
            raw = header
    content_type, name = _content_type(raw) if raw is not None else (None, None)
    if content_type is not None:
        if name is None:
            reason = f"content-type {content_type!r} is not protobuf; expected {expected}"
            return BadRecord(record, _UNDECODABLE, reason)
        if name != expected:
            return BadRecord(record, _UNDECODABLE, f"payload is {name}, expected {expected}")
    try:
        return message_type.FromString(value)
    except Exception as err:  # DecodeError mostly; any failure on foreign bytes must be dead-lettered, not raised
        return BadRecord(record, _UNDECODABLE, f"cannot decode {expected}: {err or type(err).__name__}")


_CONTENT_TYPE = hdr.CONTENT_TYPE
# content-type header bytes -> (the value as text, None when not UTF-8; the protobuf message name it names, if any).
_CONTENT_TYPES: dict[bytes, tuple[str | None, str | None]] = {}
# Foreign records may carry any value: only this many are remembered (producers of the suite write a handful).
_CONTENT_TYPES_KEPT = 64


def _content_type(raw: bytes) -> tuple[str | None, str | None]:
    """(``header_value``'s text of a content-type header, ``proto_name_of`` that text), remembered per value."""
    known = _CONTENT_TYPES.get(raw)
    if known is not None:
        return known
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:  # as header_value: an undecodable last value is no content type
        text = None
    answer = (text, hdr.proto_name_of(text) if text is not None else None)
    if len(_CONTENT_TYPES) < _CONTENT_TYPES_KEPT:
        _CONTENT_TYPES[raw] = answer
    return answer


def parse_batch(records: Iterable[Record], message_type: type[M]) -> ParsedBatch[M]:
    """``parse`` every record of a batch."""
    good: list[tuple[Record, M]] = []
    bad: list[BadRecord] = []
    for record in records:
        result = parse(record, message_type)
        if isinstance(result, BadRecord):
            bad.append(result)
        else:
            good.append((record, result))
    return ParsedBatch(good, bad)
