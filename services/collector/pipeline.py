"""The ingest pipeline (the ``Ingest`` port): validate, enrich, de-duplicate, produce; dead-letter the rejects.

For each item handed in by a source adapter, ImportPosts or SubmitTip:

- a ``Rejected`` (the adapter could not parse it) goes to ``qingfeng.posts.deadletter.v1`` with its reason;
- a ``Post`` is validated (required fields, sizes: an oversized text is ``TOO_LARGE``, a bad one ``INVALID``), then
  enriched and de-duplicated by the pure core, and produced to ``qingfeng.posts.v1`` keyed by its id with event type
  ``post.collected`` and event id = post id;
- an exact or near duplicate of an earlier post is still produced, with ``dedupe.duplicate_of`` naming the original
  (the grader counts it as a repost or copy of that story), and counted as a duplicate;
- a post whose id was already produced (the same item delivered again: a re-fetched feed, a re-run import) is the
  idempotent case: it is not produced again, and is counted as a duplicate. Produced ids are remembered in memory
  (the last ``remember_ids``) and, with a ``ProducedIds`` store, durably: a restarted collector still knows them
  (issue 13). The store is asked once per call about the ids memory does not know, and told about the call's
  posts once Kafka acknowledged them, before the call returns; when the store fails the pipeline goes on with
  memory alone (the consumers are idempotent on the post id), logging it. At start the collector also reads the
  ids of the posts topic's tail into memory (``recall_produced``, ``adapters/produced_tail.py``): posts Kafka
  acknowledged just before a kill -9, which the store never heard of, are not produced again.

A call returns only once Kafka acknowledged every record it produced, so a caller that commits (a source's fetch
state, an import's progress) commits after the effect. When Kafka fails the call raises and the posts whose records
failed are not remembered as produced: the caller's retry produces them again, and consumers are idempotent on the
post id. With a sink that reports each record (``SettlingSink``, the ``Producer``: one record batch per partition)
the posts of the batches Kafka did acknowledge are remembered, so the retry counts them as re-deliveries; with
one that only raises (``send_many``), nothing of the failed slice is.

Calls may run concurrently (the scheduler's fetches, imports, tips). A post that another call is producing right
now is waited for, then counted as a re-delivery if that send was acknowledged, or produced here if it failed.

CPU work (conversion, segmentation, tagging, fingerprints) runs on the event loop in slices of
``PipelineSettings.slice_size`` posts; the next slice is enriched while Kafka acknowledges the previous one.

Backpressure (``budget.py``): each slice takes room in the process's produce budget before it is enriched and gives it
back when its send settles; a call that finds no room within the admission wait (or waits that long for another
call's send of the same posts) raises ``ProduceOverloaded`` / ``KafkaStalled`` with retry advice. A call whose sends
are not acknowledged within ``ack_timeout_s`` raises ``KafkaStalled``. In both cases, and when the call is
cancelled, sends already handed to the producer are not abandoned: they settle in the background, still counted in
the budget and still claiming their post ids, and are remembered as produced once acknowledged, so the caller's
retry finds them produced instead of producing them again.

What happens to a slice's items before they are sent (validation, enrichment, dedupe, records, dead letters) is
``preparation.py`` (``SlicePreparer``); this module is the concurrent half: budget, sends, acknowledgements and
the memory of produced ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.text import Enricher
from qingfeng.trace_batches import traces_per_record
from qingfeng.v1 import post_pb2

from services.collector.budget import BudgetConfig, KafkaStalled, ProduceBudget
from services.collector.core import Deduper
from services.collector.ports import IngestSummary, Rejected
from services.collector.preparation import (
    POST_EVENT_TYPE,
    IngestReport,
    ItemResult,
    Outcome,
    PreparedSlice,
    SlicePreparer,
    id_too_long,
)
from services.collector.settings import CollectorTopics, PipelineSettings

__all__ = [
    "POST_EVENT_TYPE",
    "IngestReport",
    "ItemResult",
    "Outcome",
    "Pipeline",
    "ProducedIds",
    "RecordSink",
    "SettlingSink",
]

_log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Where the pipeline's records go: the shared Kafka ``Producer`` (its ``send_many`` waits for every ack)."""

    @property
    def max_request_size(self) -> int: ...

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]: ...


@runtime_checkable
class SettlingSink(RecordSink, Protocol):
    """A sink that reports each record's delivery or error instead of raising (``Producer.send_each``)."""

    async def send_each(self, records: Iterable[OutgoingRecord]) -> list[Delivery | Exception]: ...


