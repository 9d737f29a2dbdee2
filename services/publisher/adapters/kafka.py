"""``Send`` for the outbox relay: an outbox row (already serialised) goes to Kafka through the shared producer.

The row's ``content-type`` names the message type; it is decoded and handed to the producer so the record carries
the standard headers and continues the trace of the request that queued it (``traceparent`` stored with the row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from google.protobuf.message import Message
from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.kafka.headers import proto_name_of
from qingfeng.telemetry import extract_context
from qingfeng.v1 import post_pb2, publication_pb2

__all__ = ["OutboxSender"]

_TYPES: Final[dict[str, type[Message]]] = {
    "qingfeng.v1.Publication": publication_pb2.Publication,
    "qingfeng.v1.DeadLetter": post_pb2.DeadLetter,
}
_OWN: Final = ("event-type", "event-id", "content-type", "traceparent", "tracestate")


class OutboxSender:
    """Returns once Kafka acknowledged the record; raises for a row it cannot type (the relay retries later)."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    async def __call__(
        self, topic: str, key: str | None, payload: bytes, headers: Sequence[tuple[str, bytes]], /
    ) -> None:
        values = {k: v.decode("utf-8", "replace") for k, v in headers}
        message_type = _TYPES.get(proto_name_of(values.get("content-type", "")) or "")
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
