"""Live-tail batching (``linger_ms``) and the group commit interval: behind the stream nothing waits, at its end a
batch waits for more posts, and the group still gets the final offsets once the stream is quiet."""

from __future__ import annotations

import asyncio
import time

from services.grader.consumer import PostConsumer
from services.grader.settings import ConsumerSettings
from tests.services.grader.unit.test_state import FakeDeadLetters, FakeReader, Ports, _until, started, story


async def _consume(reader: FakeReader, settings: ConsumerSettings, total: int) -> tuple[PostConsumer, float]:
    owner = await started(Ports())
    consumer = PostConsumer(owner, reader, FakeDeadLetters(), settings)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    began = time.monotonic()
    await _until(lambda: consumer.posts == total, task)
    took = time.monotonic() - began
    await _until(lambda: bool(reader.commits) and sum(reader.commits[-1].values()) == total, task)
    stop.set()
    await task
    return consumer, took


async def test_a_backlog_is_read_without_lingering() -> None:
    # 120 posts, three records a fetch per partition: ~40 batches; lingering 0.5 s on each would take ~20 s.
    settings = ConsumerSettings(batch_size=6, poll_timeout_ms=5, linger_ms=500, commit_interval_s=60)
    consumer, took = await _consume(FakeReader.of(story(120)), settings, 120)
    assert consumer.batches >= 20 and took < 5.0, (consumer.batches, took)


async def _trickle(linger_ms: int) -> int:
    """Batches taken for 40 posts arriving two every 30 ms after a first 40, with this linger."""
    reader = FakeReader.of(story(40))
    owner = await started(Ports())
    consumer = PostConsumer(owner, reader, FakeDeadLetters(),
                            ConsumerSettings(batch_size=100, poll_timeout_ms=5, linger_ms=linger_ms))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.posts == 40, task)
    batches = consumer.batches
    more = FakeReader.of(story(80))
    for i in range(40, 80):
        reader.records[i % 2].append(more.records[i % 2][i // 2])
        if i % 2:
            await asyncio.sleep(0.03)
    await _until(lambda: consumer.posts == 80, task)
    stop.set()
    await task
    return consumer.batches - batches


async def test_at_the_end_of_the_stream_a_batch_waits_for_more_posts() -> None:
    # Without lingering nearly every arrival is a batch; with 0.3 s, the 0.6 s of arrivals take a few (the fake
    # reader hands out three records a fetch, so one lingered gathering still takes several fetches).
    eager, lingered = await _trickle(0), await _trickle(300)
    assert lingered * 2 <= eager, (lingered, eager)


async def test_offsets_reach_the_group_at_most_every_interval_and_when_the_stream_is_quiet() -> None:
    settings = ConsumerSettings(batch_size=4, poll_timeout_ms=5, linger_ms=0, commit_interval_s=60)
    reader = FakeReader.of(story(60))
    consumer, _ = await _consume(reader, settings, 60)
    assert consumer.batches >= 10
    assert len(reader.commits) <= 3  # the first batch, the quiet stream, the stop; not one per batch
    assert reader.commits[-1] == {0: 30, 1: 30}