class ProducedIds(Protocol):
    """The durable memory of produced post ids (``adapters.produced_ids.SqlProducedIds``)."""

    async def known(self, post_ids: Sequence[str]) -> set[str]: ...

    async def remember(self, post_ids: Collection[str], at: datetime) -> None: ...


class Pipeline:
    """The collector's ``Ingest``: one per process, shared by the scheduler, ImportPosts and SubmitTip."""

    def __init__(
        self,
        sink: RecordSink,
        *,
        enricher: Enricher,
        deduper: Deduper,
        settings: PipelineSettings,
        topics: CollectorTopics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        produced_ids: ProducedIds | None = None,
        budget: ProduceBudget | None = None,
    ) -> None:
        self._sink = sink
        self._send_each = sink.send_each if isinstance(sink, SettlingSink) else None
        self.budget = budget or ProduceBudget(
            BudgetConfig(
                limit=settings.max_in_flight,
                admission_wait_s=settings.admission_wait_s,
                retry_after_s=settings.retry_after_s,
                stall_after_s=settings.stall_after_s,
                stalled_retry_after_s=settings.stalled_retry_after_s,
            )
        )
        # Sends of calls that gave up waiting (timeout, cancellation), settling in the background.
        self._detached: set[asyncio.Task[None]] = set()
        self._durable = produced_ids
        self._preparer = SlicePreparer(
            enricher=enricher, deduper=deduper, settings=settings, topics=topics, clock=clock
        )
        self._settings = settings
        self._clock = clock
        # Post ids acknowledged by Kafka (least recently seen first), with the original each one duplicates.
        self._produced: OrderedDict[str, str] = OrderedDict()
        # Post ids sent by some call and not acknowledged yet, with the future resolved when their send settles.
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    async def __call__(self, items: Sequence[post_pb2.Post | Rejected]) -> IngestSummary:
        return (await self.ingest(items)).summary

    async def ingest(self, items: Sequence[post_pb2.Post | Rejected], *, owned: bool = False) -> IngestReport:
        """Process ``items`` and return each one's result once Kafka acknowledged all records (or raise).

        ``owned``: the items are distinct messages the caller never reads again, enriched in place rather than in
        copies (``SlicePreparer.prepare``)."""
        results: list[ItemResult] = []
        pending: list[asyncio.Task[None]] = []
        in_call: dict[str, str] = {}  # ids produced by earlier slices of this call, not acknowledged yet
        size = self._settings.slice_size
        # One look-up for the whole call (a round trip per slice costs more than the query itself).
        await self._recall(items)
        done: dict[str, str] = {}  # acknowledged in this call: stored at its end, in one transaction
        budget = self.budget
        try:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                await budget.acquire(len(chunk))  # at most one record per item; the excess is given back below
                try:
                    async with asyncio.timeout(budget.config.admission_wait_s):
                        await self._wait_for_other_calls(chunk, in_call)
                except TimeoutError:
                    await budget.release(len(chunk), acknowledged=False)
                    raise budget.refusal() from None
                # No await between the wait above and registering this slice's ids below: no other call can
                # claim one of them in between.
                try:
                    work = self._preparer.prepare(
                        chunk,
                        self._clock(),
                        lambda post_id: self._seen(post_id, in_call),
                        self._sink.max_request_size,
                        owned=owned,
                    )
                except BaseException:
                    await budget.release(len(chunk), acknowledged=False)
                    raise
                in_call.update(work.produced)
                results.extend(work.results)
                if work.records:
                    acked = asyncio.get_running_loop().create_future()
                    for post_id in work.produced:
                        self._in_flight[post_id] = acked
                    pending.append(asyncio.create_task(self._send(work, acked, done)))
                await budget.release(len(chunk) - len(work.records), acknowledged=False)
                # Let the producer's I/O and other callers run between two CPU-bound slices.
                await asyncio.sleep(0)
            await self._wait_for_acks(pending)
        except BaseException as err:
            # Sends handed to the producer go on: cancelling them would not unsend their records, only forget that
            # they were produced (and a retry would produce them again).
            self._detach(pending, done)
            if isinstance(err, Exception):  # what this call saw acknowledged is kept now, the rest when it settles
                await self._persist(dict(done))
            raise
        await self._persist(done)
        return IngestReport(results)

    async def _wait_for_acks(self, pending: list[asyncio.Task[None]]) -> None:
        """Wait for the call's sends; the first failure is raised, and ``KafkaStalled`` after ``ack_timeout_s``."""
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self._settings.ack_timeout_s)
        if late:
            raise KafkaStalled(
                f"Kafka did not acknowledge {len(late)} of {len(pending)} slices within "
                f"{self._settings.ack_timeout_s:g} s; retry later (the sends go on, a retry is not produced twice)",
                retry_delay_s=self.budget.config.stalled_retry_after_s,
            )
        for task in pending:
            task.result()

    def _detach(self, pending: list[asyncio.Task[None]], done: dict[str, str]) -> None:
        """Let unsettled sends finish in the background and store what they get acknowledged."""
        unsettled = [task for task in pending if not task.done()]
        for task in pending:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the caller's error already says the call failed
        if not unsettled:
            return

        async def settle() -> None:
            await asyncio.gather(*unsettled, return_exceptions=True)
            await self._persist(done)

        task = asyncio.create_task(settle())
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def _wait_for_other_calls(self, chunk: Sequence[post_pb2.Post | Rejected], in_call: dict[str, str]) -> None:
        """Wait until no post of ``chunk`` is being produced by another call (a concurrent fetch or import).

        Afterwards each such post is either remembered as produced (so it is a re-delivery here) or, when the other
        call failed, not (so this call produces it): never produced twice, never skipped for a send that failed.
        """
        while True:
            waits = {
                self._in_flight[item.id]
                for item in chunk
                if not isinstance(item, Rejected) and item.id in self._in_flight and item.id not in in_call
            }
            if not waits:
                return
            await asyncio.wait(waits)

    async def _recall(self, items: Sequence[post_pb2.Post | Rejected]) -> None:
        """Load into memory which ids of ``items`` the durable store knows as produced (by an earlier process)."""
        if self._durable is None:
            return
        ask = [
            item.id
            for item in items
            if not isinstance(item, Rejected) and item.id and item.id not in self._produced and not id_too_long(item.id)
        ]
        if not ask:
            return
        try:
            known = await self._durable.known(ask)
        except Exception as err:  # the memo is an optimisation of idempotent consumers, not a gate on ingest
            _log.warning("produced-ids store unreadable, going on with memory alone: %s: %s", type(err).__name__, err)
            return
        if known:
            self._remember(dict.fromkeys(known, ""))

    async def _send(self, work: PreparedSlice, acked: asyncio.Future[None], done: dict[str, str]) -> None:
        ok = False
        try:
            # Each post starts a trace of its own; one span per slice in the caller's trace links to them.
            with traces_per_record("collector send slice", work.records) as records:
                if self._send_each is None:
                    await self._sink.send_many(records)
                else:
                    self._settle(records, await self._send_each(records), work, done)
            self._remember(work.produced)
            done.update(work.produced)
            ok = True
        finally:
            await self.budget.release(len(work.records), acknowledged=ok)
            for post_id in work.produced:
                if self._in_flight.get(post_id) is acked:
                    del self._in_flight[post_id]
            if not acked.done():
                acked.set_result(None)

    def _settle(
        self,
        records: Sequence[OutgoingRecord],
        outcomes: Sequence[Delivery | Exception],
        work: PreparedSlice,
        done: dict[str, str],
    ) -> None:
        """Raise the first error of a slice, after remembering the posts whose records Kafka did acknowledge."""
        failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if not failed:
            return
        acknowledged = {
            record.event_id: work.produced[record.event_id]
            for record, outcome in zip(records, outcomes, strict=True)
            if not isinstance(outcome, Exception)
            and record.event_type == POST_EVENT_TYPE
            and record.event_id in work.produced
        }
        self._remember(acknowledged)
        done.update(acknowledged)
        raise failed[0]

    async def _persist(self, produced: dict[str, str]) -> None:
        if self._durable is None or not produced:
            return
        try:
            await self._durable.remember(produced.keys(), self._clock())
        except Exception as err:  # acknowledged by Kafka all the same: a restart may produce these again
            _log.warning("produced ids not stored (%d): %s: %s", len(produced), type(err).__name__, err)

    def recall_produced(self, post_ids: Iterable[str]) -> int:
        """Remember ``post_ids`` as produced (the posts topic's tail, read at start: ids Kafka acknowledged before a
        kill -9 kept them from the store); returns how many memory did not know. Oldest first: the last stay."""
        fresh = {post_id: "" for post_id in post_ids if post_id not in self._produced}
        self._remember(fresh)
        return len(fresh)

    def _remember(self, produced: dict[str, str]) -> None:
        remembered = self._produced
        remembered.update(produced)
        excess = len(remembered) - self._settings.remember_ids
        for _ in range(max(0, excess)):
            remembered.popitem(last=False)

    def _seen(self, post_id: str, in_call: dict[str, str]) -> bool:
        if post_id in self._produced:
            self._produced.move_to_end(post_id)  # recently re-delivered ids stay remembered longest
            return True
        return post_id in in_call
