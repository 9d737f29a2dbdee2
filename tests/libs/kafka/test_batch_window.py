"""The batch window (unit, over a stand-in consumer): batches overlap, yet commit in fetch order, never past a
failure, never two versions of one key at once, never more than ``size`` held."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import trace
from qingfeng.kafka import Record
from qingfeng.kafka.batch_window import BatchWindow
from qingfeng.metrics import ConsumerLag


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Msg:
    """The fields of an aiokafka ConsumerRecord that ``record_of`` reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes = b""
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0


@dataclass
class Consumer:
    assigned: set[TP] = field(default_factory=lambda: {TP("t", 0)})
    commits: list[dict[TP, int]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def commit(self, offsets: dict[TP, int]) -> None:
        await asyncio.sleep(0)
        self.commits.append(dict(offsets))

    def highwater(self, tp: TP) -> int | None:
        return None


def batch(first: int, *keys: str | None, partition: int = 0) -> dict[TP, list[Msg]]:
    msgs = [Msg("t", partition, first + i, key.encode() if key is not None else None) for i, key in enumerate(keys)]
    return {TP("t", partition): msgs}


class Gate:
    """A handler whose every batch waits for its own release (keyed by the batch's first offset)."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.running = 0
        self.most_running = 0
        self._release: dict[int, asyncio.Event] = {}
        self.fail: set[int] = set()

    def release(self, first: int) -> None:
        self._release.setdefault(first, asyncio.Event()).set()

    async def __call__(self, records: list[Record]) -> None:
        first = records[0].offset
        self.started.append(first)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self._release.setdefault(first, asyncio.Event()).wait()
            if first in self.fail:
                raise RuntimeError(f"batch at {first} failed")
        finally:
            self.running -= 1


def window(
    consumer: Consumer, handler: Callable[[list[Record]], Awaitable[None]], size: int, full_at: int = 2
) -> BatchWindow:
    return BatchWindow(
        consumer,
        handler,
        size=size,
        full_at=full_at,
        group_id="g",
        tracer=trace.get_tracer("test"),
        lag=ConsumerLag("g-test"),
    )


async def submit(w: BatchWindow, fetched: dict[Any, list[Any]]) -> None:
    w.start(fetched, await w.make_room(fetched))


async def settle_loop() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_two_batches_run_at_once_and_commit_in_fetch_order() -> None:
    consumer, gate = Consumer(), Gate()
    w = window(consumer, gate, size=2)
    await submit(w, batch(0, "a", "b"))
    await submit(w, batch(2, "c", "d"))
    await settle_loop()
    assert gate.started == [0, 2] and gate.most_running == 2
    gate.release(2)  # the second batch is done first …
    await settle_loop()
    assert consumer.commits == []  # … but waits for the first before committing
    gate.release(0)
    await w.drain()
    assert consumer.commits == [{TP("t", 0): 2}, {TP("t", 0): 4}]


async def test_a_third_batch_waits_for_room() -> None:
    consumer, gate = Consumer(), Gate()
    w = window(consumer, gate, size=2)
    await submit(w, batch(0, "a"))
    await submit(w, batch(1, "b"))
    third = asyncio.create_task(submit(w, batch(2, "c")))
    await settle_loop()
    assert not third.done() and gate.started == [0, 1]
    gate.release(0)
    await third
    assert len(w) == 2 and consumer.commits == [{TP("t", 0): 1}]
    gate.release(1)
    gate.release(2)
    await w.drain()
    assert consumer.commits[-1] == {TP("t", 0): 3}


@pytest.mark.parametrize("second", [("b", "a"), (None,)], ids=["shared key", "keyless record"])
async def test_a_batch_sharing_a_key_starts_after_the_earlier_one_committed(second: tuple[str | None, ...]) -> None:
    consumer, gate = Consumer(), Gate()
    w = window(consumer, gate, size=4)
    await submit(w, batch(0, "a"))
    waiting = asyncio.create_task(submit(w, batch(1, *second)))
    await settle_loop()
    assert not waiting.done() and gate.started == [0]  # two versions of "a" are never written at once
    gate.release(0)
    await waiting
    assert consumer.commits == [{TP("t", 0): 1}] and gate.started == [0, 1]
    gate.release(1)
    await w.drain()


async def test_a_failed_batch_commits_nothing_and_neither_do_later_ones() -> None:
    consumer, gate = Consumer(), Gate()
    gate.fail.add(0)
    w = window(consumer, gate, size=2)
    await submit(w, batch(0, "a"))
    await submit(w, batch(1, "b"))
    gate.release(1)  # the later batch's effect is done
    await settle_loop()
    gate.release(0)
    with pytest.raises(RuntimeError, match="batch at 0 failed"):
        await w.drain()
    await w.abandon()
    assert consumer.commits == [] and len(w) == 0


async def test_a_failure_is_raised_before_anything_more_starts() -> None:
    consumer, gate = Consumer(), Gate()
    gate.fail.add(0)
    w = window(consumer, gate, size=3)
    await submit(w, batch(0, "a"))
    gate.release(0)
    await settle_loop()
    with pytest.raises(RuntimeError, match="batch at 0 failed"):
        await w.make_room(batch(1, "b"))
    assert gate.started == [0] and consumer.commits == []


async def test_records_of_revoked_partitions_are_not_started() -> None:
    consumer, gate = Consumer(assigned={TP("t", 1)}), Gate()
    w = window(consumer, gate, size=2)
    await submit(w, batch(0, "a", partition=0))  # partition 0 went to another member
    assert len(w) == 0 and gate.started == []


async def test_settle_waits_for_every_batch_without_raising() -> None:
    consumer, gate = Consumer(), Gate()
    gate.fail.add(1)
    w = window(consumer, gate, size=2)
    await submit(w, batch(0, "a"))
    await submit(w, batch(1, "b"))
    settling = asyncio.create_task(w.settle())
    await settle_loop()
    assert not settling.done()
    gate.release(0)
    gate.release(1)
    await settling  # what a rebalance waits for: both ended, one committed, one failed, nothing raised here
    assert consumer.commits == [{TP("t", 0): 1}]
    with pytest.raises(RuntimeError, match="batch at 1 failed"):
        w.raise_failed()


async def test_cancelling_abandons_the_handlers_in_flight() -> None:
    consumer, gate = Consumer(), Gate()
    w = window(consumer, gate, size=2)
    await submit(w, batch(0, "a"))
    await settle_loop()
    await w.abandon(cancel=True)
    assert gate.running == 0 and consumer.commits == [] and len(w) == 0


async def test_the_next_fetch_runs_beside_a_batch_only_when_that_batch_was_full() -> None:
    consumer, gate = Consumer(), Gate()
    w = window(consumer, gate, size=2, full_at=2)
    await submit(w, batch(0, "a", "b"))  # full: the consumer is behind, fetch the next one at once
    await asyncio.wait_for(w.wait_to_fetch(), 1)
    await submit(w, batch(2, "c"))  # a partial batch: at the head of the log
    fetching = asyncio.create_task(w.wait_to_fetch())
    await settle_loop()
    assert not fetching.done()  # full window
    gate.release(0)
    await settle_loop()
    assert not fetching.done()  # room, but the last batch was partial: let the next one grow until it is done
    gate.release(2)
    await asyncio.wait_for(fetching, 1)
    assert len(w) == 0 and consumer.commits == [{TP("t", 0): 2}, {TP("t", 0): 3}]


async def test_one_batch_at_a_time_fetches_only_after_the_one_before_committed() -> None:
    consumer, gate = Consumer(), Gate()
    w = window(consumer, gate, size=1, full_at=1)
    await submit(w, batch(0, "a"))  # full, yet a window of one never fetches beside it
    fetching = asyncio.create_task(w.wait_to_fetch())
    await settle_loop()
    assert not fetching.done()
    gate.release(0)
    await asyncio.wait_for(fetching, 1)
    assert consumer.commits == [{TP("t", 0): 1}]


def test_a_window_holds_at_least_one_batch() -> None:
    with pytest.raises(ValueError, match="at least one batch"):
        window(Consumer(), Gate(), size=0)
