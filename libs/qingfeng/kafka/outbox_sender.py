"""The outbox relay's ``Send`` port over the shared producer.

An outbox row holds serialized protobuf bytes; its ``content-type`` header names the message type. The sender decodes
them back into that message (one of the types the service declares it queues) and produces it with the stored
``event-type``/``event-id`` and the trace of the request that queued it, so the record carries the standard headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from google.protobuf.message import Message

from qingfeng.kafka.headers import proto_name_of
from qingfeng.kafka.producer import OutgoingRecord, Producer
from qingfeng.telemetry import extract_context

__all__ = ["OutboxSender"]

_OWN: Final = ("event-type", "event-id", "content-type", "traceparent", "tracestate")


class OutboxSender:
    """``Send`` for ``qingfeng.storage.run_relay``: returns once Kafka acknowledged the record; raises for a row it
    cannot type (the relay retries it later, and the row stays visible in the outbox)."""

    def __init__(self, producer: Producer, message_types: Iterable[type[Message]]) -> None:
        self._producer = producer
        self._types: dict[str, type[Message]] = {t.DESCRIPTOR.full_name: t for t in message_types}

    async def __call__(
        self, topic: str, key: str | None, payload: bytes, headers: Sequence[tuple[str, bytes]], /
    ) -> None:
        values = {k: v.decode("utf-8", "replace") for k, v in headers}
        message_type = self._types.get(proto_name_of(values.get("content-type", "")) or "")
        if message_type is None:
            raise ValueError(f"outbox row for {topic} has no known content-type ({values.get('content-type')!r})")
        record = OutgoingRecord(
            topic=topic,
            key=key,
            message=message_type.FromString(payload),
            event_type=values["event-type"],
            event_id=values["event-id"],
            extra_headers=tuple((k, v) for k, v in headers if k not in _OWN),
            parent=extract_context(tuple(headers)),
        )
        await self._producer.send_many([record])
