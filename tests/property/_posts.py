"""Checks on what a source adapter's parser returned: posts a pipeline can carry, dead letters with a reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from qingfeng.v1 import post_pb2

from services.collector.ports import Rejected
from services.collector.sources.base import MAX_DEAD_LETTER_PAYLOAD

__all__ = ["check_items", "posts_of"]


def check_items(items: object) -> list[post_pb2.Post | Rejected]:
    """Every item is a Post that serializes with storable times and an id, or a Rejected with a reason."""
    assert isinstance(items, list), type(items)
    for item in items:
        if isinstance(item, post_pb2.Post):
            assert item.id, item
            item.SerializeToString()  # what the pipeline does next; a bad string or number would fail here
            for field in ("created_at", "collected_at"):
                if item.HasField(field):
                    getattr(item, field).ToDatetime(tzinfo=UTC)  # within years 1 to 9999
            for number in (item.reposts, item.comments, item.likes, item.author.followers):
                assert number >= 0
        else:
            assert isinstance(item, Rejected), type(item)
            assert item.message, item
            assert item.reason, item
            assert isinstance(item.payload, bytes) and len(item.payload) <= MAX_DEAD_LETTER_PAYLOAD
            # What the pipeline does with it: the origin becomes a Kafka header, the rest a DeadLetter message.
            item.origin.encode("utf-8")
            letter = post_pb2.DeadLetter(message=item.message, payload=item.payload, source=item.source_id)
            letter.SerializeToString()
    return items


def posts_of(items: Sequence[object]) -> dict[str, post_pb2.Post]:
    return {item.id: item for item in items if isinstance(item, post_pb2.Post)}
