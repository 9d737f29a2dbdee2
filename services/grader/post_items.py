"""Consumed posts records -> ``Item``: the post view to grade, or the dead letter to send instead.

A bad payload is dead-lettered UNDECODABLE; no id or time, a time or a record timestamp out of range, or a time more
than a day after the record was written, INVALID. Whatever a record holds, it costs only itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from qingfeng.kafka import BadRecord, DeadLetterSpec, Record, parse
from qingfeng.v1 import common_pb2, post_pb2

from services.grader.convert import InvalidPost, post_view
from services.grader.core import PostView

__all__ = ["Item", "to_item"]

_SOURCE: Final = "grader"
_FUTURE_TOLERANCE_S: Final = 86400.0  # a day
# What a datetime holds (years 1-9999), as epoch seconds.
_MIN_RECORD_S: Final = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_MAX_RECORD_S: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


class Item:
    """One consumed record: the post view to grade, or the dead letter to send instead.

    A plain class with slots, not a frozen dataclass: one is built per consumed record, and a frozen dataclass's
    ``__init__`` cost several times as much.
    """

    __slots__ = ("dead", "key", "record", "regions", "view")

    def __init__(
        self,
        record: Record,
        key: float,  # event time (epoch seconds); -inf for dead letters, which go first
        view: PostView | None = None,
        dead: DeadLetterSpec | None = None,
        regions: Sequence[common_pb2.Region] = (),
    ) -> None:
        self.record = record
        self.key = key
        self.view = view
        self.dead = dead
        self.regions = regions  # those with a name (RegionNames): the core keeps codes only


def _dead(record: Record, reason: post_pb2.DeadLetterReason.ValueType, message: str) -> Item:
    bad = BadRecord(record, reason, message)
    return Item(record, -math.inf, dead=DeadLetterSpec.from_bad_record(bad, source=_SOURCE))


def to_item(record: Record) -> Item:
    """Decode and convert one record; every problem becomes a dead letter, never an exception."""
    parsed = parse(record, post_pb2.Post)
    if isinstance(parsed, BadRecord):
        return Item(record, -math.inf, dead=DeadLetterSpec.from_bad_record(parsed, source=_SOURCE))
    try:
        view = post_view(parsed)
        key = view.created_at.timestamp()
        written_s = _record_seconds(record)
        if key > written_s + _FUTURE_TOLERANCE_S:
            # One post from the future would move event time past every window and cool every event down.
            raise InvalidPost(f"created_at {view.created_at.isoformat()} is after the record time {record.timestamp}")
    except InvalidPost as err:
        return _dead(record, post_pb2.DEAD_LETTER_REASON_INVALID, str(err))
    except Exception as err:  # whatever a record holds, it costs only itself (issue 13)
        # An exception here would fail the batch, and the recovery would read the same record again, forever.
        return _dead(record, post_pb2.DEAD_LETTER_REASON_INVALID, f"unreadable post: {type(err).__name__}: {err}")
    regions = parsed.enrichment.regions if view.region_codes else ()
    named = [r for r in regions if r.name] if regions else ()
    return Item(record, key, view=view, regions=named)


def _record_seconds(record: Record) -> float:
    """The record's timestamp in epoch seconds; ``InvalidPost`` when it is outside what a datetime holds (years
    1-9999).

    A producer sets CreateTime freely: a timestamp past year 9999 (or before year 1) raised from the property and
    made the batch fail, and the recovery re-read the same record forever.
    """
    seconds = record.timestamp_ms / 1000
    if _MIN_RECORD_S <= seconds <= _MAX_RECORD_S:
        return seconds
    raise InvalidPost(f"record timestamp {record.timestamp_ms} ms is not a valid time (outside years 1-9999)")
