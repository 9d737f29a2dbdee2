"""The hot-path conversions give exactly what protobuf's own helpers give (they replace them for speed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from services.grader.convert import _event_time, reason_proto, timestamp
from services.grader.core import Reason
from services.grader.events_index import _ts

EDGES = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2026, 11, 30, 8, 46, 27, 123_456, tzinfo=UTC),
    datetime(2026, 11, 30, 16, 46, 27, 5, tzinfo=timezone(timedelta(hours=8))),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]


def _slow(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def test_timestamps_match_from_datetime_and_back() -> None:
    rng = random.Random(3)
    moments = EDGES + [datetime(1, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(3 * 10**17))
                       for _ in range(2000)]  # fmt: skip
    for at in moments:
        fast = timestamp(at)
        assert fast == _slow(at), at
        assert _event_time("p", "created_at", fast) == fast.ToDatetime(tzinfo=UTC) == at
        assert _ts(fast) == fast.ToJsonString()


def test_odd_nanos_and_out_of_range_times_go_through_protobuf() -> None:
    for nanos in (0, 1, 999, 1000, 123_000_000, 999_999_999):
        ts = Timestamp(seconds=1_700_000_000, nanos=nanos)
        assert _event_time("p", "created_at", ts) == ts.ToDatetime(tzinfo=UTC)
        assert _ts(ts) == ts.ToJsonString()


def test_a_cached_reason_is_the_same_message_and_copying_it_leaves_the_cache_intact() -> None:
    r = Reason("posts", 120.0, 100.0, ">=", "yellow", "1h")
    first = reason_proto(r)
    assert first.message == r.message and first.window.seconds == 3600
    assert reason_proto(Reason("posts", 120.0, 100.0, ">=", "yellow", "1h")) == first
    from qingfeng.v1 import event_pb2

    grade = event_pb2.Grade(reasons=[first])
    grade.reasons[0].message = "changed"
    assert reason_proto(r).message == r.message
