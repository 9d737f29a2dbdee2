"""Issue 13: a grader killed on a live tail recovers by replaying in the order it fed the engine, not in event time.

On a live tail the merge releases a partition's records when the others look caught up, so a repost can be fed
before its original (which sits in a partition not yet fetched): the repost then opens the event (``ev-<repost>``).
A replay of the full partitions would feed the original first and open ``ev-<original>``: a second "new event"
alert for the same story. The order log makes the replay follow the lost run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from qingfeng.kafka import Record
from qingfeng.storage import build_engine, run_migrations
from qingfeng.v1 import common_pb2

from services.grader.adapters.policy_yaml import DEFAULT_POLICY
from services.grader.adapters.sql import SqlStateStore
from services.grader.app import MIGRATIONS, VERSION_TABLE
from services.grader.consumer import EventTimeMerge, Item, PostConsumer
from services.grader.core import GraderConfig, PostView
from services.grader.ports import Checkpoint, Outputs
from services.grader.settings import CheckpointSettings, ConsumerSettings
from services.grader.state import EngineOwner, OrderLog
from tests.services.grader.unit.test_state import (
    DEFAULT_TEXT,
    T0,
    FakeAlertLog,
    FakeDeadLetters,
    FakeReader,
    Ports,
    _until,
    story,
)


@dataclass
class MemoryOrderLog:
    runs: list[tuple[int, int, int]] = field(default_factory=list)

    async def log_order(self, runs: Sequence[tuple[int, int, int]], at: datetime) -> None:
        self.runs.extend(runs)

    async def order_log(self) -> list[tuple[int, int, int]]:
        return list(self.runs)


async def owner_of(ports: Ports, log: OrderLog | None) -> EngineOwner:
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        cadence=CheckpointSettings(every_batches=1000, every_s=3600),
        order_log=log,
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    return owner


def where(i: int) -> tuple[int, int]:
    """FakeReader.of puts post i on partition i % 2 at offset i // 2."""
    return i % 2, i // 2


async def live_run(ports: Ports, log: OrderLog | None, posts: list[PostView]) -> None:
    """What a live tail did: the first repost (partition 1) was fed before its original (partition 0)."""
    owner = await owner_of(ports, log)
    fed = [1, 0, *range(2, len(posts))]
    for start in range(0, len(fed), 10):
        chunk = fed[start : start + 10]
        positions: dict[int, int] = {}
        for i in chunk:
            p, o = where(i)
            positions[p] = max(positions.get(p, 0), o + 1)
        order = [(*where(i), 1) for i in chunk]
        views = [posts[i] for i in chunk]
        await owner.run_batch(views, positions, max(v.created_at for v in views), order=order)
    # killed here: no checkpoint was ever taken


async def recover_and_consume(ports: Ports, log: OrderLog | None, posts: list[PostView]) -> EngineOwner:
    owner = await owner_of(ports, log)
    reader = FakeReader.of(posts)
    consumer = PostConsumer(owner, reader, FakeDeadLetters(), ConsumerSettings(batch_size=7, poll_timeout_ms=5))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    total = {p: len(r) for p, r in reader.records.items()}
    await _until(lambda: owner.positions == total, task)
    stop.set()
    await task
    return owner


def openings(ports: Ports) -> Counter[str]:
    """How often each story was announced as a new event (by the post that opened it)."""
    return Counter(a.id for a in ports.sink.alerts if a.from_level == common_pb2.WARNING_LEVEL_NONE)


async def test_recovery_follows_the_logged_order_and_repeats_no_alert() -> None:
    posts = story(60)
    ports, log = Ports(), MemoryOrderLog()
    await live_run(ports, log, posts)
    first = [a.id for a in ports.sink.alerts]
    assert first and first[0] == "ev-p1:1"  # the repost opened the event live

    owner = await recover_and_consume(ports, log, posts)
    assert [a.id for a in ports.sink.alerts] == first  # every replayed alert suppressed, none new
    assert owner.suppressed == len(first)
    assert sorted(owner.engine.events) == ["ev-p1"]


