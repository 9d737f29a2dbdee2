"""Issue 13: a post delivered again (restart, re-import) or older than the horizon never opens an event again; a
record the grader cannot read (a timestamp past year 9999) is dead-lettered and the grader moves on.

Over the in-memory ports of ``test_state`` (no Kafka, no database).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from qingfeng.kafka import Record
from qingfeng.v1 import post_pb2

from services.grader.consumer import PostConsumer, to_item
from services.grader.core import PostView
from services.grader.settings import ConsumerSettings
from tests.services.grader.unit.test_state import (
    T0,
    FakeDeadLetters,
    FakeReader,
    Ports,
    _until,
    _wire,
    feed,
    ids,
    started,
    story,
)

HORIZON = timedelta(days=7)  # ClusteringConfig.horizon_seconds


async def test_restart_then_redelivered_posts_are_duplicates_no_event_no_alert() -> None:
    ports = Ports()
    owner = await started(ports)
    posts = story(120)
    await feed(owner, posts)
    first = ids(ports.sink.alerts)
    assert first and first[0] == "ev-p0:1"
    await owner.close()  # graceful stop: final checkpoint

    again = await started(ports)  # the restarted grader, from the checkpoint
    await feed(again, posts)  # the collector forgot and produced them all again
    assert ids(ports.sink.alerts) == first  # not one alert more
    assert again.dropped == {"duplicate": 120, "late": 0}
    assert set(ports.index.docs) == {"ev-p0"}
    assert again.engine.event("ev-p0") is not None and again.engine.events["ev-p0"].posts == 120


async def test_redelivered_posts_older_than_the_horizon_open_no_new_event() -> None:
    """The case the old grader got wrong: the event expired, so its posts were new to it and ``ev-p0:1`` came again."""
    ports = Ports()
    owner = await started(ports)
    old = story(120)
    await feed(owner, old)
    # Event time moves on past the horizon: the first story's event leaves memory.
    await feed(owner, story(60, start=T0 + HORIZON + timedelta(days=1), prefix="q"))
    assert owner.engine.event("ev-p0") is None
    await owner.close()
    before = ids(ports.sink.alerts)

    again = await started(ports)
    await feed(again, old)  # a re-import of the old file
    assert ids(ports.sink.alerts) == before
    assert len(ids(ports.sink.alerts)) == len(set(ids(ports.sink.alerts)))
    assert again.dropped == {"duplicate": 0, "late": 120}
    assert again.engine.event("ev-p0") is None


async def test_a_new_post_within_the_horizon_is_still_graded() -> None:
    ports = Ports()
    owner = await started(ports)
    await feed(owner, story(60, start=T0 + timedelta(days=3), prefix="q"))
    await feed(owner, story(40))  # three days late, never seen: within the horizon, so applied
    assert owner.dropped == {"duplicate": 0, "late": 0}
    assert owner.engine.event("ev-p0") is not None
    assert "ev-p0:1" in ids(ports.sink.alerts)


async def test_late_and_duplicate_decisions_do_not_depend_on_batch_boundaries() -> None:
    # New posts, a re-delivery and a straggler older than the horizon, all mixed in one stream.
    stream: list[PostView] = story(50, prefix="a")
    stream += story(50, start=T0 + HORIZON + timedelta(hours=2), prefix="b")
    stream += story(30, prefix="a")  # re-delivered and late
    stream += story(50, start=T0 + HORIZON + timedelta(hours=3), prefix="c")
    stream += [replace(stream[60], id="b-again")]  # a new id a few hours late: applied
    stream += story(20, start=T0 + HORIZON + timedelta(hours=2), prefix="b")  # re-delivered, within the horizon
    results = []
    for batch in (1, 7, 500):
        ports = Ports()
        owner = await started(ports)
        await feed(owner, stream, batch=batch)
        results.append((ids(ports.sink.alerts), dict(owner.dropped), sorted(owner.engine.events)))
    assert results[0] == results[1] == results[2]
    assert results[0][1] == {"duplicate": 20, "late": 30}


def _absurd_record(offset: int, view: PostView, timestamp_ms: int) -> Record:
    """A record of partition 0 carrying ``view`` with the given record timestamp."""
    return Record(topic="posts", partition=0, offset=offset, key=None, value=_wire(view).SerializeToString(),
                  headers=(), timestamp_ms=timestamp_ms)  # fmt: skip


def test_a_record_timestamp_past_year_9999_is_a_dead_letter_not_an_exception() -> None:
    view = story(1)[0]
    for ms in (253_402_300_800_000 * 10, 2**63 - 1, -(2**63)):
        item = to_item(_absurd_record(0, view, ms))
        assert item.view is None and item.dead is not None
        assert item.dead.reason == post_pb2.DEAD_LETTER_REASON_INVALID
        assert "timestamp" in item.dead.message


def test_a_post_time_out_of_range_is_a_dead_letter() -> None:
    post = _wire(story(1)[0])
    post.created_at.seconds = 253_402_300_800 * 10  # past 9999-12-31
    record = Record(topic="posts", partition=0, offset=0, key=None, value=post.SerializeToString(), headers=(),
                    timestamp_ms=int(T0.timestamp() * 1000))  # fmt: skip
    item = to_item(record)
    assert item.dead is not None and item.dead.reason == post_pb2.DEAD_LETTER_REASON_INVALID
    assert "created_at" in item.dead.message


async def test_consumer_dead_letters_a_record_with_an_absurd_timestamp_and_moves_on() -> None:
    ports = Ports()
    owner = await started(ports)
    posts = story(40)
    reader = FakeReader.of(posts[:20])
    # Partition 0 gets the poisoned record in the middle of the stream, then the rest of the story.
    reader.records[0].append(_absurd_record(len(reader.records[0]), posts[20], 253_402_300_800_000 * 10))
    for view in posts[21:]:
        reader.records[0].append(_absurd_record(len(reader.records[0]), view, int(view.created_at.timestamp() * 1000)))
    dead = FakeDeadLetters()
    consumer = PostConsumer(owner, reader, dead, ConsumerSettings(batch_size=5, poll_timeout_ms=5))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    total = {p: len(r) for p, r in reader.records.items()}
    await _until(lambda: owner.positions == total, task)
    stop.set()
    await task
    assert len(dead.sent) == 1 and "timestamp" in dead.sent[0].message
    assert consumer.posts == 39  # every other post graded
    assert owner.engine.events["ev-p0"].posts == 39
    assert not owner.stale


async def test_a_late_post_joins_its_live_event_and_opens_none() -> None:
    late_start = T0 + HORIZON + timedelta(days=1)
    stream = story(40, start=late_start, prefix="q")
    late_repost = replace(stream[5], id="q-late", created_at=T0, author_id="late-author")  # parent q0, 8 days early
    late_orphan = PostView("orphan", T0, author_id="x", author_followers=10, parent_id="never-seen", text="某局长")
    results = []
    for batch in (1, 3, 100):
        ports = Ports()
        owner = await started(ports)
        await feed(owner, [*stream, late_repost, late_orphan, late_repost], batch=batch)
        results.append((ids(ports.sink.alerts), dict(owner.dropped), owner.late_attached, sorted(owner.engine.events)))
        assert owner.engine.events["ev-q0"].posts == 41  # the late repost counted once, in its event
    assert results[0] == results[1] == results[2]
    assert results[0][1:] == ({"duplicate": 1, "late": 1}, 1, ["ev-q0"])
