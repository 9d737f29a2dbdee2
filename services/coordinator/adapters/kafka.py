"""The outbox relay's ``Send`` port over the shared producer: the stored protobuf bytes are decoded back into their
message (by the row's ``content-type``) and produced with the stored ``event-type``/``event-id`` and the trace of the
request that caused them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from google.protobuf.message import Message
from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.kafka.headers import proto_name_of
from qingfeng.telemetry import extract_context
from qingfeng.v1 import case_pb2, publication_request_pb2

__all__ = ["OutboxSender"]

_TYPES: Final[dict[str, type[Message]]] = {
    "qingfeng.v1.Case": case_pb2.Case,
    "qingfeng.v1.Task": case_pb2.Task,
    "qingfeng.v1.AuditRecord": case_pb2.AuditRecord,
    "qingfeng.v1.PublicationRequest": publication_request_pb2.PublicationRequest,
}
_OWN: Final = ("event-type", "event-id", "content-type", "traceparent", "tracestate")


class OutboxSender:
    """``Send`` for ``qingfeng.storage.run_relay``: returns once Kafka acknowledged the record."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    async def __call__(
        self, topic: str, key: str | None, payload: bytes, headers: Sequence[tuple[str, bytes]], /
    ) -> None:
        values = {k: v.decode("utf-8", "replace") for k, v in headers}
        name = proto_name_of(values.get("content-type", "")) or ""
        message_type = _TYPES.get(name)
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
