"""A warm standby: a second grade process that follows the leader and takes over when it dies (issue 13).

A restarted grader holds every alert while it starts, restores its checkpoint and replays the posts since (10-14 s
after a kill -9 in the soak). A standby has done all of that already: it restored the last checkpoint and feeds its
engine the leader's batches as the leader fed them, so when the leader's lease (``lease.py``) is released it has at
most a second of posts to grade before it publishes.

Following. The leader logs each batch's order before its effects (``OrderLog``) and commits its positions to the
consumer group after them, so the posts up to the committed positions, in the logged order, are exactly what the
leader made durable. The standby reads the log (one entry per batch), the committed positions and the posts, and
feeds each logged batch up to the committed positions through ``EngineOwner.follow_batch``: no effects, the same
state. It never merges partitions itself.

Staying in step. The standby reloads the state from the checkpoint (a few seconds of CPU) when following could
diverge: the checkpoint's generation moved (a command, an idle tick or a regrade changed the state outside the
posts), a checkpoint covers batches whose order the standby never read (the leader empties the log with every
checkpoint), or a post the log does not cover shows up (entries missed).

Taking over. Once the lease is acquired, after ``takeover_grace_s`` (the dead leader's last produce requests land
first) the standby becomes the leader as a recovery would, without the restore: it reads the alerts already out
since its checkpoint, publishes what the leader may have left (a command's pending outputs, held snapshots) and
grades from its positions, following the rest of the order log first (``EngineOwner.take_over``). If a newer
checkpoint covers more than it applied, it recovers from that checkpoint instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime

from prometheus_client import Counter, Gauge

from services.grader.consumer import Item, to_item
from services.grader.lease import Lease
from services.grader.ports import Checkpoint, CheckpointInfo, PostReader, StateStore
from services.grader.settings import StandbySettings
from services.grader.state import EngineOwner

__all__ = ["Follower"]

_log = logging.getLogger(__name__)

# Served on the grader's /metrics (``METRICS_PORT``): which process leads, and how far behind its leader a standby is.
LEADING = Gauge("qingfeng_grader_leading", "1 while this grade process holds the lease and grades, 0 while it follows")
BEHIND = Gauge(
    "qingfeng_grader_standby_behind_records",
    "Posts the leader made durable (committed) that this standby has not fed yet; what a takeover would replay",
)
RELOADS = Counter("qingfeng_grader_standby_reloads", "Checkpoints a standby restored to follow from (start included)")

Run = list[int]  # [partition, next offset to feed, end offset]


class _Diverged(Exception):
    """Following can no longer reproduce the leader's state: reload from the checkpoint."""


