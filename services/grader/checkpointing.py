"""When the engine's owner checkpoints, and how: on the loop, or encoded by a forked child in the background.

A checkpoint is due every ``every_batches`` batches or ``every_s`` seconds, whichever first, but never more often than
the CPU share (``max_cpu_share``) its last encoding allows once it costs (a full horizon). A periodic one whose last
encoding took at least ``fork_min_cpu_s`` is encoded by a forked child (``checkpoint_fork.py``) and stored in the
background while batches go on; it records the order log's mark, so the batches fed after the fork stay logged.
Others are encoded on the loop and compressed in a worker thread (the compressor releases the GIL). One
checkpoint at a time: every checkpoint first waits for the one in the background (``settled``). The owner
(``state.py``) decides what a checkpoint holds and when its content is final; this module only takes and stores it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from services.grader.checkpoint_fork import ChildEncoding, EncodingFailed, fork_available, start_encoding
from services.grader.core import Grader
from services.grader.ports import AuditEntry, Checkpoint, Outputs, PolicyRecord, StateStore
from services.grader.settings import CheckpointSettings
from services.grader.state_codec import compress_text, compressed, state_text

__all__ = ["Checkpointer", "Content", "OrderLog"]

_log = logging.getLogger(__name__)

# A checkpoint whose encoding took less CPU than this is never postponed (small states: tests, a fresh grader).
_CHEAP_CHECKPOINT_S = 0.05
# Checkpoint children failing in a row before checkpoints go back to the event loop for the rest of the process.
_FORK_FAILURES_MAX = 3


class OrderLog(Protocol):
    """Where each batch's feeding order is logged until the next checkpoint (``SqlStateStore``)."""

    async def log_order(self, runs: Sequence[tuple[int, int, int]], at: datetime) -> None: ...

    async def order_log(self) -> list[tuple[int, int, int]]: ...

    async def order_mark(self) -> int:
        """The newest entry's mark (0: none): a checkpoint storing ``order_through`` = mark leaves later entries."""
        ...


@dataclass(frozen=True, slots=True)
class Content:
    """What a checkpoint says besides the state, fixed when it is taken (the caller holds the owner's lock); the
    dicts are the caller's copies, stored as they are."""

    engine: Grader
    positions: dict[int, int]  # next offset per posts partition the engine reflects
    alert_offsets: dict[int, int]  # a lower bound of the alerts topic's end
    generation: int = 0  # non-replayable changes in the state (``Checkpoint.generation``)


