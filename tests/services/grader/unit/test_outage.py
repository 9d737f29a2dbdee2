"""An outage of a store (Kafka here) costs waiting, not reloading the state on every retry: after a failure
the loop probes the stores and recovers from the checkpoint once they answer (consumer.py, "Failures")."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.grader.consumer import PostConsumer
from services.grader.ports import Checkpoint
from services.grader.settings import ConsumerSettings
from tests.services.grader.unit.test_state import (
    FakeDeadLetters,
    FakeReader,
    FakeStore,
    Ports,
    _until,
    feed,
    started,
    story,
)


@dataclass
class CountingStore(FakeStore):
    loads: int = 0

    async def load(self) -> Checkpoint | None:
        self.loads += 1
        return await super().load()


async def test_an_outage_reloads_the_state_once_when_the_stores_answer_again() -> None:
    ports = Ports(store=CountingStore())
    owner = await started(ports, every_batches=2)
    store = ports.store
    assert isinstance(store, CountingStore) and store.loads == 1
    probes = 0

    async def stores_answer() -> None:
        nonlocal probes
        probes += 1
        if ports.sink.fail:
            raise ConnectionError("kafka: connection refused")

    consumer = PostConsumer(owner, FakeReader.of(story(60)), FakeDeadLetters(),
                            ConsumerSettings(batch_size=5, poll_timeout_ms=5, retry_backoff_s=0.001,
                                             retry_backoff_max_s=0.002),
                            stores_answer=stores_answer)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.batches >= 4, task)
    ports.sink.fail = True
    await _until(lambda: consumer.store_waits >= 30, task)  # thirty retries during the outage ...
    assert owner.stale and store.loads == 1  # ... and not one reload
    ports.sink.fail = False
    await _until(lambda: not owner.stale and sum(owner.positions.values()) == 60, task)
    stop.set()
    await task
    assert store.loads == 2 and consumer.recoveries == 1 and probes >= 31
    published = [a.id for a in ports.sink.alerts]
    reference = Ports()
    await feed(await started(reference), story(60))
    assert published == [a.id for a in reference.sink.alerts]  # nothing lost, nothing repeated


async def test_without_a_probe_every_retry_reloads_as_before() -> None:
    ports = Ports(store=CountingStore())
    owner = await started(ports, every_batches=2)
    consumer = PostConsumer(owner, FakeReader.of(story(60)), FakeDeadLetters(),
                            ConsumerSettings(batch_size=5, poll_timeout_ms=5, retry_backoff_s=0.001,
                                             retry_backoff_max_s=0.002))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.batches >= 4, task)
    ports.sink.fail = True
    await _until(lambda: consumer.recoveries >= 5, task)
    ports.sink.fail = False
    await _until(lambda: not owner.stale and sum(owner.positions.values()) == 60, task)
    stop.set()
    await task
    store = ports.store
    assert isinstance(store, CountingStore) and store.loads >= 6
