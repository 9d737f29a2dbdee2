"""The posts' event ids written behind the alert path: ordered, bounded, drained on demand, failures surfaced."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from services.grader.assign_behind import AssignBehind
from services.grader.errors import Unavailable

pytestmark = pytest.mark.asyncio


class SlowIndex:
    """Writes land only when the test releases them; records the order they landed in."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.release = asyncio.Event()
        self.started: list[dict[str, str]] = []
        self.landed: list[dict[str, str]] = []
        self.fail_on = fail_on

    async def write(self, events: Mapping[str, str]) -> None:
        self.started.append(dict(events))
        await self.release.wait()
        if self.fail_on is not None and self.fail_on in events:
            raise Unavailable(f"posts index refused {self.fail_on}")
        self.landed.append(dict(events))


async def test_submit_returns_before_the_write_lands_and_drain_waits_for_it() -> None:
    index = SlowIndex()
    behind = AssignBehind(index.write, max_pending=4)
    await asyncio.wait_for(behind.submit({"p1": "e1"}), 1)
    await asyncio.sleep(0)
    assert index.started == [{"p1": "e1"}] and index.landed == [] and behind.pending == 1
    drained = asyncio.create_task(behind.drain())
    await asyncio.sleep(0.01)
    assert not drained.done(), "drain waits for the write"
    index.release.set()
    await asyncio.wait_for(drained, 1)
    assert index.landed == [{"p1": "e1"}] and behind.pending == 0


async def test_writes_land_in_batch_order_so_a_reassignment_wins() -> None:
    index = SlowIndex()
    behind = AssignBehind(index.write, max_pending=8)
    for event in ("e1", "e2", "e3"):
        await behind.submit({"p1": event})
    await asyncio.sleep(0.01)
    assert len(index.started) == 1, "a batch's write starts only after the previous one landed"
    index.release.set()
    await behind.drain()
    assert [w["p1"] for w in index.landed] == ["e1", "e2", "e3"]


async def test_a_full_queue_makes_the_next_batch_wait() -> None:
    index = SlowIndex()
    behind = AssignBehind(index.write, max_pending=2)
    await behind.submit({"a": "e"})
    await behind.submit({"b": "e"})
    third = asyncio.create_task(behind.submit({"c": "e"}))
    await asyncio.sleep(0.01)
    assert not third.done(), "beyond max_pending the grader slows to what the index takes"
    index.release.set()
    await asyncio.wait_for(third, 1)
    await behind.drain()
    assert [next(iter(w)) for w in index.landed] == ["a", "b", "c"]


async def test_a_failed_write_is_raised_by_the_next_submit_and_the_rest_are_dropped() -> None:
    index = SlowIndex(fail_on="bad")
    behind = AssignBehind(index.write, max_pending=4)
    await behind.submit({"bad": "e1"})
    await behind.submit({"p2": "e2"})
    index.release.set()
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable, match="refused bad"):
        await behind.submit({"p3": "e3"})
    assert index.landed == [], "nothing after a failed write lands: the owner replays those batches"
    assert behind.pending == 0
    await behind.drain()  # the queue is empty again and usable


async def test_a_failure_is_raised_by_drain_too() -> None:
    index = SlowIndex(fail_on="bad")
    index.release.set()
    behind = AssignBehind(index.write)
    await behind.submit({"bad": "e1"})
    with pytest.raises(Unavailable):
        await behind.drain()


async def test_discard_lets_the_running_write_end_and_cancels_the_rest() -> None:
    index = SlowIndex()
    behind = AssignBehind(index.write)
    await behind.submit({"p1": "e1"})
    await behind.submit({"p2": "e2"})
    await asyncio.sleep(0)
    discarding = asyncio.create_task(behind.discard())
    await asyncio.sleep(0.01)
    index.release.set()
    await asyncio.wait_for(discarding, 1)
    assert index.landed == [{"p1": "e1"}] and behind.pending == 0


async def test_the_bound_is_validated() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        AssignBehind(SlowIndex().write, max_pending=0)
