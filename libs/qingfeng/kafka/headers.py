"""The header names every Qingfeng record carries, and how its content type is spelled."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from google.protobuf.message import Message

__all__ = [
    "CONTENT_TYPE",
    "EVENT_ID",
    "EVENT_TYPE",
    "content_type_bytes",
    "content_type_for",
    "header_value",
    "proto_name_of",
]

# What happened (``post.collected``, ``event.graded`` …): consumers route on it without decoding the payload.
EVENT_TYPE: Final = "event-type"
# Unique id of this event: the consumer's idempotency key (at-least-once in, exactly-once effect).
EVENT_ID: Final = "event-id"
# ``application/x-protobuf; proto=qingfeng.v1.Post``: which message the payload is, checked before decoding.
CONTENT_TYPE: Final = "content-type"

_PROTOBUF_MEDIA_TYPE: Final = "application/x-protobuf"


def content_type_for(message: Message) -> str:
    """The ``content-type`` header value for a protobuf message."""
    return f"{_PROTOBUF_MEDIA_TYPE}; proto={message.DESCRIPTOR.full_name}"


_CONTENT_TYPES: dict[str, bytes] = {}  # message full name -> its header value (a handful of message types)


def content_type_bytes(message: Message) -> bytes:
    """``content_type_for(message)`` as the header's UTF-8 bytes, made once per message type."""
    name = message.DESCRIPTOR.full_name
    value = _CONTENT_TYPES.get(name)
    if value is None:
        value = _CONTENT_TYPES[name] = content_type_for(message).encode("utf-8")
    return value


def proto_name_of(content_type: str) -> str | None:
    """The full message name in a ``content-type`` value, or None when it is not a protobuf content type."""
    media, _, params = content_type.partition(";")
    if media.strip() != _PROTOBUF_MEDIA_TYPE:
        return None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip() == "proto":
            return value.strip() or None
    return None


def header_value(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    """The last value of header ``name`` decoded as UTF-8 (None when absent or not UTF-8)."""
    found: str | None = None
    for key, value in headers:
        if key == name and value is not None:
            try:
                found = value.decode("utf-8")
            except UnicodeDecodeError:
                found = None
    return found