class Follower:
    """Follows the leader until this process holds the lease (see the module docstring)."""

    def __init__(
        self,
        owner: EngineOwner,
        reader: PostReader,
        store: StateStore,
        lease: Lease,
        settings: StandbySettings,
        *,
        batch_limit: int,
    ) -> None:
        self._owner = owner
        self._reader = reader
        self._store = store
        self._lease = lease
        self._settings = settings
        self._limit = batch_limit
        self._followed: Checkpoint | None = None  # the checkpoint restored to follow from (None: not loaded)
        self._pending: deque[list[Run]] = deque()  # logged batches not fed yet, clipped to what was fed
        self._frontier: dict[int, int] = {}  # per partition, the end of the order known from the log
        self._buffers: dict[int, deque[Item]] = {}
        self.leading = False
        # Counters for logs, tests and the soak.
        self.posts = 0
        self.batches = 0
        self.reloads = 0

    async def run(self, stop: asyncio.Event) -> bool:
        """Follow until the lease is this process's (True: lead from here) or ``stop`` is set (False)."""
        if await self._lease.try_acquire():
            self.leading = True
            LEADING.set(1)
            return True
        LEADING.set(0)
        _log.warning("standby: %s is held by another grader; following it", self._lease.where)
        original_nice = _set_nice(self._settings.nice)
        while not stop.is_set():
            if await self._lease.try_acquire():
                _set_nice(original_nice)
                try:
                    await self._take_over()
                except Exception as err:  # Kafka or the database at that moment: the loop recovers with its backoff
                    _log.warning("standby: took the lease but not the state (%s: %s); recovering from the checkpoint",
                                 type(err).__name__, err)  # fmt: skip
                    self._owner.stale = True
                self.leading = True
                LEADING.set(1)
                BEHIND.set(0)
                return True
            try:
                progressed = await self._step()
            except _Diverged as err:
                _log.warning("standby: %s; reloading the checkpoint", err)
                self._followed = None
                progressed = True
            except Exception as err:  # Kafka or the database: try again at the next poll
                _log.warning("standby: following failed (%s: %s); retrying", type(err).__name__, err)
                progressed = False
            if not progressed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.poll_s)
        return False

    async def watch(self, stop: asyncio.Event) -> None:
        """While leading, check the lease every ``lease_check_s``; a leader that lost it stops at once (fail-stop)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.lease_check_s)
            if self.leading and not stop.is_set() and not await self._lease.holding():
                _log.critical("lost %s: another grader may lead now; exiting", self._lease.where)
                os._exit(75)  # EX_TEMPFAIL: the supervisor starts it again, as a standby

    # -- following -------------------------------------------------------------------------------------------------

    async def _load(self) -> bool:
        """Restore the checkpoint to follow from; False while the leader has not stored one yet (or stored a newer one
        while this one was read: tried again at the next poll)."""
        checkpoint = await self._store.load()
        if checkpoint is None:
            return False
        # The order log at once, before the slow restore: a checkpoint stored meanwhile would empty entries this
        # state needs. One stored between the two reads is seen by its time, and the load starts over.
        batches = await self._store.order_batches()
        info = await self._store.checkpoint_info()
        if info is None or info.saved_at != checkpoint.saved_at:
            return False
        await self._owner.load_to_follow(checkpoint)
        positions = await self._reader.seek(self._owner.positions, default="earliest")
        self._owner.positions.update(positions)
        self._frontier = dict(positions)
        self._pending.clear()
        self._buffers = {p: deque() for p in positions}
        for batch in batches:
            self._read(batch)
        self._followed = checkpoint
        self.reloads += 1
        RELOADS.inc()
        # At WARNING, as the reloads are: an operator (and the soak) sees when a standby follows.
        _log.warning("standby: following from the checkpoint of %s at %s", checkpoint.saved_at.isoformat(),
                     positions)  # fmt: skip
        return True

    async def _step(self) -> bool:
        if self._followed is None:
            return await self._load()
        for batch in await self._store.order_batches():
            self._read(batch)
        # After reading: a checkpoint stored since then may have emptied entries never read, and covers them.
        self._check(await self._store.checkpoint_info())
        durable = await self._reader.committed()
        fed = await self._feed(durable)
        positions = self._owner.positions
        BEHIND.set(sum(max(0, o - positions.get(p, 0)) for p, o in durable.items()))
        return fed

    def _check(self, info: CheckpointInfo | None) -> None:
        if info is None:
            raise _Diverged("the checkpoint is gone")
        if info.generation != self._owner.generation:
            raise _Diverged(
                f"the state changed outside the posts (generation {self._owner.generation} -> {info.generation})"
            )
        for partition, position in info.positions.items():
            if position > self._frontier.get(partition, 0):
                raise _Diverged(f"a checkpoint covers batches never read (partition {partition}: {position})")

    def _read(self, batch: Sequence[tuple[int, int, int]]) -> None:
        """Queue the part of a logged batch beyond what is known (a recovering leader logs its replay again)."""
        runs: list[Run] = []
        for partition, first, count in batch:
            start, end = max(first, self._frontier.get(partition, 0)), first + count
            if start < end:
                runs.append([partition, start, end])
                self._frontier[partition] = end
        if runs:
            self._pending.append(runs)

    async def _feed(self, durable: Mapping[int, int]) -> bool:
        """Feed the logged batches up to the durable positions; fetch the posts they need."""
        fed = False
        while self._pending:
            runs = self._pending[0]
            items, missing = self._take(runs, durable)
            if items:
                self._apply(items)
                fed = True
            if not runs:
                self._pending.popleft()
                continue
            if missing is None:
                break  # the rest is not durable yet
            await self._fetch(missing)
            if not self._buffers.get(missing):
                break  # not fetched yet: next poll
        return fed

    def _take(self, runs: list[Run], durable: Mapping[int, int]) -> tuple[list[Item], int | None]:
        """The durable records of ``runs`` in order (finished runs are removed); and the partition whose records
        must be fetched first, or None when the next record is not durable yet."""
        items: list[Item] = []
        while runs:
            partition, offset, end = runs[0]
            limit = min(end, durable.get(partition, 0))
            buffer = self._buffers.setdefault(partition, deque())
            while offset < limit and buffer:
                head = buffer[0].record.offset
                if head < offset:
                    raise _Diverged(f"partition {partition} offset {head} is in no logged batch (entries missed)")
                if head >= end:
                    break
                items.append(buffer.popleft())
                offset = head + 1
            runs[0][1] = offset
            if offset >= end or (buffer and buffer[0].record.offset >= end):
                runs.pop(0)
                continue
            return items, (partition if offset < limit else None)
        return items, None

    def _apply(self, items: list[Item]) -> None:
        views = [i.view for i in items if i.view is not None]
        names = self._owner.names
        positions: dict[int, int] = {}
        for item in items:
            positions[item.record.partition] = item.record.offset + 1
            if item.regions:
                names.note(item.regions)
        watermark: datetime | None = max((v.created_at for v in views), default=None)
        self._owner.follow_batch(views, positions, watermark)
        self.posts += len(views)
        self.batches += 1

    async def _fetch(self, partition: int) -> None:
        fetched = await self._reader.fetch([partition], int(self._settings.poll_s * 1000), self._limit)
        for p, records in fetched.items():
            self._buffers.setdefault(p, deque()).extend(to_item(r) for r in records)

    # -- taking over -----------------------------------------------------------------------------------------------

    async def _take_over(self) -> None:
        await asyncio.sleep(self._settings.takeover_grace_s)
        info = await self._store.checkpoint_info()
        owner = self._owner
        behind = info is not None and any(o > owner.positions.get(p, 0) for p, o in info.positions.items())
        checkpoint = self._followed
        if checkpoint is None or info is None or info.generation != owner.generation or behind:
            _log.warning("standby: took %s; the followed state is not current: recovering from the checkpoint",
                         self._lease.where)  # fmt: skip
            owner.stale = True  # the consumer loop recovers
            return
        script = [run for batch in await self._store.order_batches() for run in batch]
        await owner.take_over(checkpoint, script)
        _log.warning("standby: took %s; leading from %s (followed %d posts in %d batches, %d loads)",
                     self._lease.where, owner.positions, self.posts, self.batches, self.reloads)  # fmt: skip


def _set_nice(nice: int) -> int:
    """Set this thread's nice value (the loop's; threads started later inherit it); returns the previous one."""
    previous = os.getpriority(os.PRIO_PROCESS, 0)
    if nice != previous:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as err:  # raising priority back needs CAP_SYS_NICE
            _log.warning("standby: nice %d not set (%s): running at %d", nice, err, previous)
    return previous
