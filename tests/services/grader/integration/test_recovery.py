"""Restarts neither repeat nor lose alerts, nor level history: a graceful stop and a crash in the middle of a stream,
then the rest.

The same stream is graded once without interruption (the reference) and once in three runs on fresh topics and a
fresh database: run A grades the first part and stops gracefully (final checkpoint); run B grades part of the
second part and is cancelled (a crash: no final checkpoint, alerts already published since A's checkpoint); run C
recovers and grades the rest. The alerts topic must hold exactly the reference's alerts (same ids, same level
changes, none twice) and the events must end at the same levels. Posts topics have three partitions, so the
event-time merge of partitions is what makes the replay regenerate the same alerts.
"""

from __future__ import annotations

import asyncio

import pytest

from services.grader.settings import CheckpointSettings, GraderSettings
from tests.services.grader.integration.conftest import AlertKey, MakeSettings, Running, alert_keys, produce_stream
from tests.services.grader.integration.helpers import read_alerts, synthetic_stream

pytestmark = pytest.mark.integration


async def _reference(settings: GraderSettings, stream: list) -> tuple[list[AlertKey], dict[str, str]]:  # type: ignore[type-arg]
    await produce_stream(settings, stream)
    running = await Running.start(settings)
    await running.wait_posts(len(stream))
    levels = {s.event_id: s.level for s in running.app.owner.engine.snapshots()}
    await running.graceful()
    return alert_keys(await read_alerts(settings.kafka, settings.topics.alerts)), levels


@pytest.mark.parametrize("every_batches", [10_000, 3], ids=["checkpoint-at-stop-only", "checkpoint-every-3-batches"])
async def test_graceful_stop_and_crash_neither_repeat_nor_lose_alerts(
    make_settings: MakeSettings, every_batches: int
) -> None:
    stream = synthetic_stream()
    expected, expected_levels = await _reference(make_settings(), stream)
    assert len(expected) >= 6

    settings = make_settings(checkpoint=CheckpointSettings(every_batches=every_batches, every_s=3600))
    part1, part2, part3 = stream[:180], stream[180:380], stream[380:]

    await produce_stream(settings, part1)
    a = await Running.start(settings)
    await a.wait_posts(len(part1))
    await a.graceful()
    after_a = len(await read_alerts(settings.kafka, settings.topics.alerts))

    await produce_stream(settings, part2)
    b = await Running.start(settings)
    await b.wait_posts(150)
    await b.crash()
    after_b = len(await read_alerts(settings.kafka, settings.topics.alerts))
    assert after_b > after_a, "the crash must come after some alerts were published, to test their suppression"

    await produce_stream(settings, part3)
    c = await Running.start(settings)
    await _wait_all(c, len(stream))
    levels = {s.event_id: s.level for s in c.app.owner.engine.snapshots()}
    suppressed = c.app.owner.suppressed
    # The level history in the database, written by runs A, B (up to its crash) and C (replaying B's lost part).
    history = c.app.owner.history
    assert history is not None
    kept = [change for event_id in sorted(levels) for change in await history.changes(event_id)]
    await c.graceful()

    alerts = await read_alerts(settings.kafka, settings.topics.alerts, expect=len(expected))
    ids = [a.id for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was published twice"
    assert alert_keys(alerts) == expected
    assert levels == expected_levels
    assert alert_keys(kept) == expected, "the level history holds every change once, across the stop and the crash"
    assert all(change.reasons for change in kept)
    if every_batches > 100:
        assert suppressed > 0, "run C must have regenerated (and suppressed) the alerts B published"


async def _wait_all(running: Running, total: int) -> None:
    """Until the engine reflects every record of the posts topic (the offsets sum to the record count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while sum(running.app.owner.positions.values()) < total:
        assert loop.time() < deadline, f"positions {running.app.owner.positions}, expected {total} records"
        assert not running.task.done(), running.task
        await asyncio.sleep(0.01)
