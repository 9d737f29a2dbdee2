"""The idempotent protobuf producer.

One ``Producer`` per process. It is idempotent with ``acks=all``, so a retried send never duplicates a record and an
acknowledged record survives a broker failure. Every record carries ``event-type``, ``event-id``, ``content-type`` and
the W3C ``traceparent`` of its own PRODUCER span, which makes the consumer's span a child of it: one trace follows a
post through every service.

    async with Producer(settings.kafka) as producer:
        delivery = await producer.send(POSTS, post.id, post, event_type="post.collected", event_id=post.id)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from qingfeng.kafka import headers as hdr
from qingfeng.kafka.errors import PayloadTooLargeError
from qingfeng.kafka.security import client_kwargs
from qingfeng.settings import KafkaSettings
from qingfeng.telemetry import inject_headers

__all__ = ["Delivery", "OutgoingRecord", "Producer", "encode_key"]

_TRACER_NAME = "qingfeng.kafka"


@dataclass(frozen=True)
class Delivery:
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class OutgoingRecord:
    """One record for ``Producer.send_many``: a protobuf message with its key, event type and event id."""

    topic: str
    key: str | bytes | None
    message: Message
    event_type: str
    event_id: str
    extra_headers: tuple[tuple[str, bytes], ...] = ()
    # Parent of the producer span (e.g. ``Record.trace_context`` of the record being answered); current one if None.
    parent: otel_context.Context | None = None


def encode_key(key: str | bytes | None) -> bytes | None:
    """Keys are entity ids; strings are sent as UTF-8 so every client hashes them to the same partition."""
    return key.encode("utf-8") if isinstance(key, str) else key


class Producer:
    """Idempotent (``acks=all``) producer of protobuf records with event and trace headers."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        linger_ms: int = 5,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self._linger_ms = linger_ms
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        self._producer: Any = None

    @property
    def max_request_size(self) -> int:
        """The largest serialised record (key + value + headers) this producer sends."""
        return self._settings.max_request_size_bytes

    async def start(self) -> None:
        """Connect to the brokers. Idempotent."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            **client_kwargs(self._settings),
            client_id=self._settings.client_id,
            acks="all",
            enable_idempotence=True,
            max_request_size=self._settings.max_request_size_bytes,
            request_timeout_ms=int(self._settings.request_timeout_s * 1000),
            linger_ms=self._linger_ms,
        )
        await producer.start()
        self._producer = producer

    async def flush(self) -> None:
        """Wait until every record handed to the producer so far is acknowledged (or failed)."""
        if self._producer is not None:
            await self._producer.flush()

    async def stop(self) -> None:
        """Flush pending records and close the connections. Idempotent."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def send(
        self,
        topic: str,
        key: str | bytes | None,
        message: Message,
        event_type: str,
        event_id: str,
        extra_headers: Sequence[tuple[str, bytes]] = (),
    ) -> Delivery:
        """Send one protobuf record and wait for its acknowledgement by all in-sync replicas.

        Raises ``PayloadTooLargeError`` when the record exceeds ``max_request_size`` (dead-letter it; a retry cannot
        succeed) and aiokafka's ``KafkaError`` for broker failures that outlived the producer's own retries.
        """
        record = OutgoingRecord(topic, key, message, event_type, event_id, tuple(extra_headers))
        return (await self.send_many([record]))[0]

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        """Send several records at once (they share broker round-trips) and wait for every acknowledgement.

        Deliveries come back in input order. If any record fails, the first error is raised after all sends have
        settled; records sent before it may already be written, which is fine because consumers are idempotent.
        """
        producer = self._require_started()
        started: list[tuple[OutgoingRecord, Span, asyncio.Future[Any] | Exception]] = []
        for record in records:
            span = self._start_span(record)
            try:
                future: asyncio.Future[Any] | Exception = await self._enqueue(producer, record, span)
            except Exception as err:  # one bad record must not leave the other spans open
                future = err
            started.append((record, span, future))
        deliveries: list[Delivery] = []
        first_error: Exception | None = None
        for record, span, pending in started:
            try:
                if isinstance(pending, Exception):
                    raise pending
                try:
                    meta = await pending
                except MessageSizeTooLargeError as err:  # the broker's limit can be lower than ours
                    size = record.message.ByteSize()
                    raise PayloadTooLargeError(record.topic, size, self.max_request_size) from err
                span.set_attribute("messaging.destination.partition.id", str(meta.partition))
                span.set_attribute("messaging.kafka.offset", meta.offset)
                deliveries.append(Delivery(meta.topic, meta.partition, meta.offset))
            except Exception as err:
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, type(err).__name__))
                first_error = first_error or err
            finally:
                span.end()
        if first_error is not None:
            raise first_error
        return deliveries

    def _require_started(self) -> Any:
        if self._producer is None:
            raise RuntimeError("Producer.start() has not been called")
        return self._producer

    def _start_span(self, record: OutgoingRecord) -> Span:
        attributes: dict[str, str] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": record.topic,
            "messaging.message.id": record.event_id,
            "qingfeng.event_type": record.event_type,
        }
        key = encode_key(record.key)
        if key is not None:
            attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
        return self._tracer.start_span(
            f"send {record.topic}", context=record.parent, kind=SpanKind.PRODUCER, attributes=attributes
        )

    async def _enqueue(self, producer: Any, record: OutgoingRecord, span: Span) -> asyncio.Future[Any]:
        value = record.message.SerializeToString()
        key = encode_key(record.key)
        own = [
            (hdr.EVENT_TYPE, record.event_type.encode("utf-8")),
            (hdr.EVENT_ID, record.event_id.encode("utf-8")),
            (hdr.CONTENT_TYPE, hdr.content_type_for(record.message).encode("utf-8")),
        ]
        reserved = {name for name, _ in own}
        headers = inject_headers(
            [*own, *((k, v) for k, v in record.extra_headers if k not in reserved)],
            ctx=trace.set_span_in_context(span),
        )
        span.set_attribute("messaging.message.body.size", len(value))
        try:
            future: asyncio.Future[Any] = await producer.send(record.topic, value=value, key=key, headers=headers)
        except MessageSizeTooLargeError as err:
            size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
            raise PayloadTooLargeError(record.topic, size, self.max_request_size) from err
        return future
