"""During an Elasticsearch outage the index role fails a batch and reads it again from the last commit: the write of
the batch that did not fail first must not go on in the background (its documents held in memory, retried while the
next batches fail too, and landing later than the same documents' newer writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2

from services.grader.errors import Unavailable
from services.grader.indexer import GraderIndexer
from services.grader.settings import IndexRoleSettings
from tests.services.grader.unit.test_indexer import TOPICS, FakeProducer, _assigned, _event


@dataclass
class Write:
    """A write that fails at once, or one that hangs as a bulk write retrying against a cluster that is down."""

    fails: bool
    started: int = 0
    cancelled: int = 0
    finished: int = 0
    already_assigned: int = 0
    seen: list[int] = field(default_factory=list)

    async def _run(self, n: int) -> None:
        self.started += 1
        self.seen.append(n)
        if self.fails:
            raise Unavailable("elasticsearch down")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1

    async def index(self, events: Sequence[event_pb2.Event]) -> None:
        await self._run(len(events))

    async def assign(self, assignments: Mapping[str, str], *, wait_until: float | None = None) -> None:
        await self._run(len(assignments))


@pytest.mark.parametrize("failing", ["events", "posts"])
async def test_a_failed_batch_leaves_no_write_of_it_running(failing: str) -> None:
    events, posts = Write(fails=failing == "events"), Write(fails=failing == "posts")
    role = GraderIndexer(events, posts, FakeProducer(), kafka=KafkaSettings(), topics=TOPICS, group_id="g",  # type: ignore[arg-type]
                         settings=IndexRoleSettings(assign_delay_s=0))  # fmt: skip
    before = asyncio.all_tasks()
    with pytest.raises(Unavailable):
        await asyncio.wait_for(role.handle([_event("ev-a", 1), _assigned(("p1", "ev-a"))]), 5)
    hanging = posts if failing == "events" else events
    assert (events.started, posts.started) == (1, 1), "both writes began"
    assert (hanging.cancelled, hanging.finished) == (1, 0), "the other write was cancelled before the error came out"
    assert asyncio.all_tasks() - before == set(), "no task of the batch left running"
    assert role.events_indexed == role.posts_assigned == 0


async def test_the_writes_still_run_at_once() -> None:
    """Both writes are in flight together (the events write does not wait for the assignments' delay)."""
    order: list[str] = []

    @dataclass
    class Slow:
        name: str
        already_assigned: int = 0

        async def index(self, events: Sequence[event_pb2.Event]) -> None:
            order.append(f"{self.name} start")
            await asyncio.sleep(0.05)
            order.append(f"{self.name} end")

        async def assign(self, assignments: Mapping[str, str], *, wait_until: float | None = None) -> None:
            await self.index([])

    role = GraderIndexer(Slow("events"), Slow("posts"), FakeProducer(), kafka=KafkaSettings(), topics=TOPICS,  # type: ignore[arg-type]
                         group_id="g", settings=IndexRoleSettings(assign_delay_s=0))  # fmt: skip
    await role.handle([_event("ev-a", 1), _assigned(("p1", "ev-a"))])
    assert order[:2] == ["events start", "posts start"]
    assert role.events_indexed == role.posts_assigned == 1
