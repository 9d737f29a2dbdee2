"""``set_time`` remembers the last aware time it converted; every answer stays ``FromDatetime``'s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from services.collector.sources.base import set_time

_BEIJING = timezone(timedelta(hours=8))


def _expected(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def test_repeated_and_alternating_times_convert_as_from_datetime() -> None:
    a = datetime(2026, 11, 30, 6, 0, 0, 123456, tzinfo=UTC)
    b = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=_BEIJING)
    c = datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)  # before the epoch: floor seconds
    sequence = [a, a, b, a, b, b, c, c, a, datetime(2026, 11, 30, 6, 0, 0, 123457, tzinfo=UTC)]
    for value in sequence:
        field = Timestamp(seconds=7, nanos=9)  # overwritten either way
        set_time(field, value)
        assert field == _expected(value), value


def test_an_equal_time_of_another_object_is_converted_on_its_own() -> None:
    first = datetime(2026, 1, 1, 8, 0, tzinfo=_BEIJING)
    same_instant = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    for value in (first, same_instant, first):
        field = Timestamp()
        set_time(field, value)
        assert field == _expected(value)
    assert _expected(first) == _expected(same_instant)
