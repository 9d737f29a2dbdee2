"""``run_batches(batches_in_flight=2)`` on the local broker: handlers overlap, every record is handled once in
per-key order, everything handled is committed, and a rebalance waits for every batch in flight."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from google.protobuf import struct_pb2
from qingfeng.kafka import OutgoingRecord, Producer, Record, run_batches
from qingfeng.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def produce_keyed(settings: KafkaSettings, topic: str, pairs: list[tuple[str, str]]) -> None:
    """(key, value) records, in this order, all in one call (per key, Kafka keeps them in this order)."""
    async with Producer(settings) as producer:
        await producer.send_many(
            [
                OutgoingRecord(topic, key, struct_pb2.Value(string_value=value), "test.value", value)
                for key, value in pairs
            ]
        )


def value_of(record: Record) -> str:
    return struct_pb2.Value.FromString(record.value or b"").string_value


async def test_overlapping_batches_keep_per_key_order_and_commit_everything(
    kafka_settings: KafkaSettings, new_topic, consume
) -> None:
    topic = await new_topic()
    group = f"g-{uuid.uuid4().hex[:8]}"
    # Batches of 10: the first two have keys of their own (they may overlap), the last two share four keys, five
    # versions each (the fourth must wait for the third).
    pairs = [(f"u{i}", f"u{i}-v0") for i in range(20)] + [(f"k{i % 4}", f"k{i % 4}-v{i // 4}") for i in range(20)]
    await produce_keyed(kafka_settings, topic, pairs)

    stop = asyncio.Event()
    handled: list[str] = []
    batches = running = most_running = 0

    async def handler(records: list[Record]) -> None:
        nonlocal batches, running, most_running
        batches += 1
        running += 1
        most_running = max(most_running, running)
        try:
            # A store's round trip, longer for every other batch: were two batches of one key to overlap, the later
            # one would finish first.
            await asyncio.sleep(0.3 if batches % 2 else 0.01)
            handled.extend(value_of(r) for r in records)
        finally:
            running -= 1
        if len(handled) >= len(pairs):
            stop.set()

    await asyncio.wait_for(
        run_batches(kafka_settings, [topic], group, handler, stop, max_records=10, batches_in_flight=2), 60
    )
    assert sorted(handled) == sorted(value for _, value in pairs)  # each exactly once
    assert most_running == 2  # the window was used …
    for key in {key for key, _ in pairs}:  # … and no key's versions were handled out of order
        versions = [v for v in handled if v.startswith(f"{key}-")]
        assert versions == sorted(versions, key=lambda v: int(v.rsplit("-v", 1)[1]))

    # Everything handled was committed: the same group sees only what is new.
    await produce_keyed(kafka_settings, topic, [("k0", "new")])
    assert [value_of(r) for r in await consume(topic, group, 1)] == ["new"]


async def test_a_rebalance_waits_for_every_batch_in_flight(kafka_settings: KafkaSettings, new_topic) -> None:
    topic = await new_topic(partitions=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    pairs = [(f"k{i}", f"v{i:02d}") for i in range(40)]
    await produce_keyed(kafka_settings, topic, pairs)

    stop = asyncio.Event()
    handled: list[str] = []
    slow_started = asyncio.Event()

    async def slow_at_first(records: list[Record]) -> None:
        if not slow_started.is_set():
            slow_started.set()
            await asyncio.sleep(3)  # the other member joins meanwhile; this member's next batch runs beside
        handled.extend(value_of(r) for r in records)
        if len(set(handled)) >= len(pairs):
            stop.set()

    async def plain(records: list[Record]) -> None:
        handled.extend(value_of(r) for r in records)
        if len(set(handled)) >= len(pairs):
            stop.set()

    first = asyncio.create_task(
        run_batches(kafka_settings, [topic], group, slow_at_first, stop, max_records=5, batches_in_flight=2)
    )
    await asyncio.wait_for(slow_started.wait(), 30)
    second = asyncio.create_task(
        run_batches(kafka_settings, [topic], group, plain, stop, max_records=5, batches_in_flight=2)
    )
    await asyncio.wait_for(asyncio.gather(first, second), 60)
    assert sorted(handled) == [value for _, value in pairs]  # each exactly once: nothing re-read after the move


async def test_a_failure_in_the_window_commits_nothing_after_it(
    kafka_settings: KafkaSettings, new_topic, consume
) -> None:
    topic = await new_topic()
    group = f"g-{uuid.uuid4().hex[:8]}"
    pairs = [(f"k{i}", f"v{i:02d}") for i in range(30)]
    await produce_keyed(kafka_settings, topic, pairs)
    batches: list[list[str]] = []

    async def second_fails(records: list[Record]) -> None:
        batches.append([value_of(r) for r in records])
        if len(batches) == 2:
            raise RuntimeError("store down")
        await asyncio.sleep(0.2)  # the first batch ends after the second failed: it still commits

    with pytest.raises(RuntimeError, match="store down"):
        await asyncio.wait_for(
            run_batches(
                kafka_settings, [topic], group, second_fails, asyncio.Event(), max_records=10, batches_in_flight=2
            ),
            30,
        )
    # Resumed: the first batch was committed, the failed one and everything after it come again.
    again = await consume(topic, group, 30 - len(batches[0]))
    assert [value_of(r) for r in again] == [value for _, value in pairs][len(batches[0]) :]
