"""Publication times: any text, format, reference time and zone give an aware time a Timestamp can hold, or None.

``parse_time`` documents no error at all: a time it cannot read, or one outside years 1 to 9999 once in UTC, is None.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import example, given
from hypothesis import strategies as st

from services.collector.sources.timeparse import BEIJING, parse_time
from tests.property._support import run
from tests.property.strategies import NOW, any_text, time_texts

_zones = st.one_of(
    st.just(BEIJING),
    st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))),
)
_nows = st.one_of(
    st.none(),
    st.just(NOW),
    st.sampled_from([datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=_zones),
)
_formats = st.one_of(
    st.just(""),
    st.sampled_from(["%Y-%m-%d %H:%M", "%Y年%m月%d日 %H:%M", "%d/%m/%Y", "%z", "%Y %z", "%", "%Q", "%s", "%H"]),
    any_text,
)


@given(time_texts, _formats, _nows, _zones)
@example("今天 24:00", "", NOW, BEIJING)
@example("999999999天前", "", NOW, BEIJING)
@example("999999999999天前", "", NOW, BEIJING)
@example("²", "", NOW, BEIJING)
@example("3分钟前", "", datetime(1, 1, 1, tzinfo=UTC), BEIJING)
@example("昨天 08:15", "", datetime(1, 1, 1, tzinfo=UTC), BEIJING)
@example("0001-01-01 00:00", "", None, BEIJING)
@example("9999-12-31T23:59:59-14:00", "", None, BEIJING)
@example("10000-01-01", "%Y-%m-%d", None, BEIJING)
@example("Mon, 01 Jan 0001 00:00:00 +1400", "", None, BEIJING)
@example("253402300800000", "", None, BEIJING)
def test_any_text_is_a_storable_time_or_none(text: str, fmt: str, now: datetime | None, zone: timezone) -> None:
    parsed, _ = run("timeparse.parse_time", parse_time, text, fmt=fmt, now=now, default_tz=zone)
    if parsed is None:
        return
    assert isinstance(parsed, datetime) and parsed.tzinfo is not None, parsed
    Timestamp().FromDatetime(parsed.astimezone(UTC))  # what set_time does with it
