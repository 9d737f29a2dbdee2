"""The grader's post -> event assignments, read by the posts indexer so each post is indexed once with its event.

The grader publishes every graded post's live event on ``qingfeng.post-events.v1`` (one partition,
``PostEventAssignments``, in the order it applied the posts). Before, its index role wrote each one back onto the
post's document: an ids search and a partial update, a second full indexing of the post inside Elasticsearch
(2/3 of its CPU at the soak's rate, README "Elasticsearch CPU per indexed post"). Now the indexer reads that topic
too and puts ``event_id`` into the document it writes anyway; the index role only writes what is still missing or
different (``services/grader/adapters/post_events.py``).

- ``AssignmentTail`` is a bare assigned consumer (no group, nothing committed): at start it seeks the partition to
  ``now - lookback_s`` (``offsets_for_times``), then follows the end. It keeps the newest assignment of each post in
  an ``AssignmentMap`` (a re-assignment after a merge overwrites the earlier one: records are read in order), bounded
  by count, oldest assignments out first. A topic that does not exist yet (no grader) is looked up again every few
  seconds; a broker error restarts the reader with backoff. It never stops the indexer: at worst posts are indexed
  without their event id and the index role writes it, as before.
- **Following the indexer's position.** The indexer tells the reader where it is (``follow``: its batch's newest
  record time). While the indexer is behind, the reader reads no further than ``ahead_s`` past that position (so
  the bounded map holds the assignments of the posts the indexer is about to write, not the newest ones), and when
  the indexer is older than anything the map was filled from (started far behind, or fell behind beyond it) the
  reader seeks back to ``RESYNC_MARGIN_S`` before it and the batch waits up to ``resync_wait_s`` for it. Before, the
  reader followed the live end: an indexer more than the map's ~43 s behind (after an Elasticsearch restart, the
  soak) indexed every post without its event, and the grader's index role wrote each one a second time.
- ``wait_s`` is the pure rule of the indexer's wait: while the grader is publishing (its newest record is at most
  ``active_s`` old), a batch waits for the missing assignments until the newest deadline of its missing posts
  (each post's record timestamp + ``event_wait_s``). A grader that is down, absent or far behind costs each batch at
  most that deadline; a batch of old posts (an indexer catching up) does not wait at all.

What a post's document gets is the assignment known when its batch is written; the index role compares later
(realtime) and corrects a document whose event changed since, so the final event id is the last assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import DecodeError
from qingfeng.kafka.security import client_kwargs
from qingfeng.kafka.topics import partition_ids
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_event_pb2

__all__ = ["AssignmentMap", "AssignmentTail", "wait_s"]

_log = logging.getLogger(__name__)

_MAX_RECORDS: Final = 2_000  # per getmany: one poll's decoding stays short on the event loop
_POLL_MS: Final = 200
_TOPIC_RETRY_S: Final = 5.0  # how often a missing topic (no grader yet) is looked up again
_BACKOFF_MAX_S: Final = 30.0
# How far before an indexer's position the reader seeks back, and how far past it the re-read must get before the
# batch is written: assignments are published a little after their posts' records (the grader's latency).
RESYNC_MARGIN_S: Final = 30.0
# An indexer further behind than this is not followed (a record stamped 0 must not send the reader to the topic's
# start); its posts go without their events and the grader's index role writes them, as before.
_MAX_BEHIND_S: Final = 3600.0
_CAUGHT_UP_S: Final = 3.0


class AssignmentMap:
    """post id -> event id, the newest assignment of each post, at most ``max_posts`` of them (oldest out first)."""

    __slots__ = ("_events", "_max")

    def __init__(self, max_posts: int) -> None:
        if max_posts < 1:
            raise ValueError("max_posts must be at least 1")
        self._max = max_posts
        self._events: OrderedDict[str, str] = OrderedDict()

    def put(self, post_id: str, event_id: str) -> None:
        events = self._events
        if post_id in events:
            # A re-assignment is the newest: it moves to the end, so it is the last to be dropped.
            del events[post_id]
        events[post_id] = event_id
        if len(events) > self._max:
            events.popitem(last=False)

    def get(self, post_id: str) -> str | None:
        return self._events.get(post_id)

    def clear(self) -> None:
        self._events.clear()

    @property
    def lookup(self) -> Callable[[str], str | None]:
        """``get`` as the underlying dict's own method: no Python call per look-up (the indexer looks up every post
        of every batch). Event ids are never empty, so ``lookup(p) is None`` is ``p not in self``."""
        return self._events.get

    def __contains__(self, post_id: object) -> bool:
        return post_id in self._events

    def __len__(self) -> int:
        return len(self._events)


def wait_s(deadlines: Iterable[tuple[str, float]], known: AssignmentMap, now: float, publishing: bool) -> float:
    """How long a batch should still wait for assignments: 0 when every post has one, when the grader is not
    publishing, or when the deadline (``post_id``, epoch seconds) of every post still missing one has passed."""
    if not publishing:
        return 0.0
    latest = max((deadline for post_id, deadline in deadlines if post_id not in known), default=now)
    return max(0.0, latest - now)


class AssignmentTail:
    """Follows the post-events topic into an ``AssignmentMap``; ``run`` until ``stop``, ``wait_for`` per batch."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        lookback_s: float,
        max_posts: int,
        active_s: float,
        ahead_s: float = 20.0,
        resync_wait_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._lookback_s = lookback_s
        self._active_s = active_s
        self._ahead_s = ahead_s
        self._resync_wait_s = resync_wait_s
        self._clock = clock
        self.known = AssignmentMap(max_posts)
        self._position_s: float | None = None  # the newest record time of the indexer's latest batch
        self._sought_s = math.inf  # where the reader last sought to: the map was filled from nothing older
        self._resync_to_s: float | None = None
        self._moved = asyncio.Event()  # the indexer's position moved: a paused reader looks again
        self._caught_up = asyncio.Event()  # cleared while a seek back has not re-read up to the position
        self._caught_up.set()
        self.resyncs = 0  # seeks back to an indexer's position (logs, tests)
        self._newest_s = 0.0  # the newest record's timestamp (the grader's clock when it published)
        self._changed = asyncio.Event()
        self.records = 0  # assignment records read since start (tests, logs)
        self.undecodable = 0
        self.waited_s = 0.0  # time batches spent waiting, summed (logs, the benchmark)
        self.ready = asyncio.Event()  # set once the reader sought its start and follows the topic

    def publishing(self, now: float | None = None) -> bool:
        """Whether the grader published an assignment within ``active_s`` (else nothing is waited for)."""
        return (self._clock() if now is None else now) - self._newest_s <= self._active_s

    def follow(self, position_s: float) -> None:
        """The indexer is writing posts whose records are up to ``position_s`` (epoch seconds) old."""
        if position_s < self._clock() - _MAX_BEHIND_S:
            self._position_s = None
            return
        self._position_s = position_s
        self._moved.set()
        if position_s < self._sought_s and self._resync_to_s is None:
            self._resync_to_s = position_s - RESYNC_MARGIN_S
            self._caught_up.clear()

    def paused(self) -> bool:
        """Whether the reader is ahead_s past the indexer's position (it reads on when the indexer moves)."""
        return self._position_s is not None and self._newest_s > self._position_s + self._ahead_s

    def take(self, records: Sequence[Any]) -> int:
        """Read consumed records (``value``, ``timestamp`` in ms) into the map, in order, up to the first one more
        than ``ahead_s`` past the indexer's position; returns how many were read (the caller seeks back to the
        rest: a poll holds many records, and reading past the position would push out what the indexer needs)."""
        put = self.known.put
        limit_ms = math.inf if self._position_s is None else (self._position_s + self._ahead_s) * 1000
        taken = 0
        for record in records:
            if record.timestamp > limit_ms:
                break
            taken += 1
            message = post_event_pb2.PostEventAssignments()
            try:
                message.ParseFromString(record.value or b"")
            except DecodeError:
                self.undecodable += 1  # the index role dead-letters it; here it is only not joined
                continue
            for pair in message.assignments:
                if pair.post_id and pair.event_id:
                    put(pair.post_id, pair.event_id)
            self.records += 1
            self._newest_s = max(self._newest_s, record.timestamp / 1000)
        if taken < len(records):
            self._newest_s = max(self._newest_s, records[taken].timestamp / 1000)  # paused until the indexer moves
        self._changed.set()
        return taken

    async def wait_for(self, deadlines: Sequence[tuple[str, float]]) -> float:
        """Wait until every post has an assignment or ``wait_s`` says stop; returns the seconds waited."""
        started = self._clock()
        if self.ready.is_set() and not self._caught_up.is_set():  # a seek back for this batch: re-read up to it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._caught_up.wait(), self._resync_wait_s)
        missing = list(deadlines)
        while True:
            self._changed.clear()  # before looking: records read from here on wake the wait below
            lookup = self.known.lookup
            missing = [(post_id, deadline) for post_id, deadline in missing if lookup(post_id) is None]
            now = self._clock()
            left = wait_s(missing, self.known, now, self.publishing(now))
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                # Woken by every poll that read records; re-checked at least every 0.5 s (publishing may stop).
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        waited = max(0.0, self._clock() - started)
        self.waited_s += waited
        return waited

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topic until ``stop``; errors are logged and the reader restarts (backoff up to 30 s)."""
        delay = 1.0
        while not stop.is_set():
            try:
                if await self._follow(stop):
                    return
                delay_now = _TOPIC_RETRY_S  # no topic yet
            except asyncio.CancelledError:
                raise
            except Exception as err:
                _log.warning("post-events reader stopped: %s; again in %.0fs", err, delay,
                             extra={"topic": self._topic})  # fmt: skip
                delay_now, delay = delay, min(delay * 2, _BACKOFF_MAX_S)
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_now)

    async def _follow(self, stop: asyncio.Event) -> bool:
        """Read until ``stop`` (True); False at once when the topic does not exist."""
        partitions = await partition_ids(self._kafka, self._topic, client="event-ids-admin")
        if not partitions:
            return False
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._kafka),
            client_id=f"{self._kafka.client_id}-event-ids",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            isolation_level="read_committed",
            request_timeout_ms=int(self._kafka.request_timeout_s * 1000),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self._topic, p) for p in partitions]
            consumer.assign(tps)
            await self._seek(consumer, tps, self._clock() - self._lookback_s)
            self.ready.set()
            while not stop.is_set():
                if self._resync_to_s is not None:
                    await self._seek(consumer, tps, self._resync_to_s)
                    self.known.clear()  # an older assignment read again must not stand over a newer one
                    self._newest_s = 0.0
                    self._resync_to_s = None
                    self.resyncs += 1
                if self.paused():
                    self._moved.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._moved.wait(), _POLL_MS / 1000)
                    continue
                fetched = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
                for tp, messages in fetched.items():
                    taken = self.take(messages)
                    if taken < len(messages):
                        consumer.seek(tp, messages[taken].offset)  # read again once the indexer moved on
                position = self._position_s
                if self._resync_to_s is not None:
                    continue  # a seek back was asked while this poll ran: not caught up with it yet
                if not fetched or position is None or self._newest_s >= position + _CAUGHT_UP_S or self.paused():
                    self._caught_up.set()
        finally:
            await consumer.stop()
        return True

    async def _seek(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_s: float) -> None:
        found = await consumer.offsets_for_times({tp: max(0, int(since_s * 1000)) for tp in tps})
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            at = found.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])
        self._sought_s = since_s
