"""Offsets are committed only after the handler returned; a failed batch comes back after a restart."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from google.protobuf import struct_pb2
from qingfeng.kafka import Producer, Record, run_batches
from qingfeng.settings import KafkaSettings

pytestmark = pytest.mark.integration


class Boom(RuntimeError):
    pass


async def produce_values(settings: KafkaSettings, topic: str, values: list[str]) -> None:
    async with Producer(settings) as producer:
        for value in values:
            message = struct_pb2.Value(string_value=value)
            await producer.send(topic, value, message, event_type="test.value", event_id=value)


async def test_failed_batch_is_redelivered_after_restart(kafka_settings: KafkaSettings, new_topic, consume) -> None:
    topic = await new_topic()
    group = f"g-{uuid.uuid4().hex[:8]}"
    await produce_values(kafka_settings, topic, ["a", "b", "c"])

    attempts: list[list[int]] = []

    async def failing(records: list[Record]) -> None:
        attempts.append([r.offset for r in records])
        raise Boom("effect failed")

    with pytest.raises(Boom):
        await asyncio.wait_for(run_batches(kafka_settings, [topic], group, failing, asyncio.Event()), 30)
    assert attempts and attempts[0][0] == 0

    # Restarted runner, same group: nothing was committed, so the batch is delivered again from offset 0.
    again = await consume(topic, group, 3)
    assert [r.offset for r in again] == [0, 1, 2]
    assert [r.event_id for r in again] == ["a", "b", "c"]

    # That run committed after its handler returned: a third run sees only what is new.
    await produce_values(kafka_settings, topic, ["d"])
    latest = await consume(topic, group, 1)
    assert [r.event_id for r in latest] == ["d"]


async def test_stop_finishes_and_commits_the_batch_in_flight(kafka_settings: KafkaSettings, new_topic, consume) -> None:
    topic = await new_topic()
    group = f"g-{uuid.uuid4().hex[:8]}"
    await produce_values(kafka_settings, topic, ["x", "y"])
    stop = asyncio.Event()
    seen: list[str | None] = []

    async def handler(records: list[Record]) -> None:
        stop.set()  # asked to stop while the batch is in flight
        await asyncio.sleep(0.2)
        seen.extend(r.event_id for r in records)

    await asyncio.wait_for(run_batches(kafka_settings, [topic], group, handler, stop), 30)
    assert seen == ["x", "y"]
    await produce_values(kafka_settings, topic, ["z"])
    assert [r.event_id for r in await consume(topic, group, 1)] == ["z"]


async def test_rebalance_waits_for_the_batch_in_flight(kafka_settings: KafkaSettings, new_topic) -> None:
    """A second member joins while the first is mid-batch: the batch commits before its partitions move, so no
    record is handled twice."""
    topic = await new_topic(partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    values = [f"v{i:02d}" for i in range(20)]
    await produce_values(kafka_settings, topic, values)

    stop = asyncio.Event()
    handled: list[str | None] = []
    first_batch_started = asyncio.Event()

    async def slow_first(records: list[Record]) -> None:
        if not first_batch_started.is_set():
            first_batch_started.set()
            await asyncio.sleep(3)  # the other member joins meanwhile
        handled.extend(r.event_id for r in records)
        if len(set(handled)) >= len(values):
            stop.set()

    async def plain(records: list[Record]) -> None:
        handled.extend(r.event_id for r in records)
        if len(set(handled)) >= len(values):
            stop.set()

    first = asyncio.create_task(run_batches(kafka_settings, [topic], group, slow_first, stop, max_records=5))
    await asyncio.wait_for(first_batch_started.wait(), 30)
    second = asyncio.create_task(run_batches(kafka_settings, [topic], group, plain, stop, max_records=5))
    await asyncio.wait_for(asyncio.gather(first, second), 60)
    assert sorted(v for v in handled if v) == values  # each exactly once
