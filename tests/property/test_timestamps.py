"""Protobuf timestamps from elsewhere (a Kafka record, a request) carry any seconds and nanos: each converter gives an
aware datetime or its own error, ``InvalidPost`` in the grader (dead-lettered) and ``InvalidArgument`` in the
coordinator and the publisher (INVALID_ARGUMENT, or a dead letter for a record)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.kafka import BadRecord, Record
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2, post_pb2

from services.coordinator import convert as coordinator
from services.coordinator.consumer import InputConsumer
from services.coordinator.errors import InvalidArgument as CoordinatorInvalid
from services.coordinator.settings import ConsumerSettings, CoordinatorTopics
from services.grader.convert import InvalidPost, post_view
from services.publisher import convert as publisher
from services.publisher.errors import InvalidArgument as PublisherInvalid
from tests.property._support import fewer, run

_MIN, _MAX = -62_135_596_800, 253_402_300_799  # 0001-01-01 and 9999-12-31T23:59:59, UTC
_seconds = st.one_of(
    st.integers(_MIN, _MAX),
    st.sampled_from([_MIN - 1, _MAX + 1, 0, -1, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
_nanos = st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 1_000_000_000]), st.integers(-(2**31), 2**31 - 1))
timestamps = st.builds(lambda s, n: Timestamp(seconds=s, nanos=n), _seconds, _nanos)


@given(timestamps, st.booleans())
@example(Timestamp(seconds=_MAX + 1), True)
@example(Timestamp(seconds=253_402_300_800_000), False)
@example(Timestamp(seconds=0, nanos=-1), True)
def test_a_grader_post_time_is_a_datetime_or_invalid_post(ts: Timestamp, created: bool) -> None:
    post = post_pb2.Post(id="p1")
    (post.created_at if created else post.collected_at).CopyFrom(ts)
    view, _ = run("grader.post_view", post_view, post, errors=(InvalidPost,))
    if view is not None:
        assert isinstance(view.created_at, datetime) and view.created_at.tzinfo is not None


@given(timestamps)
@example(Timestamp(seconds=_MAX + 1))
@example(Timestamp(seconds=0, nanos=1_000_000_000))
def test_coordinator_and_publisher_times_are_datetimes_or_invalid_argument(ts: Timestamp) -> None:
    for name, convert, error in (
        ("coordinator.from_timestamp", coordinator.from_timestamp, CoordinatorInvalid),
        ("publisher.to_datetime", publisher.to_datetime, PublisherInvalid),
    ):
        value, _ = run(name, convert, ts, errors=(error,))
        if value is not None:
            assert value.tzinfo is not None and _MIN <= value.timestamp() <= _MAX + 1


class _Handling:
    def __init__(self) -> None:
        self.alerts: list[object] = []

    async def on_alert(self, view: object, now: datetime) -> None:
        self.alerts.append(view)


class _DeadLetters:
    def __init__(self) -> None:
        self.bad: list[BadRecord] = []

    async def send_bad(self, bad: list[BadRecord]) -> None:
        self.bad.extend(bad)


@fewer(500)
@given(timestamps)
@example(Timestamp(seconds=_MAX + 1))
def test_the_coordinator_consumer_dead_letters_an_alert_it_cannot_date(ts: Timestamp) -> None:
    handling, dead = _Handling(), _DeadLetters()
    topics = CoordinatorTopics()
    consumer = InputConsumer(
        KafkaSettings(), topics, ConsumerSettings(), handling, dead, clock=lambda: datetime(2024, 5, 3, tzinfo=UTC)
    )  # type: ignore[arg-type]
    alert = event_pb2.Alert(id="event:1:1", event_id="event:1", sequence=1, emitted_at=ts)
    record = Record(topics.alerts, 0, 7, b"event:1", alert.SerializeToString(), (), 0)
    run("coordinator.InputConsumer.handle", asyncio.run, consumer.handle([record]))
    assert len(handling.alerts) + len(dead.bad) == 1  # handled, or dead-lettered with its reason; never the batch
    assert all("not a valid time" in b.message for b in dead.bad)
