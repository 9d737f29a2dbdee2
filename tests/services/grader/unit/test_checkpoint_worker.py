"""A checkpoint's compression runs in a worker thread: what it stores is the engine and the positions as they were
when it began (no batch moves the engine meanwhile), and a kill -9 under the default cadence recovers to exactly the
state, alerts and event documents of a run that was never killed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

import services.grader.checkpointing as checkpointing
from services.grader.core import GraderConfig
from services.grader.settings import CheckpointSettings
from services.grader.state import EngineOwner
from services.grader.state_codec import decode_state, encode_state
from tests.services.grader.unit.test_state import (
    DEFAULT_POLICY,
    DEFAULT_TEXT,
    FakeAlertLog,
    Ports,
    feed,
    ids,
    story,
)


async def test_a_batch_waits_while_the_checkpoint_is_compressed(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = Ports()
    owner = await ports_owner(ports, every_batches=2)
    posts = story(40)
    await feed(owner, posts[:10])  # one batch: no checkpoint yet
    compressing, release = threading.Event(), threading.Event()
    real = checkpointing.compressed

    def held(text: bytes, cpu_clock: Callable[[], float]) -> tuple[bytes, float]:
        compressing.set()
        release.wait(10)
        return real(text, cpu_clock)

    monkeypatch.setattr(checkpointing, "compressed", held)
    second = asyncio.create_task(feed(owner, posts[10:20]))  # the second batch: due, its checkpoint held
    assert await asyncio.to_thread(compressing.wait, 10)
    expected = decode_state(encode_state(owner.engine.snapshot()))  # as JSON gives it back (lists, not tuples)
    third = asyncio.create_task(feed(owner, posts[20:30]))
    await asyncio.sleep(0.05)
    assert owner.positions == {0: 20} and not third.done()  # the next batch waits for the checkpoint's lock
    release.set()
    await asyncio.gather(second, third)
    assert ports.store.checkpoint is not None
    assert ports.store.checkpoint.positions == {0: 20}
    assert decode_state(ports.store.checkpoint.state) == expected
    assert owner.positions == {0: 30}


async def ports_owner(ports: Ports, *, every_batches: int = 50, now: Callable[[], float] | None = None) -> EngineOwner:
    kwargs = {"monotonic": now} if now is not None else {}
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        cadence=CheckpointSettings(every_batches=every_batches),
        clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
        **kwargs,  # type: ignore[arg-type]
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    return owner


async def test_a_kill_under_the_default_cadence_recovers_to_the_uninterrupted_state() -> None:
    posts = story(200, every_s=3.0)
    wall = [0.0]

    def monotonic() -> float:
        return wall[0]

    reference = Ports()
    whole = await ports_owner(reference, now=monotonic)
    for i in range(0, len(posts), 10):
        wall[0] = i / 8  # a batch every 1.25 s
        await feed(whole, posts[i : i + 10])

    ports = Ports()
    wall[0] = 0.0
    first = await ports_owner(ports, now=monotonic)
    for i in range(0, 140, 10):
        wall[0] = i / 8
        await feed(first, posts[i : i + 10])
    assert first.checkpoints == 3  # every 5 s (at 5, 10 and 15 s): 14 batches never reach the 50 of the batch rule
    stored = ports.store.checkpoint
    assert stored is not None and stored.positions == {0: 130}  # the kill loses the batch since
    out_at_kill = len(ports.sink.alerts)
    # kill -9: no final checkpoint; the restart recovers and replays from the stored positions in the same batches
    second = await ports_owner(ports, now=monotonic)
    assert second.positions == stored.positions
    for i in range(stored.positions[0], len(posts), 10):
        wall[0] = i / 8
        await feed(second, posts[i : i + 10])

    assert second.engine.snapshot() == whole.engine.snapshot()
    assert ids(ports.sink.alerts) == ids(reference.sink.alerts)  # each alert once, none lost
    # the replay regenerated every alert published after the checkpoint, and published none of them twice
    assert second.suppressed == out_at_kill - stored.alert_offsets.get(0, 0)
    assert ports.index.docs == reference.index.docs  # the events as the index role ends up with them