async def test_without_the_log_the_replay_announces_the_story_again() -> None:
    """The failure the log prevents (the grader before issue 13): event time order opens ``ev-p0``, a new event."""
    posts = story(60)
    ports = Ports()
    await live_run(ports, None, posts)
    await recover_and_consume(ports, None, posts)
    assert {"ev-p1:1", "ev-p0:1"} <= set(openings(ports))


def _item(partition: int, offset: int, key: float) -> Item:
    record = Record(topic="t", partition=partition, offset=offset, key=None, value=b"", headers=(), timestamp_ms=0)
    return Item(record, key)


def test_merge_follows_the_script_skipping_what_the_checkpoint_holds_and_repeated_runs() -> None:
    merge = EventTimeMerge()
    merge.reset({0: 2, 1: 0})
    # Logged: offsets 0-1 of partition 0 (before the checkpoint), then 1:0, 0:2-3, then a replay's repeat of 1:0.
    merge.follow([(0, 0, 2), (1, 0, 1), (0, 2, 2), (1, 0, 1), (1, 1, 1)], {0: 2, 1: 0})
    assert merge.scripted() == 4
    merge.add(0, [_item(0, 2, 5.0), _item(0, 3, 6.0), _item(0, 4, 1.0)])
    merge.add(1, [_item(1, 0, 9.0), _item(1, 1, 8.0), _item(1, 2, 0.5)])
    out = merge.release(100, lambda p, o: True)
    assert [(i.record.partition, i.record.offset) for i in out] == [(1, 0), (0, 2), (0, 3), (1, 1), (1, 2), (0, 4)]


def test_merge_waits_for_a_scripted_partition_not_fetched_yet() -> None:
    merge = EventTimeMerge()
    merge.reset({0: 0, 1: 0})
    merge.follow([(1, 0, 1), (0, 0, 1)], {0: 0, 1: 0})
    merge.add(0, [_item(0, 0, 1.0)])
    assert merge.release(100, lambda p, o: False) == []  # partition 1's record comes first: wait for it
    merge.add(1, [_item(1, 0, 9.0)])
    out = merge.release(100, lambda p, o: False)
    assert [(i.record.partition, i.record.offset) for i in out] == [(1, 0), (0, 0)]


async def test_sql_order_log_is_emptied_by_a_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'grader.db'}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    engine = build_engine(url)
    try:
        store = SqlStateStore(engine, posts_topic="posts", alerts_topic="alerts")
        other = SqlStateStore(engine, posts_topic="other", alerts_topic="alerts")
        await store.log_order([(1, 0, 3), (0, 5, 1)], T0)
        await store.log_order([(0, 6, 2)], T0)
        await other.log_order([(2, 0, 1)], T0)
        assert await store.order_log() == [(1, 0, 3), (0, 5, 1), (0, 6, 2)]
        checkpoint = Checkpoint(
            positions={0: 8, 1: 3}, alert_offsets={}, state=b"x", policy_version="v", saved_at=T0, pending=Outputs()
        )
        await store.save(checkpoint)
        assert await store.order_log() == []
        assert await other.order_log() == [(2, 0, 1)]  # another posts topic's log is its own
    finally:
        await engine.dispose()


async def test_the_consumer_logs_every_record_once_in_the_order_it_fed_them() -> None:
    posts = story(30)
    ports, log = Ports(), MemoryOrderLog()
    await recover_and_consume(ports, log, posts)
    fed = [(p, first + k) for p, first, count in log.runs for k in range(count)]
    assert sorted(fed) == sorted(where(i) for i in range(len(posts)))  # each record once
    times = {where(i): post.created_at for i, post in enumerate(posts)}
    assert [times[r] for r in fed] == sorted(times[r] for r in fed)  # a replay merges in event time
