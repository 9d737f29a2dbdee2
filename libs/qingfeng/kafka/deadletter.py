"""Dead letters: records and inputs that could not be processed, kept with their reason for inspection and replay.

The payload is the ``qingfeng.v1.DeadLetter`` message (post.proto). The Kafka position of the original record goes
into the dead letter's own headers (``original-topic``, ``original-partition``, ``original-offset``) because the
message has no fields for it. A dead letter's event id is derived from the original position (or the payload's
hash), so dead-lettering the same record twice after a redelivery yields the same event id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from opentelemetry import context as otel_context

from qingfeng.kafka.producer import Delivery, OutgoingRecord, Producer
from qingfeng.kafka.records import BadRecord
from qingfeng.kafka.topics import DEADLETTER
from qingfeng.v1 import post_pb2

__all__ = [
    "DEADLETTER_EVENT_TYPE",
    "ORIGINAL_OFFSET",
    "ORIGINAL_PARTITION",
    "ORIGINAL_TOPIC",
    "DeadLetterSender",
    "DeadLetterSpec",
    "build_dead_letter",
]

DEADLETTER_EVENT_TYPE: Final = "deadletter.recorded"
ORIGINAL_TOPIC: Final = "original-topic"
ORIGINAL_PARTITION: Final = "original-partition"
ORIGINAL_OFFSET: Final = "original-offset"

# Room left under max_request_size for the DeadLetter's other fields and the headers.
_ENVELOPE_RESERVE_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class DeadLetterSpec:
    """Everything a dead letter says about the failed item, before it becomes a ``DeadLetter`` message."""

    topic: str
    key: str
    reason: post_pb2.DeadLetterReason.ValueType
    message: str
    payload: bytes
    source: str
    attempts: int = 1
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None
    offset: int | None = None
    parent: otel_context.Context | None = None

    @classmethod
    def from_bad_record(cls, bad: BadRecord, *, source: str, attempts: int = 1) -> DeadLetterSpec:
        """The dead letter for a record the parse helper rejected."""
        record = bad.record
        return cls(
            topic=record.topic,
            key=record.key_text or "",
            reason=bad.reason,
            message=bad.message,
            payload=record.value or b"",
            source=source,
            attempts=attempts,
            headers=record.headers,
            partition=record.partition,
            offset=record.offset,
            parent=record.trace_context,
        )

    @property
    def event_id(self) -> str:
        if self.partition is not None and self.offset is not None:
            return f"dl:{self.topic}:{self.partition}:{self.offset}"
        digest = hashlib.sha256(b"\0".join([self.topic.encode(), self.key.encode(), self.payload])).hexdigest()
        return f"dl:{self.topic}:{digest[:32]}"


def build_dead_letter(spec: DeadLetterSpec, *, now: datetime, max_payload_bytes: int) -> post_pb2.DeadLetter:
    """The ``DeadLetter`` message for ``spec``; a payload over ``max_payload_bytes`` is truncated and says so."""
    payload, message = spec.payload, spec.message
    if len(payload) > max_payload_bytes:
        sha = hashlib.sha256(payload).hexdigest()
        message = f"{message} [payload truncated from {len(payload)} to {max_payload_bytes} bytes; sha256={sha}]"
        payload = payload[:max_payload_bytes]
    letter = post_pb2.DeadLetter(
        topic=spec.topic,
        key=spec.key,
        reason=spec.reason,
        message=message,
        payload=payload,
        source=spec.source,
        attempts=spec.attempts,
        headers=_text_headers(spec.headers),
    )
    letter.occurred_at.FromDatetime(now)
    return letter


class DeadLetterSender:
    """Produces dead letters to one dead-letter topic through the shared producer."""

    def __init__(
        self,
        producer: Producer,
        *,
        source: str,
        topic: str = DEADLETTER,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._producer = producer
        self._source = source
        self._topic = topic
        self._clock = clock

    async def send_bad(self, bad: Iterable[BadRecord]) -> list[Delivery]:
        """Dead-letter every rejected record; returns once all are acknowledged."""
        return await self.send([DeadLetterSpec.from_bad_record(b, source=self._source) for b in bad])

    async def send(self, specs: Iterable[DeadLetterSpec]) -> list[Delivery]:
        """Dead-letter arbitrary failed items (collector input, failed deliveries …)."""
        now = self._clock()
        limit = max(1024, self._producer.max_request_size - _ENVELOPE_RESERVE_BYTES)
        outgoing = [
            OutgoingRecord(
                topic=self._topic,
                key=spec.key or None,
                message=build_dead_letter(spec, now=now, max_payload_bytes=limit),
                event_type=DEADLETTER_EVENT_TYPE,
                event_id=spec.event_id,
                extra_headers=_position_headers(spec),
                parent=spec.parent,
            )
            for spec in specs
        ]
        if not outgoing:
            return []
        return await self._producer.send_many(outgoing)


def _text_headers(headers: Iterable[tuple[str, bytes]]) -> Mapping[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in headers}


def _position_headers(spec: DeadLetterSpec) -> tuple[tuple[str, bytes], ...]:
    out = [(ORIGINAL_TOPIC, spec.topic.encode("utf-8"))]
    if spec.partition is not None:
        out.append((ORIGINAL_PARTITION, str(spec.partition).encode("ascii")))
    if spec.offset is not None:
        out.append((ORIGINAL_OFFSET, str(spec.offset).encode("ascii")))
    return tuple(out)
