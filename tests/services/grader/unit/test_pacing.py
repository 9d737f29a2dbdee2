"""Event snapshot pacing (pacing.py) through the engine's owner: fewer snapshots, the same alerts, the same final
documents, nothing held across a checkpoint, and a crash with snapshots held loses none of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.grader.core import GraderConfig, PostView
from services.grader.settings import CheckpointSettings
from services.grader.state import EngineOwner
from tests.services.grader.unit.test_state import (
    DEFAULT_POLICY,
    DEFAULT_TEXT,
    T0,
    FakeAlertLog,
    Ports,
    feed,
    ids,
    story,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _owner(ports: Ports, clock: Clock, interval_s: float, every_batches: int = 1000) -> EngineOwner:
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        cadence=CheckpointSettings(every_batches=every_batches, every_s=3600),
        clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
        monotonic=clock,
        snapshot_interval_s=interval_s,
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    return owner


def _stories() -> list[PostView]:
    """Three concurrent stories, interleaved in event time."""
    posts = [*story(90, prefix="a"), *story(90, start=T0 + timedelta(seconds=1), prefix="b")]
    posts += story(90, start=T0 + timedelta(seconds=2), prefix="c")
    return sorted(posts, key=lambda p: p.created_at)


async def _reference() -> Ports:
    ports = Ports()
    owner = await _owner(ports, Clock(), interval_s=0)
    await feed(owner, _stories(), batch=5)
    await owner.close()
    return ports


def _levels(ports: Ports) -> list[tuple[str, int, int]]:
    return [(a.id, a.from_level, a.to_level) for a in ports.sink.alerts]


async def test_paced_snapshots_are_fewer_with_the_same_alerts_and_final_documents() -> None:
    reference = await _reference()
    ports, clock = Ports(), Clock()
    owner = await _owner(ports, clock, interval_s=2.0)
    posts = _stories()
    for i in range(0, len(posts), 5):  # a batch every 0.2 s of wall time: ten batches per interval
        await feed(owner, posts[i : i + 5], batch=5)
        clock.now += 0.2
    assert _levels(ports) == _levels(reference)  # alerts are never held
    assert len(ports.sink.events) < len(reference.sink.events) / 3
    for alert in ports.sink.alerts:  # each alert went out with a snapshot of its event
        assert any(e.id == alert.event_id for e in ports.sink.events)
    await owner.close()  # the checkpoint publishes what is held
    assert ports.index.docs == reference.index.docs
    assert ports.store.checkpoint is not None


async def test_held_snapshots_go_out_when_due_on_a_quiet_stream() -> None:
    ports, clock = Ports(), Clock()
    owner = await _owner(ports, clock, interval_s=2.0)
    posts = story(40)
    await feed(owner, posts[:10], batch=5)  # blue, then yellow: each alert with its snapshot
    published, alerts = len(ports.sink.events), len(ports.sink.alerts)
    await feed(owner, posts[10:20], batch=5)  # within the interval, no level change: both held
    assert len(ports.sink.alerts) == alerts and len(ports.sink.events) == published
    assert await owner.flush_held() == 0 and len(ports.sink.events) == published  # not due yet
    clock.now = 2.5
    await owner.flush_held()
    assert len(ports.sink.events) == published + 1
    assert ports.sink.events[-1].post_count == 20  # the latest snapshot held


async def test_a_crash_with_snapshots_held_loses_none() -> None:
    reference = await _reference()
    posts = _stories()
    ports, clock = Ports(), Clock()
    first = await _owner(ports, clock, interval_s=2.0, every_batches=20)
    for i in range(0, 190, 5):  # 38 batches: a checkpoint after the 20th, then 18 more
        await feed(first, posts[i : i + 5], batch=5)
        clock.now += 0.2
    assert first.checkpoints == 1 and ports.store.checkpoint is not None
    assert ports.store.checkpoint.positions == {0: 100}
    assert first._pacer.held > 0
    # kill -9 with snapshots held: never published. The restart replays from the checkpoint.
    second = await _owner(ports, Clock(), interval_s=2.0, every_batches=20)
    await feed(second, posts[second.positions.get(0, 0) :], batch=5)
    await second.close()
    assert ids(ports.sink.alerts) == ids(reference.sink.alerts)  # none lost, none repeated
    assert ports.index.docs == reference.index.docs
