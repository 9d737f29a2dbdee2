"""What a caller hands to ``Producer`` (``OutgoingRecord``) and what it gets back (``Delivery``).

``OutgoingRecord.of`` and ``with_parent`` build the frozen dataclass from one dict instead of its generated
``__init__``: the collector makes one per post (``test_fast_construction`` compares them with the plain ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry import context as otel_context

__all__ = ["Delivery", "OutgoingRecord", "encode_key"]


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
    # ``message.SerializeToString()`` when the caller has it already (the collector measures each post's size by
    # serialising it): sent as the value instead of serialising again. The caller must not change the message after.
    encoded: bytes | None = None

    def with_parent(self, parent: otel_context.Context | None) -> OutgoingRecord:
        """This record with another ``parent``: ``dataclasses.replace`` without its field-by-field introspection
        (called for every produced post, ``qingfeng.trace_batches.traces_per_record``). The fields are copied as a
        dict: a frozen dataclass's ``__init__`` sets them one ``object.__setattr__`` at a time (1.9 -> 0.6 µs)."""
        fields = self.__dict__.copy()
        fields["parent"] = parent
        copy = _new(OutgoingRecord)
        _set(copy, "__dict__", fields)
        return copy

    @staticmethod
    def of(
        topic: str, key: str | bytes | None, message: Message, event_type: str, event_id: str, encoded: bytes | None
    ) -> OutgoingRecord:
        """``OutgoingRecord(topic, key, message, event_type, event_id, encoded=encoded)``, equal to it, built in one
        dict instead of eight ``object.__setattr__`` calls (the collector makes one per post: 1.1 -> 0.4 µs)."""
        record = _new(OutgoingRecord)
        _set(
            record,
            "__dict__",
            {
                "topic": topic,
                "key": key,
                "message": message,
                "event_type": event_type,
                "event_id": event_id,
                "extra_headers": (),
                "parent": None,
                "encoded": encoded,
            },
        )
        return record


_new = object.__new__
_set = object.__setattr__


def encode_key(key: str | bytes | None) -> bytes | None:
    """Keys are entity ids; strings are sent as UTF-8 so every client hashes them to the same partition."""
    return key.encode("utf-8") if isinstance(key, str) else key