class Checkpointer:
    """The cadence and the taking of checkpoints; ``count`` and ``stored`` tell what happened (tests, logs)."""

    def __init__(
        self,
        store: StateStore,
        order_log: OrderLog | None,
        cadence: CheckpointSettings,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        cpu_clock: Callable[[], float],
        compress_cpu_clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._order_log = order_log
        self._cadence = cadence
        self._clock = clock
        self._monotonic = monotonic
        self._cpu_clock = cpu_clock  # the loop thread's CPU (a checkpoint's snapshot and JSON)
        self._compress_cpu_clock = compress_cpu_clock  # read in the worker thread that compresses it
        self._batches_since = 0
        self._last = monotonic()
        self._cpu = 0.0  # CPU seconds the last checkpoint spent encoding the state (see ``due``)
        self._fork = cadence.fork and fork_available()
        self._background: asyncio.Task[None] | None = None
        self._fork_failures = 0  # children that failed in a row
        self.count = 0  # taken since start
        self.stored = False  # a checkpoint exists (recovered from one, or stored one since)

    def batch_done(self) -> None:
        self._batches_since += 1

    def soon(self) -> None:
        """Due with the next batch (the CPU-share rule still applies)."""
        self._batches_since = max(self._batches_since, self._cadence.every_batches)

    def in_flight(self) -> bool:
        """A child's checkpoint is still being encoded or stored (the next one waits for it)."""
        return self._background is not None and not self._background.done()

    @property
    def uncovered_batches(self) -> int:
        """Batches applied since the last checkpoint (fixed), which a recovery would replay."""
        return self._batches_since

    def due_while_quiet(self) -> bool:
        """Due although no batch comes to take it: batches since the last checkpoint and the cadence (or ``soon``) says
        so. A stream that went quiet right after a replay caught up would otherwise keep the replay's backlog (and a
        standby, which follows from a checkpoint, would wait for one) until the next post."""
        return self._batches_since > 0 and self.due()

    def due(self) -> bool:
        if self.in_flight():
            return False  # the one being encoded and stored comes first
        cadence = self._cadence
        elapsed = self._monotonic() - self._last
        if self._cpu >= _CHEAP_CHECKPOINT_S and elapsed < self._cpu / cadence.max_cpu_share:
            # The state is the whole horizon's posts, and encoding it costs: a checkpoint that cost 1.5 s every 50
            # (small, live-tail) batches took a tenth of the grader's CPU.
            return False
        return self._batches_since >= cadence.every_batches or elapsed >= cadence.every_s

    async def settled(self) -> None:
        """Wait until the checkpoint in the background is stored or failed: a later one must not be overwritten by
        it, and a recovery loads the newest."""
        task, self._background = self._background, None
        if task is not None:
            await asyncio.wait([task])  # it logs its own failure

    async def periodic(self, content: Content) -> None:
        """The cadence's checkpoint: by a forked child once encoding costs (``fork_min_cpu_s``), else on the loop."""
        if self._fork and self._cpu >= self._cadence.fork_min_cpu_s:
            await self._in_child(content)
        else:
            await self.take(content)

    async def take(
        self,
        content: Content,
        *,
        pending: Outputs | None = None,
        policy: PolicyRecord | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """A checkpoint encoded on the loop (compressed in a worker thread) and stored before it returns."""
        await self.settled()
        # The state as JSON bytes is fixed here, on the loop; the caller holds the owner's lock, so no batch moves the
        # engine while the text is compressed in a worker thread.
        started = self._cpu_clock()
        text = state_text(content.engine.snapshot())
        loop_cpu = self._cpu_clock() - started
        policy_version = content.engine.state_policy_version
        state, zip_cpu = await asyncio.to_thread(compressed, text, self._compress_cpu_clock)
        del text
        # Both halves count towards the CPU share (``due``): the worker's CPU is the machine's all the same.
        self._cpu = loop_cpu + zip_cpu
        checkpoint = Checkpoint(
            positions=content.positions,
            alert_offsets=content.alert_offsets,
            state=state,
            policy_version=policy_version,
            saved_at=self._clock(),
            pending=pending or Outputs(),
            generation=content.generation,
        )
        stored = time.perf_counter()
        await self._store.save(checkpoint, policy=policy, audit=audit)
        _log.info("checkpoint: %d bytes, encoded in %.2fs CPU (%.2fs on the loop), stored in %.2fs", len(state),
                  self._cpu, loop_cpu, time.perf_counter() - stored)  # fmt: skip
        self._done()

    def _done(self) -> None:
        self.stored = True
        self.count += 1
        self._batches_since = 0
        self._last = self._monotonic()

    async def _in_child(self, content: Content) -> None:
        """Fix the checkpoint's content here (positions, alert bound, order mark) and fork a child that encodes the
        engine as it is now; it is stored in the background while batches go on."""
        await self.settled()
        mark = await self._order_log.order_mark() if self._order_log is not None else None
        engine = content.engine
        forking = time.perf_counter()
        try:
            child = start_encoding(lambda: compress_text(state_text(engine.snapshot())), nice=self._cadence.fork_nice)
        except OSError as err:
            _log.warning("checkpoint child not started (%s): checkpoints stay on the loop", err)
            self._fork = False
            await self.take(content)
            return
        meta = Checkpoint(
            positions=content.positions,
            alert_offsets=content.alert_offsets,
            state=b"",
            policy_version=engine.state_policy_version,
            saved_at=self._clock(),
            order_through=mark,
            generation=content.generation,
        )
        # Counted from the fork: the cadence measures the state's age, not when the store finished.
        self._batches_since = 0
        self._last = self._monotonic()
        fork_s = time.perf_counter() - forking  # what the loop paid: the page tables' copy
        self._background = asyncio.create_task(self._store_from_child(child, meta, fork_s), name="grader checkpoint")

    async def _store_from_child(self, child: ChildEncoding, meta: Checkpoint, fork_s: float) -> None:
        started = time.perf_counter()
        try:
            encoded = await asyncio.to_thread(child.collect)
            encoded_s = time.perf_counter() - started
            await self._store.save(replace(meta, state=encoded.state))
        except asyncio.CancelledError:
            child.kill()
            raise
        except EncodingFailed as err:
            # One child can die of something passing (the OOM killer, a signal); the state it did not store is covered
            # by the next batch's checkpoint. Only children failing in a row send the checkpoints back to the loop.
            self._fork_failures += 1
            self.soon()
            if self._fork_failures >= _FORK_FAILURES_MAX:
                _log.warning("%s (%d in a row): checkpoints go back to the loop", err, self._fork_failures)
                self._fork = False
            else:
                _log.warning("%s: the next checkpoint forks again (%d of %d failures in a row)", err,
                             self._fork_failures, _FORK_FAILURES_MAX)  # fmt: skip
            return
        except Exception as err:  # the database: the previous checkpoint and the whole order log stay valid
            _log.warning("checkpoint not stored: %s: %s", type(err).__name__, err)
            return
        self._cpu = encoded.cpu_s
        self._fork_failures = 0
        self.stored = True
        self.count += 1
        _log.info("checkpoint: %d bytes, forked in %.3fs, encoded in %.2fs CPU by a child in %.2fs, stored in %.2fs",
                  len(encoded.state), fork_s, encoded.cpu_s, encoded_s,
                  time.perf_counter() - started - encoded_s)  # fmt: skip
