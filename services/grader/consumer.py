"""The loop over qingfeng.posts.v1: records in event-time order -> engine -> durable effects -> commit.

Order. The partitions' records reach the engine merged by event time, or first in the order a lost run logged
(``event_time_merge.py``: why and how); records become posts or dead letters in ``post_items.py``.

A batch: decode (bad payload -> dead letter UNDECODABLE; no id/time, a time or a record timestamp out of range,
or a time more than a day after the record was written -> dead letter INVALID), dead letters acknowledged, the
engine fed in order and ticked to the newest post time (the watermark: cool-downs end in event time), alerts and
snapshots acknowledged by Kafka and the events indexed (``EngineOwner.run_batch``), then the offsets recorded and
committed to the group. A post already applied or older than the clustering horizon is dropped by the engine's
owner with its reason (``state.EngineOwner``): a re-delivery or re-import never opens an event again.

Failures. When Kafka, Elasticsearch or the database fails, the engine is ahead of what is durable: the loop waits
(backoff) and recovers from the last checkpoint, re-reading from its offsets. Nothing is lost or repeated. Before
recovering after a failure it asks the stores whether they answer (``stores_answer``, the readiness probes) and
keeps waiting while one does not: a recovery decodes the whole state and replays every post since the checkpoint,
and during an outage each retry did that only to fail again at its first effect. The two waits differ: a recovery
that fails again backs off (``retry_backoff_s`` doubling up to ``retry_backoff_max_s``), but a probe costs only a
connection attempt, so while a store is down it is asked again every ``probe_interval_s`` (1 s). With the probes on
the doubling backoff, a broker back after 20 s was noticed only at the probe due 31 s after the failure (1+2+4+8+16),
and one back after 35 s at 61 s: up to a whole backoff step of alerts held for nothing (``RetrySchedule``).

Quiet streams. Event time only moves with posts, so a quiet event de-escalates when newer posts arrive (any
event's). ``idle_tick_s`` > 0 advances event time with the wall clock after that long without posts: for live
streams only, a replay of old posts would see every event cool down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from opentelemetry import trace
from qingfeng.trace_batches import start_consumer_batch

from services.grader.event_time_merge import EventTimeMerge, order_runs
from services.grader.ports import DeadLetterSink, PostReader
from services.grader.post_items import Item, to_item
from services.grader.settings import ConsumerSettings
from services.grader.state import EngineOwner

__all__ = ["EventTimeMerge", "Item", "PostConsumer", "RetrySchedule", "to_item"]

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


class _StoresDown(Exception):
    """A store still does not answer after a failure: wait, without reloading the state."""


class RetrySchedule:
    """The loop's waits after a failure: doubling between failed attempts, a steady short interval between probes.

    ``failed()`` -> the wait before the next attempt (``first_s``, then doubled up to ``max_s``); ``store_down()`` ->
    the wait before the next probe (``probe_s``, at most the current backoff; the backoff is unchanged);
    ``progressed()`` starts over at ``first_s``.
    """

    def __init__(self, first_s: float, max_s: float, probe_s: float) -> None:
        self._first, self._max, self._probe = first_s, max(first_s, max_s), probe_s
        self._next = first_s

    def failed(self) -> float:
        wait, self._next = self._next, min(self._next * 2, self._max)
        return wait

    def store_down(self) -> float:
        return min(self._probe, self._next)

    def progressed(self) -> None:
        self._next = self._first


class PostConsumer:
    """Runs the loop until ``stop``; on a graceful stop takes the final checkpoint and commits."""

    def __init__(
        self,
        owner: EngineOwner,
        reader: PostReader,
        dead_letters: DeadLetterSink,
        settings: ConsumerSettings,
        *,
        idle_tick_s: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        stores_answer: Callable[[], Awaitable[None]] | None = None,
        probe_interval_s: float = 1.0,
        follow: Callable[[asyncio.Event], Awaitable[bool]] | None = None,
    ) -> None:
        self._owner = owner
        self._reader = reader
        self._dead_letters = dead_letters
        self._settings = settings
        self._idle_tick_s = idle_tick_s
        self._clock = clock
        self._stores_answer = stores_answer  # raises while Kafka, Elasticsearch or the database does not answer
        # Until this process leads (standby.py): True once it does, False when stopped while following.
        self._follow = follow
        self._failed = False  # the last step failed: the stores must answer before the next recovery
        self._retry = RetrySchedule(settings.retry_backoff_s, settings.retry_backoff_max_s, probe_interval_s)
        self._failed_at: float | None = None  # loop time of the failure the loop is recovering from
        self._waits_at = 0  # store_waits at that failure
        self._merge = EventTimeMerge()
        self._seeked = False
        # (loop time, process CPU, posts, batches) at the last seek, until the backlog is worked off (logged: restart
        # time, and its CPU, which depends far less on what else runs than the time does).
        self._replay: tuple[float, float, int, int] | None = None
        self._last_batch = -math.inf  # loop time the last batch began (linger)
        self._last_commit = -math.inf  # loop time of the last commit to the group
        self._committed: dict[int, int] = {}  # the positions last committed
        self._idle_since = 0.0
        # Counters since start, for logs, tests and the benchmark.
        self.posts = 0
        self.alerts = 0
        self.dead_lettered = 0
        self.batches = 0
        self.recoveries = 0
        self.store_waits = 0  # retries that found a store still down and did not reload the state

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; recover from the last checkpoint after any failure."""
        if self._follow is not None and not await self._follow(stop):
            _log.info("standby stopped")
            return
        loop = asyncio.get_running_loop()
        self._idle_since = loop.time()
        while not stop.is_set():
            try:
                if self._owner.stale:
                    if self._failed and self._stores_answer is not None:
                        await self._wait_for_stores()
                    await self._owner.recover()
                    self.recoveries += 1
                    self._note_recovered(loop.time())
                    self._failed = False
                    self._seeked = False
                if not self._seeked:
                    await self._seek()
                progressed = await self._step()
                if progressed:
                    self._retry.progressed()
                    self._idle_since = loop.time()
                    continue
                # A quiet stream: event snapshots the owner held back (pacing.py) go out once due, the checkpoint
                # the last batches made due is taken, and the group gets the offsets a commit interval held back.
                await self._owner.flush_held()
                await self._owner.checkpoint_if_due()
                await self._commit(force=True)
                if self._idle_tick_s > 0 and loop.time() - self._idle_since >= self._idle_tick_s:
                    self._idle_since = loop.time()
                    self.alerts += await self._owner.tick(self._clock())
                continue
            except _StoresDown as err:
                delay = self._retry.store_down()
                _log.warning("%s; probing again in %.1fs", err, delay)
            except Exception as err:  # Kafka, Elasticsearch, SQL: recover from the checkpoint after a pause
                self._owner.stale = True
                self._failed = True
                if self._failed_at is None:
                    self._failed_at, self._waits_at = loop.time(), self.store_waits
                delay = self._retry.failed()
                _log.warning("grader loop failed: %s: %s; recovering in %.1fs", type(err).__name__, err, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        await self._owner.close()
        if not self._owner.stale:
            await self._reader.commit(self._owner.positions)
        _log.info("grader loop stopped", extra={"posts": self.posts, "alerts": self.alerts, "batches": self.batches})

    def _note_recovered(self, now: float) -> None:
        if self._failed_at is None:
            return
        # At WARNING, as the failure is: how long an outage held the loop is read from the logs (bench/soak.py).
        waits = self.store_waits - self._waits_at
        _log.warning("recovered from the checkpoint %.1fs after the failure (%d probes found a store down)",
                     now - self._failed_at, waits)  # fmt: skip
        self._failed_at = None

    async def _wait_for_stores(self) -> None:
        """Return once every store answers; ``_StoresDown`` (no state reloaded) while one does not."""
        assert self._stores_answer is not None
        try:
            await self._stores_answer()
        except Exception as err:
            self.store_waits += 1
            raise _StoresDown(f"stores still down ({type(err).__name__}: {err}); the state stays unloaded") from err

    async def _seek(self) -> None:
        partitions = await self._reader.partitions()
        stored = {p: o for p, o in self._owner.positions.items() if p in partitions}
        default = "earliest" if self._owner.has_checkpoint else self._settings.start_without_state
        positions = await self._reader.seek(stored, default=default)
        # Where a partition without a stored position started (earliest/latest) is now part of the state's
        # position: the next checkpoint records it, so a restart does not re-read from elsewhere.
        self._owner.positions.update({p: o for p, o in positions.items() if p not in stored})
        self._merge.reset(positions)
        self._merge.follow(self._owner.script, positions)
        self._seeked = True
        self._replay = (asyncio.get_running_loop().time(), time.process_time(), self.posts, self.batches)

    async def _step(self) -> bool:
        """Release what the merge allows (fetching when it is blocked) and process it; False when idle."""
        limit = self._settings.batch_size
        caught_up = self._reader.caught_up
        linger_s = self._settings.linger_ms / 1000
        if linger_s > 0 and self._merge.backlog(self._reader.lag) < limit:
            # On a live tail a batch is whatever arrived since the last one, and each batch costs about the same
            # whatever its size (a produce round, two bulk requests, SQL writes: ~20 ms of CPU): waiting until
            # ``linger_ms`` after the last batch began (records keep arriving in the client meanwhile) shares that
            # among more posts. Behind the stream (a full batch or more waiting) nothing waits.
            wait = self._last_batch + linger_s - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
        items = self._merge.release(limit, caught_up)
        if not items:
            needy = self._merge.needy(limit)
            if needy:
                fetched = await self._reader.fetch(needy, self._settings.poll_timeout_ms, limit)
                for partition, records in fetched.items():
                    self._merge.add(partition, (to_item(r) for r in records))
            items = self._merge.release(limit, caught_up)
        if not items:
            return False
        await self._process(items)
        if self._replay is not None and self._merge.backlog(self._reader.lag) < limit:  # less than a batch behind
            self._note_caught_up()
        return True

    def _note_caught_up(self) -> None:
        """Log how long the replay from the checkpoint took, once the stream's end is reached after a seek."""
        assert self._replay is not None
        started, cpu, posts, batches = self._replay
        self._replay = None
        took = asyncio.get_running_loop().time() - started
        cpu = time.process_time() - cpu
        replayed, batches = self.posts - posts, self.batches - batches
        _log.info("caught up after seeking: %d posts in %d batches in %.1fs, %.1fs CPU (%.0f posts/s, %.0f µs a post)",
                  replayed, batches, took, cpu, replayed / max(took, 1e-3), 1e6 * cpu / max(replayed, 1),
                  extra={"posts": replayed, "seconds": round(took, 3), "cpu_s": round(cpu, 3)})  # fmt: skip
        if replayed >= self._settings.batch_size:
            self._owner.checkpoint_soon()  # a backlog worked off is not worked off again after the next failure

    async def _process(self, items: list[Item]) -> None:
        self._last_batch = asyncio.get_running_loop().time()
        # One span per batch, linked to the posts' traces (qingfeng.trace_batches); alerts continue each post's trace.
        span = start_consumer_batch("grader", [i.record for i in items], tracer=_tracer)
        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            dead = [i.dead for i in items if i.dead is not None]
            views = [i.view for i in items if i.view is not None]
            names = self._owner.names
            for item in items:
                if item.regions:
                    names.note(item.regions)
            positions: dict[int, int] = {}
            for item in items:
                positions[item.record.partition] = item.record.offset + 1
            if dead:
                await self._dead_letters.send(dead)
                self.dead_lettered += len(dead)
                _log.warning("dead-lettered %d post records", len(dead))
            watermark = max((v.created_at for v in views), default=None)
            contexts = {i.view.id: i.record.trace_context for i in items if i.view is not None}
            published = await self._owner.run_batch(views, positions, watermark, contexts, order=order_runs(items))
            span.set_attribute("qingfeng.alerts", published)
        self.posts += len(views)
        self.alerts += published
        self.batches += 1
        await self._commit()

    async def _commit(self, *, force: bool = False) -> None:
        """Commit the positions to the group when they moved: at most every ``commit_interval_s`` while batches
        come (the offsets are for monitoring only, the checkpoint says where to resume, and a commit request per
        small live-tail batch was a round trip each), and at once when the stream is quiet (``force``)."""
        positions = self._owner.positions
        if positions == self._committed:
            return
        now = asyncio.get_running_loop().time()
        if force or now - self._last_commit >= self._settings.commit_interval_s:
            self._last_commit = now
            self._committed = dict(positions)
            await self._reader.commit(positions)
