"""Checkpoint cadence: a checkpoint whose encoding was expensive postpones the next one (bounded CPU share),
a cheap one never does, and a crash after postponed checkpoints recovers without losing or repeating an alert."""

from __future__ import annotations

from datetime import UTC, datetime

from services.grader.core import GraderConfig
from services.grader.settings import CheckpointSettings
from services.grader.state import EngineOwner
from tests.services.grader.unit.test_state import (
    DEFAULT_POLICY,
    DEFAULT_TEXT,
    FakeAlertLog,
    Ports,
    feed,
    ids,
    story,
)


class Clocks:
    """A wall clock the test moves, a CPU clock each checkpoint's encoding advances by ``cost`` seconds, and the
    worker thread's CPU clock its compression advances by ``compress_cost``."""

    def __init__(self, cost: float, compress_cost: float = 0.0) -> None:
        self.now = 0.0
        self.cpu = 0.0
        self.cost = cost
        self.compress_cost = compress_cost
        self.worker_cpu = 0.0
        self._reads = 0
        self._worker_reads = 0

    def monotonic(self) -> float:
        return self.now

    def cpu_clock(self) -> float:
        self._reads += 1
        if self._reads % 2 == 0:  # the read after encoding
            self.cpu += self.cost
        return self.cpu

    def compress_cpu_clock(self) -> float:
        self._worker_reads += 1
        if self._worker_reads % 2 == 0:
            self.worker_cpu += self.compress_cost
        return self.worker_cpu


async def _owner(ports: Ports, clocks: Clocks, *, share: float = 0.05) -> EngineOwner:
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        # On the loop: the cadence rule with the CPU clocks the test moves (a child's CPU: test_checkpoint_fork.py).
        cadence=CheckpointSettings(every_batches=1, every_s=3600, max_cpu_share=share, fork=False),
        clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
        monotonic=clocks.monotonic,
        cpu_clock=clocks.cpu_clock,
        compress_cpu_clock=clocks.compress_cpu_clock,
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    return owner


async def test_a_cheap_checkpoint_never_postpones_the_next() -> None:
    ports, clocks = Ports(), Clocks(cost=0.001)
    owner = await _owner(ports, clocks)
    await feed(owner, story(50), batch=10)
    assert owner.checkpoints == 5  # every_batches=1: one per batch, although no time passed


async def test_an_expensive_checkpoint_postpones_the_next_by_its_cost_over_the_share() -> None:
    ports, clocks = Ports(), Clocks(cost=1.0)  # 1 s of CPU at a 5 % share: the next is due 20 s later
    owner = await _owner(ports, clocks)
    posts = story(60)
    await feed(owner, posts[:10])
    assert owner.checkpoints == 1
    clocks.now = 19.0
    await feed(owner, posts[10:40], batch=10)
    assert owner.checkpoints == 1  # three batches within 20 s of it: postponed
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 10}
    clocks.now = 20.0
    await feed(owner, posts[40:50])
    assert owner.checkpoints == 2 and ports.store.checkpoint.positions == {0: 50}


async def test_a_quiet_stream_takes_the_postponed_checkpoint_once_it_is_due() -> None:
    # The last batches before the stream went quiet are checkpointed without waiting for another post (a standby
    # follows from a checkpoint; a replay that just caught up is not worked off again), once and only when due.
    ports, clocks = Ports(), Clocks(cost=1.0)  # the next is due 20 s after the first
    owner = await _owner(ports, clocks)
    posts = story(20)
    await feed(owner, posts[:10])
    assert owner.checkpoints == 1
    assert not await owner.checkpoint_if_due()  # nothing fed since
    clocks.now = 5.0
    await feed(owner, posts[10:20])
    assert owner.checkpoints == 1
    assert not await owner.checkpoint_if_due()  # postponed by the CPU share
    clocks.now = 20.0
    assert await owner.checkpoint_if_due()
    assert owner.checkpoints == 2 and ports.store.checkpoint is not None
    assert ports.store.checkpoint.positions == {0: 20}
    clocks.now = 60.0
    assert not await owner.checkpoint_if_due()  # the state has not moved: no second copy of it
    assert owner.checkpoints == 2


async def test_the_compression_in_the_worker_thread_counts_towards_the_share() -> None:
    # 0.25 s on the loop + 0.75 s compressing in the worker = 1 s: the next is due 20 s later, not 5 s.
    ports, clocks = Ports(), Clocks(cost=0.25, compress_cost=0.75)
    owner = await _owner(ports, clocks)
    posts = story(40)
    await feed(owner, posts[:10])
    assert owner.checkpoints == 1
    clocks.now = 19.0
    await feed(owner, posts[10:20])
    assert owner.checkpoints == 1
    clocks.now = 20.0
    await feed(owner, posts[20:30])
    assert owner.checkpoints == 2 and ports.store.checkpoint is not None
    assert ports.store.checkpoint.positions == {0: 30}


async def test_a_live_tail_is_checkpointed_every_five_seconds_by_default() -> None:
    # Small live-tail batches never reach 50 before the time rule: a kill -9 replays at most ~5 s of posts more.
    ports, clocks = Ports(), Clocks(cost=0.001)
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        cadence=CheckpointSettings(),
        clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
        monotonic=clocks.monotonic,
        cpu_clock=clocks.cpu_clock,
        compress_cpu_clock=clocks.compress_cpu_clock,
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    posts = story(40)
    for i in range(0, 40, 5):  # one batch every 1.25 s (a linger of 250 ms would make them smaller still)
        clocks.now = i / 4
        await feed(owner, posts[i : i + 5])
    # at 5.0 s (posts 20-24) and never before: then positions 25; nothing since 5 s has passed again
    assert owner.checkpoints == 1
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 25}


async def test_a_crash_after_postponed_checkpoints_loses_and_repeats_no_alert() -> None:
    posts = story(120)
    reference = Ports()
    whole = await _owner(reference, Clocks(cost=0.0))
    await feed(whole, posts)

    ports, clocks = Ports(), Clocks(cost=2.0)  # every checkpoint after the first is postponed (40 s)
    first = await _owner(ports, clocks)
    await feed(first, posts[:10])
    before = len(ports.sink.alerts)  # published before the only checkpoint
    await feed(first, posts[10:70])
    assert first.checkpoints == 1 and ports.store.checkpoint is not None
    assert ports.store.checkpoint.positions == {0: 10}  # the engine is 60 posts past what is stored
    after = len(ports.sink.alerts) - before
    assert after > 0  # alerts went out that the checkpoint does not reflect
    # kill -9: no final checkpoint; the restart recovers from the first and replays the posts after it
    second = await _owner(ports, Clocks(cost=2.0))
    assert second.positions == {0: 10}
    await feed(second, posts[10:])
    assert ids(ports.sink.alerts) == ids(reference.sink.alerts)  # each alert once, in order, none lost
    assert second.suppressed == after  # regenerated by the replay with the same ids, not published again
