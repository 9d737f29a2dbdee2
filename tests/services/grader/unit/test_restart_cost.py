"""What a restart costs is visible and small: the recovery logs each step's duration (bench_grader_restart.py reads
them), and the grade role's start does not import the Elasticsearch client (its import was a third of the start-up,
which a restart adds to the time without alerts)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.grader.consumer import PostConsumer
from services.grader.core import GraderConfig
from services.grader.settings import CheckpointSettings, ConsumerSettings
from services.grader.state import EngineOwner
from tests.services.grader.unit.test_state import (
    DEFAULT_POLICY,
    DEFAULT_TEXT,
    FakeAlertLog,
    FakeDeadLetters,
    FakeReader,
    Ports,
    _until,
    feed,
    started,
    story,
)

ROOT = Path(__file__).resolve().parents[4]


async def _owner(ports: Ports, *, every_batches: int = 1) -> EngineOwner:
    owner = EngineOwner(
        ports.store,
        ports.sink,
        FakeAlertLog(ports.sink),
        config=GraderConfig(),
        cadence=CheckpointSettings(every_batches=every_batches, every_s=3600),
        clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
    )
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    return owner


async def test_a_recovery_logs_the_duration_of_each_step(caplog: pytest.LogCaptureFixture) -> None:
    ports = Ports()
    first = await _owner(ports)
    await first.recover()
    await feed(first, story(30), batch=10)
    assert ports.store.checkpoint is not None

    second = await _owner(ports)  # the same stores: a restart
    with caplog.at_level(logging.INFO, logger="services.grader.state"):
        await second.recover()
    [record] = [r for r in caplog.records if r.getMessage().startswith("recovered: ")]
    for step in ("load_s", "decode_s", "restore_s", "alert_log_s", "order_log_s", "pending_s"):
        value = getattr(record, step)
        assert isinstance(value, float) and 0 <= value < 60, step
    assert record.state_bytes == len(ports.store.checkpoint.state) > 0
    assert record.events == len(second.engine.events) > 0


async def test_a_recovery_without_a_checkpoint_logs_no_decode_step(caplog: pytest.LogCaptureFixture) -> None:
    owner = await _owner(Ports())
    with caplog.at_level(logging.INFO, logger="services.grader.state"):
        await owner.recover()
    [record] = [r for r in caplog.records if r.getMessage().startswith("recovered: ")]
    assert not hasattr(record, "decode_s") and record.state_bytes == 0


def test_the_grade_role_starts_without_importing_elasticsearch() -> None:
    code = (
        "import sys, services.grader.__main__, services.grader.app\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('elasticsearch', 'elastic_transport'))\n"
        "print(loaded)\n"
        "raise SystemExit(1 if loaded else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"imported at start: {done.stdout.strip()} {done.stderr[-2000:]}"


async def test_checkpoint_soon_takes_the_checkpoint_with_the_next_batch() -> None:
    ports = Ports()
    owner = await _owner(ports, every_batches=1000)
    await owner.recover()
    posts = story(30)
    await feed(owner, posts[:20], batch=10)
    assert owner.checkpoints == 0  # far from due
    owner.checkpoint_soon()
    await feed(owner, posts[20:], batch=10)
    assert owner.checkpoints == 1
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 30}


async def test_a_backlog_worked_off_is_checkpointed_with_the_next_batch() -> None:
    reader = FakeReader.of(story(120))
    ports = Ports()
    owner = await started(ports)  # every 1,000 batches: never due by count here
    consumer = PostConsumer(owner, reader, FakeDeadLetters(), ConsumerSettings(batch_size=6, poll_timeout_ms=5,
                                                                               linger_ms=0))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.posts == 120, task)
    # Less than a batch behind the end after the backlog: the next batch took a checkpoint (none is due by count
    # or time here), before the graceful stop takes its own.
    assert owner.checkpoints == 1, owner.checkpoints
    assert ports.store.checkpoint is not None and sum(ports.store.checkpoint.positions.values()) >= 114
    stop.set()
    await task
    assert owner.checkpoints == 2


async def test_the_catch_up_log_gives_the_replay_posts_time_and_cpu(caplog: pytest.LogCaptureFixture) -> None:
    # The replay's CPU depends far less than its time on what else runs: bench_grader_restart compares restarts by it.
    reader = FakeReader.of(story(120))
    owner = await started(Ports())
    consumer = PostConsumer(owner, reader, FakeDeadLetters(), ConsumerSettings(batch_size=6, poll_timeout_ms=5,
                                                                               linger_ms=0))  # fmt: skip
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="services.grader.consumer"):
        task = asyncio.create_task(consumer.run(stop))
        await _until(lambda: consumer.posts == 120, task)
        stop.set()
        await task
    [record] = [r for r in caplog.records if r.getMessage().startswith("caught up after seeking: ")]
    assert record.posts >= 114  # the backlog, less than the last batch
    assert 0 < record.cpu_s < 60 and 0 < record.seconds < 60
    assert " CPU (" in record.getMessage() and " µs a post)" in record.getMessage()
