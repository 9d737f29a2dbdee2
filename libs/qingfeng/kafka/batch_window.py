"""Consumed batches in flight: the next batch is fetched and handled while the last ones finish, commits in order.

A handler that writes to a store spends the end of each batch waiting for its last request, then the runner waits
for the commit and the next fetch: the store and the process take turns. The window lets up to ``size`` batches run
their handlers at once (the indexer with ``batches_in_flight`` 2: Elasticsearch indexes the end of one batch while
the next batch's documents are built), and keeps every guarantee of one batch at a time:

- **Commits in fetch order.** A batch's offsets are committed only after its handler returned and the batch before
  it committed; a failed batch commits nothing, nor does any batch after it.
- **Per-key order.** A batch with a key still in flight in an earlier batch (or a record without a key) starts only
  after the earlier batches committed, so two versions of one post are never written concurrently.
- **Bounded.** At most ``size`` batches are held; ``make_room`` waits for room.
- **Only when behind.** The next batch is fetched beside the ones in flight only when the last one was full (the
  consumer is behind the log): at its head a batch fetched at once would be a few records, where waiting lets it
  grow. With two batches of 2,000 always in flight, the indexer and Elasticsearch spent more CPU a post at the head
  and the end-to-end path was slower (``bench/bench_collector_e2e.py --skip-pipeline --indexer process``, four
  interleaved pairs on 2026-12-02: 6.05 / 7.21 / 5.84 / 6.50 s one at a time, 6.82 / 6.92 / 6.36 / 7.36 s two).
- **Rebalances.** ``settle`` waits (without raising) until every batch in flight committed or failed: the rebalance
  listener calls it before the partitions go to another member.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import CommitFailedError, IllegalStateError
from opentelemetry import trace

from qingfeng.kafka.records import Record, record_of
from qingfeng.metrics import ConsumerLag
from qingfeng.trace_batches import start_consumer_batch

__all__ = ["BatchWindow"]

_log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Record]], Awaitable[None]]


def _keys(fetched: dict[Any, list[Any]]) -> frozenset[bytes | None]:
    return frozenset(msg.key for msgs in fetched.values() for msg in msgs)


class BatchWindow:
    """Up to ``size`` consumed batches in flight over one consumer; see the module docstring."""

    def __init__(
        self,
        consumer: Any,
        handler: BatchHandler,
        *,
        size: int,
        full_at: int,
        group_id: str,
        tracer: trace.Tracer,
        lag: ConsumerLag,
    ) -> None:
        if size < 1:
            raise ValueError(f"a batch window holds at least one batch, not {size}")
        self._consumer = consumer
        self._handler = handler
        self._size = size
        self._full_at = full_at  # a fetch of this many records (getmany's max_records) means the consumer is behind
        self._last_full = False
        self._group_id = group_id
        self._tracer = tracer
        self._lag = lag
        # oldest first: each batch's task and its keys (None: a keyless record, which orders against everything)
        self._flight: deque[tuple[asyncio.Task[None], frozenset[bytes | None]]] = deque()

    def __len__(self) -> int:
        return len(self._flight)

    async def wait_to_fetch(self) -> None:
        """Wait until the next ``getmany()`` may run: fewer than ``size`` batches in flight, and none unless the last
        batch started was full. Raises the failure of an earlier batch."""
        while self._flight and (len(self._flight) >= self._size or not self._last_full):
            await self._finish_oldest()
        self.raise_failed()

    async def make_room(self, fetched: dict[Any, list[Any]]) -> frozenset[bytes | None]:
        """Wait until a ``getmany()`` result may start: there is room, and no earlier batch holds one of its keys.
        Returns those keys, for ``start``.

        Raises the failure of an earlier batch (nothing of it, nor of any batch after it, is committed)."""
        # With one slot, any batch in flight leaves no room whatever its keys: none are collected (every consumer's
        # default, on every batch).
        keys = _keys(fetched) if self._size > 1 else frozenset()
        if any(task.done() and not task.cancelled() and task.exception() for task, _ in self._flight):
            await self.drain()  # a batch failed: raised here, in fetch order, and nothing more is started
        while self._flight and (len(self._flight) >= self._size or self._conflicts(keys)):
            await self._finish_oldest()
        self.raise_failed()
        return keys

    def start(self, fetched: dict[Any, list[Any]], keys: frozenset[bytes | None]) -> None:
        """Start handling a ``getmany()`` result with the keys ``make_room`` returned for it (right after it, with no
        await between; they may include records of partitions revoked meanwhile, which only makes them wait more)."""
        # Partitions revoked meanwhile belong to another member now: it re-reads them.
        assigned = self._consumer.assignment()
        self._last_full = sum(len(msgs) for msgs in fetched.values()) >= self._full_at
        batch = {tp: msgs for tp, msgs in fetched.items() if msgs and tp in assigned}
        if not batch:
            return
        before = self._flight[-1][0] if self._flight else None
        self._flight.append((asyncio.create_task(self._run(batch, before)), keys))

    def raise_failed(self) -> None:
        """Raise the failure of the oldest batches that already ended (done ones are dropped from the window)."""
        while self._flight and self._flight[0][0].done():
            task, _ = self._flight.popleft()
            task.result()

    async def drain(self) -> None:
        """Wait until every batch in flight committed; raises the first failure."""
        while self._flight:
            await self._finish_oldest()

    async def settle(self) -> None:
        """Wait until every batch in flight ended, committed or failed, without raising (failures stay for
        ``raise_failed``)."""
        if self._flight:
            await asyncio.wait([task for task, _ in self._flight])

    async def abandon(self, *, cancel: bool = False) -> None:
        """After a failure: let the batches in flight end (they commit nothing past the failure; with ``cancel``,
        when the runner itself is cancelled, they are cancelled too) and forget them."""
        tasks = [task for task, _ in self._flight]
        self._flight.clear()
        if cancel:
            for task in tasks:
                task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: the failure that matters was raised already

    def _conflicts(self, keys: frozenset[bytes | None]) -> bool:
        if None in keys:
            return True
        return any(None in held or not keys.isdisjoint(held) for _, held in self._flight)

    async def _finish_oldest(self) -> None:
        task, _ = self._flight[0]
        try:
            await asyncio.shield(task)  # a cancelled caller leaves the batch to finish or fail on its own
        finally:
            if task.done():
                self._flight.popleft()
        task.result()

    async def _run(self, batch: dict[Any, list[Any]], before: asyncio.Task[None] | None) -> None:
        records = [record_of(msg) for msgs in batch.values() for msg in msgs]
        batch_span = start_consumer_batch(self._group_id, records, tracer=self._tracer)
        try:
            with trace.use_span(batch_span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
                await self._handler(records)
                if before is not None:
                    await asyncio.shield(before)  # raises its failure: then nothing of this batch is committed
                offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
                try:
                    await self._consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as err:
                    # The group rebalanced under us; the effect is done and the new owner re-delivers these records
                    # to an idempotent handler. Not an error of this process.
                    _log.warning("commit skipped after rebalance: %s", err, extra={"group_id": self._group_id})
                    return
                self._lag.committed(offsets)
                self._lag.observe(self._consumer)
        finally:
            batch_span.end()
