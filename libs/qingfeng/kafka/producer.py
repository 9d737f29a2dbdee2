"""The idempotent protobuf producer.

One ``Producer`` per process. It is idempotent with ``acks=all``, so a retried send never duplicates a record and an
acknowledged record survives a broker failure. Every record carries ``event-type``, ``event-id``, ``content-type`` and
the W3C ``traceparent`` of its own PRODUCER span, which makes the consumer's span a child of it: one trace follows a
post through every service.

    async with Producer(settings.kafka) as producer:
        delivery = await producer.send(POSTS, post.id, post, event_type="post.collected", event_id=post.id)

``send_many`` hands its records over as one record batch per partition (``batching.py``: one future per batch instead
of a coroutine and a future per record); ``send_each`` does the same and returns each record's delivery or error
instead of raising, for callers that keep what was acknowledged when part of a call failed.

A fatal producer state is repaired here rather than left to wedge the process. After a broker restart the broker may
have lost this producer's id or sequence numbers (its producer snapshot is older than the log): every send then fails
with ``OutOfOrderSequenceNumber`` or ``UnknownProducerId``, which aiokafka treats as not retriable and never recovers
from (it does not bump the epoch as the Java client does; aio-libs/aiokafka#1017), and a sender task that died leaves
new records in its accumulator for ever. ``send_many`` then closes the client, starts a new one (a new producer id,
sequences from 0) and sends again the records that failed with such an error. Records other calls had in flight fail
with the same error (or, if the closing client cannot settle them, ``_ClientReplaced``) and are re-sent by their own
call, on the same new client. A re-sent record can be a second copy: the broker also answers OutOfOrderSequenceNumber
to a retried batch it did write but no longer remembers (it keeps the last five per producer and partition), and
nothing tells the two cases apart. Consumers are idempotent on the event id, so such a copy costs only itself; the
alternative, a collector refusing every import until restarted, loses the whole ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from qingfeng.kafka import headers as hdr
from qingfeng.kafka.batching import EncodedRecord, send_batches
from qingfeng.kafka.errors import PayloadTooLargeError
from qingfeng.kafka.outgoing import Delivery, OutgoingRecord, encode_key
from qingfeng.kafka.security import client_kwargs
from qingfeng.metrics import PRODUCER_RENEWED
from qingfeng.settings import KafkaSettings
from qingfeng.telemetry import inject_headers

__all__ = ["FATAL_PRODUCER_ERRORS", "Delivery", "OutgoingRecord", "Producer", "encode_key"]

_log = logging.getLogger(__name__)
_TRACER_NAME = "qingfeng.kafka"

# The client cannot recover from these by itself: the producer id or its sequence numbers no longer match the broker.
FATAL_PRODUCER_ERRORS: Final = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)


class _ClientReplaced(KafkaError):  # type: ignore[misc]  # aiokafka ships no type hints
    """A record was still waiting in a client that a renewal closed: its call sends it again on the new client."""


# Records failing with these are sent again on the renewed client.
_RESEND: Final = (*FATAL_PRODUCER_ERRORS, _ClientReplaced)
# A call renews the client at most this many times before it gives up and raises the error.
_RENEWALS_PER_CALL: Final = 2
# A wedged client may not flush: closing it waits this long, then its records are abandoned (their calls re-send).
_CLOSE_TIMEOUT_S: Final = 5.0
# Bytes per record batch (aiokafka's max_batch_size, default 16 KiB: ~25 posts). Larger batches mean fewer produce
# requests and futures for Kafka and for us; never above max_request_size.
_BATCH_BYTES: Final = 256 * 1024


# A Delivery built from one dict (``_attempt_batched``: one per record), as ``OutgoingRecord.of`` does.
_new = object.__new__
_set = object.__setattr__


class Producer:
    """Idempotent (``acks=all``) producer of protobuf records with event and trace headers."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        linger_ms: int = 5,
        batch_bytes: int = _BATCH_BYTES,
        batched: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        client_factory: Callable[..., Any] = AIOKafkaProducer,
    ) -> None:
        self._settings = settings
        self._linger_ms = linger_ms
        self._batch_bytes = max(1024, min(batch_bytes, settings.max_request_size_bytes))
        # One record batch per partition and call (False: one client send per record, as before).
        self._batched = batched
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        self._client_factory = client_factory  # a fake client in unit tests
        self._producer: Any = None
        self._generation = 0  # bumped by every renewal, so concurrent calls renew a failed client only once
        self._unsettled: set[asyncio.Future[Any]] = set()  # the current client's futures not resolved yet
        self._renewing = asyncio.Lock()
        self._handover_locks: dict[tuple[str, int], asyncio.Lock] = {}  # per partition (``batching.hand_over``)
        self.renewals = 0

    @property
    def max_request_size(self) -> int:
        """The largest serialised record (key + value + headers) this producer sends."""
        return self._settings.max_request_size_bytes

    async def start(self) -> None:
        """Connect to the brokers. Idempotent."""
        if self._producer is not None:
            return
        self._producer = await self._connect()

    async def _connect(self) -> Any:
        producer = self._client_factory(
            **client_kwargs(self._settings),
            client_id=self._settings.client_id,
            acks="all",
            enable_idempotence=True,
            max_request_size=self._settings.max_request_size_bytes,
            request_timeout_ms=int(self._settings.request_timeout_s * 1000),
            linger_ms=self._linger_ms,
            max_batch_size=self._batch_bytes,
        )
        await producer.start()
        return producer

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
        Records refused with a fatal producer error (``FATAL_PRODUCER_ERRORS``) are sent again on a renewed client.
        """
        deliveries: list[Delivery] = []
        for outcome in await self.send_each(records):
            if isinstance(outcome, Exception):
                raise outcome
            deliveries.append(outcome)
        return deliveries

    async def send_each(self, records: Iterable[OutgoingRecord]) -> list[Delivery | Exception]:
        """As ``send_many``, but each record's delivery or error in input order, without raising: a caller can keep
        what Kafka acknowledged when some of its records failed (with batches, all records of a failed batch)."""
        batch = list(records)
        spans = self._start_spans(batch)
        outcomes: list[Delivery | Exception] = [RuntimeError("not sent")] * len(batch)
        todo = list(range(len(batch)))
        try:
            for renewals in range(_RENEWALS_PER_CALL + 1):
                generation = self._generation
                producer = await self._live_client(generation)
                settled = await self._attempt(producer, [batch[i] for i in todo], [spans[i] for i in todo])
                fatal: list[int] = []
                for i, outcome in zip(todo, settled, strict=True):
                    outcomes[i] = outcome
                    if isinstance(outcome, _RESEND):
                        fatal.append(i)
                if not fatal or renewals == _RENEWALS_PER_CALL:
                    break
                for i in fatal:
                    spans[i].add_event("producer renewed", {"exception.type": type(outcomes[i]).__name__})
                cause = outcomes[fatal[0]]
                await self._renew(generation, cause if isinstance(cause, Exception) else None)
                todo = fatal
        finally:
            for span, outcome in zip(spans, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    span.record_exception(outcome)
                    span.set_status(Status(StatusCode.ERROR, type(outcome).__name__))
                elif span.is_recording():  # most spans are not (tracing off, or a per-post trace sampled out)
                    span.set_attribute("messaging.destination.partition.id", str(outcome.partition))
                    span.set_attribute("messaging.kafka.offset", outcome.offset)
                span.end()
        return outcomes

    async def _attempt(
        self, producer: Any, records: Sequence[OutgoingRecord], spans: Sequence[Span]
    ) -> list[Delivery | Exception]:
        """Hand every record to ``producer``, then wait for each one's acknowledgement or error (in input order)."""
        if self._batched and hasattr(producer, "create_batch"):  # a unit test's fake client may only have send()
            return await self._attempt_batched(producer, records, spans)
        started: list[asyncio.Future[Any] | Exception] = []
        for record, span in zip(records, spans, strict=True):
            try:
                future = await self._enqueue(producer, record, span)
            except Exception as err:  # one bad record must not keep the others from being sent
                started.append(err)
                continue
            if producer is self._producer:
                self._unsettled.add(future)
                future.add_done_callback(self._unsettled.discard)
            started.append(future)
        settled: list[Delivery | Exception] = []
        for record, pending in zip(records, started, strict=True):
            if isinstance(pending, Exception):
                settled.append(pending)
                continue
            try:
                meta = await pending
            except MessageSizeTooLargeError:  # the broker's limit can be lower than ours
                settled.append(PayloadTooLargeError(record.topic, record.message.ByteSize(), self.max_request_size))
            except Exception as err:
                settled.append(err)
            else:
                settled.append(Delivery(meta.topic, meta.partition, meta.offset))
        return settled

    async def _attempt_batched(
        self, producer: Any, records: Sequence[OutgoingRecord], spans: Sequence[Span]
    ) -> list[Delivery | Exception]:
        """``_attempt`` with one record batch per partition (``batching.send_batches``)."""
        encoded: list[EncodedRecord] = []
        where: list[int] = []  # index in ``records`` of each encoded record
        settled: list[Delivery | Exception] = [RuntimeError("not sent")] * len(records)
        for i, (record, span) in enumerate(zip(records, spans, strict=True)):
            try:
                encoded.append(self._encode(record, span))
            except Exception as err:  # one bad record must not keep the others from being sent
                settled[i] = err
                continue
            where.append(i)
        # A renewal fails what the current client has not settled; a call on an old client tracks nothing.
        unsettled = self._unsettled if producer is self._producer else None
        outcomes = await send_batches(producer, encoded, self.max_request_size, self._handover_locks, unsettled)
        for i, item, outcome in zip(where, encoded, outcomes, strict=True):
            if isinstance(outcome, MessageSizeTooLargeError):  # ours (too large alone) or the broker's lower limit
                size = len(item.value) + len(item.key or b"") + sum(len(k) + len(v) for k, v in item.headers)
                settled[i] = PayloadTooLargeError(records[i].topic, size, self.max_request_size)
            elif isinstance(outcome, Exception):
                settled[i] = outcome
            else:
                delivery = _new(Delivery)  # Delivery(*outcome), from one dict (one per record)
                _set(delivery, "__dict__", {"topic": outcome[0], "partition": outcome[1], "offset": outcome[2]})
                settled[i] = delivery
        return settled

    async def _live_client(self, generation: int) -> Any:
        """The current client; renewed first if its sender task died (it would never send what it is given) or a
        renewal closed it and could not connect the next one."""
        producer = self._require_started()
        sender = getattr(getattr(producer, "_sender", None), "sender_task", None)
        dead = sender is not None and sender.done() and not sender.cancelled()
        if dead or getattr(producer, "_closed", False) is True:
            await self._renew(generation, sender.exception() if dead and sender is not None else None)
            producer = self._require_started()
        return producer

    async def _renew(self, generation: int, cause: BaseException | None) -> None:
        """Replace the client of ``generation`` by a new one (a new producer id); a no-op if another call did."""
        async with self._renewing:
            if generation != self._generation or self._producer is None:
                return
            old = self._producer
            _log.warning(
                "kafka producer in a fatal state (%s: %s); closing it and starting a new one",
                type(cause).__name__,
                cause,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), _CLOSE_TIMEOUT_S)
            # What the old client could not settle while closing would wait for ever (idempotent batches never
            # expire): its calls send it again on the new client. Such a record may have reached the log already,
            # as may one refused with OutOfOrderSequenceNumber (a retried batch older than the five the broker
            # remembers); consumers are idempotent on the event id, so a copy costs only itself.
            leftovers, self._unsettled = self._unsettled, set()
            for future in leftovers:
                if not future.done():
                    future.set_exception(
                        _ClientReplaced("the producer was renewed before this record was acknowledged")
                    )
            self._producer = await self._connect()
            self._generation += 1
            self.renewals += 1
            PRODUCER_RENEWED.inc()

    def _require_started(self) -> Any:
        if self._producer is None:
            raise RuntimeError("Producer.start() has not been called")
        return self._producer

    def _start_spans(self, records: Sequence[OutgoingRecord]) -> list[Span]:
        """A PRODUCER span per record; with tracing off (no SDK) the no-op tracer's, without building the name and
        attributes it ignores (it answers the parent's non-recording span, or the invalid one): the same spans."""
        tracer = self._tracer
        # A ProxyTracer forwards to the global provider's tracer once one is set, to a no-op tracer until then.
        actual = tracer._tracer if isinstance(tracer, trace.ProxyTracer) else tracer
        if isinstance(actual, trace.NoOpTracer):
            start = actual.start_span
            return [start(_NOOP_SPAN_NAME, context=record.parent) for record in records]
        return [self._start_span(record) for record in records]

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

    def _encode(self, record: OutgoingRecord, span: Span) -> EncodedRecord:
        """The record as bytes with its headers: event type, event id, content type, extras, trace context."""
        value = record.encoded if record.encoded is not None else record.message.SerializeToString()
        # The event type and content type headers repeat (a handful of values): made once each, the same pairs.
        event_type = _EVENT_TYPE_HEADERS.get(record.event_type)
        if event_type is None:
            event_type = (hdr.EVENT_TYPE, record.event_type.encode("utf-8"))
            if len(_EVENT_TYPE_HEADERS) < _HEADERS_KEPT:
                _EVENT_TYPE_HEADERS[record.event_type] = event_type
        message_type = type(record.message)
        content_type = _CONTENT_TYPE_HEADERS.get(message_type)
        if content_type is None:
            content_type = _CONTENT_TYPE_HEADERS[message_type] = (
                hdr.CONTENT_TYPE,
                hdr.content_type_bytes(record.message),
            )
        own = [event_type, (hdr.EVENT_ID, record.event_id.encode("utf-8")), content_type]
        if record.extra_headers:
            own.extend((k, v) for k, v in record.extra_headers if k not in _RESERVED)
        # inject_headers writes W3C trace context only, and nothing for a span without a valid context (tracing off).
        headers = inject_headers(own, ctx=trace.set_span_in_context(span)) if span.get_span_context().is_valid else own
        if span.is_recording():
            span.set_attribute("messaging.message.body.size", len(value))
        return EncodedRecord(record.topic, encode_key(record.key), value, headers)

    async def _enqueue(self, producer: Any, record: OutgoingRecord, span: Span) -> asyncio.Future[Any]:
        item = self._encode(record, span)
        try:
            future: asyncio.Future[Any] = await producer.send(
                item.topic, value=item.value, key=item.key, headers=item.headers
            )
        except MessageSizeTooLargeError as err:
            size = len(item.value) + len(item.key or b"") + sum(len(k) + len(v) for k, v in item.headers)
            raise PayloadTooLargeError(record.topic, size, self.max_request_size) from err
        return future


_RESERVED: Final = frozenset((hdr.EVENT_TYPE, hdr.EVENT_ID, hdr.CONTENT_TYPE))
_NOOP_SPAN_NAME: Final = "send"
# (name, value) header pairs per event type and per message class (``_encode``); event types are a handful.
_EVENT_TYPE_HEADERS: dict[str, tuple[str, bytes]] = {}
_CONTENT_TYPE_HEADERS: dict[type[Message], tuple[str, bytes]] = {}
_HEADERS_KEPT: Final = 256
