"""Periodic checkpoints encoded by a forked child (``checkpoint_fork.py``): the batches go on while the child encodes
and the store writes, what is stored is the engine and the positions as they were at the fork, a later batch's
order-log entries survive that checkpoint, and children that fail in a row send checkpoints back to the loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qingfeng.storage import build_engine, run_migrations

import services.grader.checkpointing as checkpointing
from services.grader.adapters.sql import SqlStateStore
from services.grader.app import MIGRATIONS, VERSION_TABLE
from services.grader.checkpoint_fork import ChildEncoding, EncodingFailed, start_encoding
from services.grader.core import GraderConfig
from services.grader.ports import Checkpoint, Outputs
from services.grader.settings import CheckpointSettings
from services.grader.state import EngineOwner
from services.grader.state_codec import decode_state, encode_state
from tests.services.grader.unit.test_state import (
    DEFAULT_POLICY,
    DEFAULT_TEXT,
    T0,
    FakeAlertLog,
    FakeStore,
    Ports,
    feed,
    ids,
    story,
)


@dataclass
class HeldStore(FakeStore):
    """Saves only once ``release`` is set (the database slow or busy)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def save(self, checkpoint: Checkpoint | None, **kwargs: object) -> None:
        await self.release.wait()
        await super().save(checkpoint, **kwargs)  # type: ignore[arg-type]


async def forking_owner(ports: Ports, *, every_batches: int = 2) -> EngineOwner:
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        # Due by batches alone: the clock moves 10 s a reading (every_s out of reach) and any CPU share is allowed. A
        # child of a large process (the whole suite in one pytest run) spends more than the cheap threshold just
        # leaving, and the CPU-share rule then postponed checkpoints in real time (test_checkpoint_cadence covers it).
        cadence=CheckpointSettings(
            every_batches=every_batches, every_s=1e9, max_cpu_share=1.0, fork=True, fork_min_cpu_s=0.0, fork_nice=0
        ),
        clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
        monotonic=itertools.count(step=10.0).__next__,
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    return owner


async def test_the_child_stores_the_engine_as_it_was_at_the_fork_while_batches_go_on() -> None:
    ports = Ports(store=HeldStore())
    ports.store.release.set()  # the policy's activation is stored at start
    owner = await forking_owner(ports)
    ports.store.release.clear()
    posts = story(60)
    await feed(owner, posts[:20])  # the second batch is due: the child forks, the store holds the save
    at_fork = decode_state(encode_state(owner.engine.snapshot()))
    assert ports.store.checkpoint is None
    await feed(owner, posts[20:40])  # two more batches go on meanwhile (no second checkpoint while one is out)
    assert owner.positions == {0: 40} and owner.checkpoints == 0
    ports.store.release.set()
    await owner.checkpointer.settled()
    stored = ports.store.checkpoint
    assert stored is not None and stored.positions == {0: 20}
    assert decode_state(stored.state) == at_fork  # not the engine of 40 posts
    assert owner.checkpoints == 1


async def test_a_kill_after_checkpoints_by_the_child_recovers_to_the_uninterrupted_state() -> None:
    posts = story(200, every_s=3.0)
    reference = Ports()
    whole = await forking_owner(reference, every_batches=4)
    await feed(whole, posts)

    ports = Ports()
    first = await forking_owner(ports, every_batches=4)
    for i in range(0, 130, 10):
        await feed(first, posts[i : i + 10])
        # Each child's checkpoint stored before the next batch, so the kill point is known.
        await first.checkpointer.settled()
    stored = ports.store.checkpoint
    assert first.checkpoints == 3 and stored is not None and stored.positions == {0: 120}
    second = await forking_owner(ports, every_batches=4)  # kill -9 at 130: recovered from the child's checkpoint
    assert second.positions == {0: 120}
    await feed(second, posts[120:])
    assert second.engine.snapshot() == whole.engine.snapshot()
    assert ids(ports.sink.alerts) == ids(reference.sink.alerts)


def _failing_children(monkeypatch: pytest.MonkeyPatch, failures: int | None) -> list[int]:
    """The next ``failures`` children (all when None) die before they write; returns the list of those started."""
    started: list[int] = []

    def maybe_broken(encode: Callable[[], bytes], *, nice: int = 0) -> ChildEncoding:
        started.append(1)
        if failures is not None and len(started) > failures:
            return start_encoding(encode, nice=nice)

        def fail() -> bytes:
            raise MemoryError("the child ran out of memory")

        return start_encoding(fail, nice=nice)

    monkeypatch.setattr(checkpointing, "start_encoding", maybe_broken)
    return started


async def test_children_failing_in_a_row_send_checkpoints_back_to_the_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = _failing_children(monkeypatch, None)
    ports = Ports()
    owner = await forking_owner(ports)
    posts = story(60)
    await feed(owner, posts[:20])  # two batches: the first child
    await owner.checkpointer.settled()
    for at in (20, 30):  # each failure makes the next batch's checkpoint due: a child each
        await feed(owner, posts[at : at + 10])
        await owner.checkpointer.settled()
    assert ports.store.checkpoint is None and len(started) == 3
    assert "exited with 1 (3 in a row): checkpoints go back to the loop" in caplog.text
    await feed(owner, posts[40:50])  # due at once: on the loop now, no fourth child
    assert len(started) == 3
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 50}


async def test_one_failing_child_leaves_checkpoints_forked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = _failing_children(monkeypatch, 1)
    ports = Ports()
    owner = await forking_owner(ports)
    posts = story(40)
    await feed(owner, posts[:20])
    await owner.checkpointer.settled()
    assert ports.store.checkpoint is None and "the next checkpoint forks again (1 of 3" in caplog.text
    await feed(owner, posts[20:30])  # one batch: due again at once, since the failed one covered nothing
    await owner.checkpointer.settled()
    assert len(started) == 2, "the retry was encoded by a child"
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 30}


def test_a_child_killed_early_reports_a_failure() -> None:
    child = start_encoding(lambda: (__import__("time").sleep(30), b"never")[1])
    child.kill()
    with pytest.raises(EncodingFailed, match="exited with -9"):
        child.collect()


async def test_a_checkpoint_with_an_order_mark_leaves_the_later_entries(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'grader.db'}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    engine = build_engine(url)
    try:
        store = SqlStateStore(engine, posts_topic="posts", alerts_topic="alerts")
        assert await store.order_mark() == 0
        await store.log_order([(0, 0, 3)], T0)
        await store.log_order([(1, 0, 2)], T0)
        mark = await store.order_mark()
        await store.log_order([(0, 3, 4)], T0)  # a batch fed after the fork
        checkpoint = Checkpoint(
            positions={0: 3, 1: 2}, alert_offsets={}, state=b"x", policy_version="v", saved_at=T0, pending=Outputs()
        )
        await store.save(Checkpoint(**{**checkpoint.__dict__, "order_through": mark}))
        assert await store.order_log() == [(0, 3, 4)]
        await store.save(checkpoint)  # no mark: the state reflects every entry
        assert await store.order_log() == []
    finally:
        await engine.dispose()
