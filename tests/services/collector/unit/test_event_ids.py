"""The indexer's side of the event-id join, without Kafka: the bounded map of assignments, the wait rule on a fake
clock, the reading of records, and the wait ending when an assignment arrives or publishing stops."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
import pytest
from qingfeng.elastic.words import default_splitter
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_event_pb2, post_pb2

from services.collector.documents import DocumentBuilder
from services.collector.event_ids import RESYNC_MARGIN_S, AssignmentMap, AssignmentTail, wait_s


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Msg:
    value: bytes | None
    timestamp: int  # ms, as aiokafka's ConsumerRecord


def _msg(pairs: list[tuple[str, str]], at_s: float) -> Msg:
    message = post_event_pb2.PostEventAssignments(
        assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
    )
    return Msg(message.SerializeToString(), int(at_s * 1000))


def test_the_map_keeps_the_newest_assignment_and_drops_the_oldest_post_first() -> None:
    known = AssignmentMap(3)
    for n in range(3):
        known.put(f"p{n}", f"e{n}")
    known.put("p0", "e9")  # a re-assignment: newest, and now the last to go
    known.put("p3", "e3")
    assert len(known) == 3
    assert "p1" not in known and known.get("p1") is None
    assert [known.get(p) for p in ("p0", "p2", "p3")] == ["e9", "e2", "e3"]
    known.put("p4", "e4")
    assert "p2" not in known and known.get("p0") == "e9"
    with pytest.raises(ValueError, match="max_posts"):
        AssignmentMap(0)


def test_the_wait_lasts_until_the_newest_deadline_of_the_missing_posts_only_while_publishing() -> None:
    known = AssignmentMap(10)
    known.put("a", "e")
    deadlines = [("a", 110.0), ("b", 103.0), ("c", 105.0)]
    assert wait_s(deadlines, known, 100.0, publishing=True) == 5.0  # c's deadline; a's does not count (known)
    assert wait_s(deadlines, known, 104.0, publishing=True) == 1.0
    assert wait_s(deadlines, known, 105.0, publishing=True) == 0.0  # every missing post's deadline passed
    assert wait_s(deadlines, known, 100.0, publishing=False) == 0.0  # no grader: never waits
    known.put("b", "e")
    known.put("c", "e")
    assert wait_s(deadlines, known, 100.0, publishing=True) == 0.0  # all known
    assert wait_s([], known, 100.0, publishing=True) == 0.0


def test_records_fill_the_map_in_order_and_publishing_follows_the_newest_record() -> None:
    clock = Clock(1_000.0)
    tail = AssignmentTail(KafkaSettings(), "t", lookback_s=60, max_posts=10, active_s=5.0, clock=clock)
    assert not tail.publishing()
    tail.take([_msg([("p1", "ea"), ("p2", "ea")], 990.0), Msg(b"\xff\xff", 991_000), _msg([("p1", "eb")], 998.0)])
    assert (tail.known.get("p1"), tail.known.get("p2")) == ("eb", "ea")  # the later record wins
    assert (tail.records, tail.undecodable) == (2, 1)
    assert tail.publishing()  # a record 2 s old
    clock.now = 1_003.5
    assert not tail.publishing()  # 5.5 s since the newest: the grader is not publishing
    # Records read late (a reader catching up) do not make an absent grader look alive.
    tail.take([_msg([("p3", "ec")], 950.0)])
    assert not tail.publishing() and tail.known.get("p3") == "ec"


async def test_a_wait_ends_when_the_missing_assignment_arrives() -> None:
    tail = AssignmentTail(KafkaSettings(), "t", lookback_s=60, max_posts=10, active_s=30.0)
    loop = asyncio.get_running_loop()
    now = loop.time()
    wall = time.time()
    tail.take([_msg([("other", "e0")], wall)])  # the grader is publishing
    waiting = asyncio.create_task(tail.wait_for([("p1", wall + 20.0)]))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    tail.take([_msg([("p1", "e1")], wall)])
    waited = await asyncio.wait_for(waiting, 5)
    assert 0.05 <= waited < 2.0 and loop.time() - now < 2.0


async def test_a_wait_ends_at_once_when_nobody_publishes_or_every_post_is_known() -> None:
    clock = Clock(1_000.0)
    tail = AssignmentTail(KafkaSettings(), "t", lookback_s=60, max_posts=10, active_s=5.0, clock=clock)
    assert await asyncio.wait_for(tail.wait_for([("p1", 1_030.0)]), 1) == 0.0  # nothing ever published
    tail.take([_msg([("p1", "e1")], 999.0)])
    assert await asyncio.wait_for(tail.wait_for([("p1", 1_030.0)]), 1) == 0.0  # known


def test_behind_the_indexer_the_reader_reads_no_further_than_ahead_s_past_its_position() -> None:
    clock = Clock(1_000.0)
    tail = AssignmentTail(KafkaSettings(), "t", lookback_s=60, max_posts=10, active_s=5.0, ahead_s=20.0, clock=clock)
    records = [_msg([("p1", "e1")], 905.0), _msg([("p2", "e2")], 915.0), _msg([("p3", "e3")], 925.0)]
    assert tail.take(records[:1]) == 1 and not tail.paused()  # no position yet: everything is read
    tail.follow(900.0)  # the indexer 100 s behind
    assert tail.take(records[1:]) == 1, "p3 is 25 s past the position: left for later (the caller seeks back)"
    assert tail.known.get("p2") == "e2" and "p3" not in tail.known
    assert tail.paused()
    tail.follow(910.0)
    assert not tail.paused() and tail.take(records[2:]) == 1 and tail.known.get("p3") == "e3"


def test_an_indexer_older_than_what_the_map_was_filled_from_asks_a_seek_back_and_a_stamp_of_0_does_not() -> None:
    clock = Clock(10_000.0)
    tail = AssignmentTail(KafkaSettings(), "t", lookback_s=60, max_posts=10, active_s=5.0, clock=clock)
    tail._sought_s = 9_940.0  # as the reader's start leaves it: now - lookback
    tail.follow(9_950.0)
    assert tail._resync_to_s is None and tail._caught_up.is_set(), "within what the map was filled from"
    tail.follow(9_000.0)
    assert tail._resync_to_s == 9_000.0 - RESYNC_MARGIN_S and not tail._caught_up.is_set()
    fresh = AssignmentTail(KafkaSettings(), "t", lookback_s=60, max_posts=10, active_s=5.0, clock=clock)
    fresh._sought_s = 9_940.0
    fresh.follow(0.0)  # a record stamped 0: not followed to the topic's start
    assert fresh._resync_to_s is None and not fresh.paused()


def test_a_document_with_its_event_id_is_the_same_bytes_plus_the_field() -> None:
    builder = DocumentBuilder(default_splitter())
    post = post_pb2.Post(id="p1", text="某局长涉嫌受贿", text_simplified="某局长涉嫌受贿")
    plain = builder.line(post)
    assert builder.line(post, None) == plain == builder.line(post, "")
    with_event = orjson.loads(builder.line(post, "ev-1"))
    assert with_event.pop("event_id") == "ev-1"
    assert with_event == orjson.loads(plain)
