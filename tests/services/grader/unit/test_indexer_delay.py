"""The index role applies post event ids ``assign_delay_s`` after they were published (the collector's indexer has
had its chance to index the posts with them), and writes the batch's event snapshots at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from qingfeng.kafka import Record
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2, post_event_pb2

from services.grader.indexer import GraderIndexer
from services.grader.settings import GraderTopics, IndexRoleSettings
from tests.services.grader.unit.test_indexer import FakeProducer

TOPICS = GraderTopics(events="t.events.v1", deadletter="t.deadletter.v1")


@dataclass
class TimedIndex:
    at: list[float] = field(default_factory=list)

    async def index(self, events: list[event_pb2.Event]) -> None:
        self.at.append(time.monotonic())


@dataclass
class TimedPostEvents:
    at: list[float] = field(default_factory=list)
    wait_until: list[float | None] = field(default_factory=list)
    already_assigned: int = 0

    async def assign(self, assignments: Mapping[str, str], *, wait_until: float | None = None) -> None:
        self.at.append(time.monotonic())
        self.wait_until.append(wait_until)
        self.already_assigned += len(assignments)  # as if the indexer had written every one


def _records(published_ms: int) -> list[Record]:
    event = event_pb2.Event(id="ev-1")
    pairs = post_event_pb2.PostEventAssignments(
        assignments=[post_event_pb2.PostEventAssignment(post_id="p1", event_id="ev-1")]
    )
    return [
        Record(TOPICS.events, 0, 0, b"ev-1", event.SerializeToString(), (), published_ms),
        Record(TOPICS.post_events_topic, 0, 0, b"k", pairs.SerializeToString(), (), published_ms),
    ]


def _role(events: TimedIndex, posts: TimedPostEvents, delay_s: float, wait_s: float = 180.0) -> GraderIndexer:
    return GraderIndexer(events, posts, FakeProducer(), kafka=KafkaSettings(), topics=TOPICS, group_id="g",  # type: ignore[arg-type]
                         settings=IndexRoleSettings(assign_delay_s=delay_s, missing_wait_s=wait_s))  # fmt: skip


async def test_assignments_wait_for_their_delay_and_snapshots_do_not() -> None:
    events, posts = TimedIndex(), TimedPostEvents()
    role = _role(events, posts, 0.6)
    started = time.monotonic()
    await role.handle(_records(int(time.time() * 1000)))
    assert events.at[0] - started < 0.3  # the snapshot at once
    assert 0.45 <= posts.at[0] - started < 1.5  # the assignment after its delay
    assert role.posts_assigned == 1 and role.posts_already_assigned == 1 and role.events_indexed == 1


async def test_a_batch_read_late_is_not_delayed_again() -> None:
    events, posts = TimedIndex(), TimedPostEvents()
    role = _role(events, posts, 5.0)
    started = time.monotonic()
    await asyncio.wait_for(role.handle(_records(int((time.time() - 6.0) * 1000))), 2)  # published 6 s ago
    assert posts.at[0] - started < 0.5


async def test_posts_not_indexed_yet_are_waited_for_until_publication_plus_missing_wait() -> None:
    published = time.time() - 1.0
    posts = TimedPostEvents()
    await _role(TimedIndex(), posts, 0.0, wait_s=30.0).handle(_records(int(published * 1000)))
    assert posts.wait_until[0] is not None and abs(posts.wait_until[0] - (published + 30.0)) < 0.01


async def test_a_publication_time_ahead_of_the_clock_never_stretches_the_wait() -> None:
    posts = TimedPostEvents()
    before = time.time()
    await _role(TimedIndex(), posts, 0.0, wait_s=30.0).handle(_records(int((before + 3600) * 1000)))
    assert posts.wait_until[0] is not None and posts.wait_until[0] <= time.time() + 30.0
