"""The batch consumer runner: fetch a batch, let the handler make its effect durable, then commit.

    async def handle(records: list[Record]) -> None:
        batch = parse_batch(records, post_pb2.Post)
        await index_posts(batch.good)                 # durable effect (ES bulk acknowledged …)
        await dead_letters.send_bad(batch.bad)        # never drop a record silently

    await run_batches(settings.kafka, [POSTS], "grader", handle, stop)

Offsets are committed per partition as ``last offset + 1`` only after the handler returned, so a crash between the
effect and the commit redelivers the batch: at-least-once in, and handlers are idempotent for an exactly-once
effect. If the handler raises, nothing of the batch is committed and the runner stops the consumer and re-raises:
the in-memory position is already past the batch, so carrying on would skip it. The process (or its supervisor)
restarts the runner, which resumes from the last commit.

Rebalances: a ``ConsumerRebalanceListener`` waits, in ``on_partitions_revoked``, for the batch in flight to finish
and commit before the partitions go to another member. The lock it waits for is held around handler + commit only,
never around ``getmany()``: ``getmany()`` can wait on the rebalance, which waits on the listener, so holding the lock
there would deadlock.

Tracing (one span per batch, ``qingfeng.trace_batches``): the handler runs under one CONSUMER span ``<group> process
batch``, a root linked to the producer span of each record (at most 128 links); records get no span of their own.
``Record.trace_context`` is the producer's context restored from ``traceparent`` (``with record.traced():``), so
per-record work continues the producer's trace.

Lag: the gauge ``qingfeng_kafka_consumer_lag`` (``qingfeng.metrics.ConsumerLag``) is set per assigned partition after
every commit and every empty poll, from the committed offset and the highwater of the fetch responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from opentelemetry import trace

from qingfeng.kafka.records import Record, record_of
from qingfeng.kafka.security import client_kwargs
from qingfeng.metrics import ConsumerLag
from qingfeng.settings import KafkaSettings
from qingfeng.trace_batches import start_consumer_batch

__all__ = ["BatchHandler", "run_batches", "run_batches_resuming"]

# After a failure, the garbage collector runs before a wait at least this long (see run_batches_resuming).
_COLLECT_BEFORE_WAIT_S = 0.1

_log = logging.getLogger(__name__)
_TRACER_NAME = "qingfeng.kafka"

BatchHandler = Callable[[list[Record]], Awaitable[None]]


class _FinishBatchBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """Makes a rebalance wait until the batch in flight has run its handler and committed."""

    def __init__(self, in_flight: asyncio.Lock, group_id: str, consumer: Any, lag: ConsumerLag) -> None:
        self._in_flight = in_flight
        self._group_id = group_id
        self._consumer = consumer
        self._lag = lag

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._in_flight:
            _log.info("partitions revoked", extra={"group_id": self._group_id, "partitions": sorted(map(str, revoked))})
            self._lag.revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        _log.info("partitions assigned", extra={"group_id": self._group_id, "partitions": sorted(map(str, assigned))})
        for tp in assigned:
            try:  # where the group stands, so the lag is known before this member's first commit
                offset = await self._consumer.committed(tp)
            except Exception as err:  # the metric only; consuming does not depend on it
                _log.debug("committed offset of %s unknown: %s", tp, err)
                continue
            if offset is not None:
                self._lag.committed({tp: offset})


async def run_batches(
    settings: KafkaSettings,
    topics: Sequence[str],
    group_id: str,
    handler: BatchHandler,
    stop: asyncio.Event,
    *,
    max_records: int = 500,
    poll_timeout_ms: int = 500,
    auto_offset_reset: str = "earliest",
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Consume ``topics`` as group ``group_id`` in batches until ``stop`` is set.

    ``handler`` receives the records of one ``getmany()`` (at most ``max_records``, in offset order per partition)
    and must return only once its effect is durable. The batch in flight when ``stop`` is set is finished and
    committed before the consumer closes. An exception from ``handler`` stops the runner without committing that
    batch and propagates.
    """
    tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        # Records of aborted producer transactions (the outbox relay may use them) are never handed to a handler.
        isolation_level="read_committed",
        request_timeout_ms=int(settings.request_timeout_s * 1000),
        max_poll_records=max_records,
    )
    in_flight = asyncio.Lock()
    lag = ConsumerLag(group_id)
    consumer.subscribe(topics=list(topics), listener=_FinishBatchBeforeRevoke(in_flight, group_id, consumer, lag))
    await consumer.start()
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
            if not fetched:
                lag.observe(consumer)
                continue
            async with in_flight:
                # Partitions revoked between getmany() and here belong to another member now: it re-reads them.
                assigned = consumer.assignment()
                batch = {tp: msgs for tp, msgs in fetched.items() if msgs and tp in assigned}
                if batch:
                    await _process(consumer, tracer, group_id, batch, handler)
                    lag.committed({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
                    lag.observe(consumer)
    finally:
        await consumer.stop()


async def _process(
    consumer: Any, tracer: trace.Tracer, group_id: str, batch: dict[Any, list[Any]], handler: BatchHandler
) -> None:
    records = [record_of(msg) for msgs in batch.values() for msg in msgs]
    batch_span = start_consumer_batch(group_id, records, tracer=tracer)
    try:
        with trace.use_span(batch_span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
            await handler(records)
            offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as err:
                # The group rebalanced under us; the effect is done and the new owner re-delivers these records to an
                # idempotent handler. Not an error of this process.
                _log.warning("commit skipped after rebalance: %s", err, extra={"group_id": group_id})
    finally:
        batch_span.end()


async def run_batches_resuming(
    settings: KafkaSettings,
    topics: Sequence[str],
    group_id: str,
    handler: BatchHandler,
    stop: asyncio.Event,
    *,
    max_records: int,
    backoff_s: float,
    backoff_max_s: float,
    progress: Callable[[], int],
    name: str,
    prepare: Callable[[], Awaitable[object]] | None = None,
    on_failure: Callable[[Exception], object] | None = None,
) -> None:
    """``run_batches`` until ``stop``, resumed from the last commit after every failure (the handler's store or Kafka
    down: nothing of the failed batch was committed).

    Between attempts it waits ``backoff_s`` doubling to ``backoff_max_s``, back to ``backoff_s`` when ``progress()``
    (e.g. documents written) moved since the last failure. ``prepare`` (creating an index, say) runs before the first
    batch inside the same retry, until it succeeded once, so a process can start while its store is still down.
    ``on_failure`` is told of every failure (counters, tests). After a failure the garbage collector runs before a
    wait of 0.1 s or more, so the failed batch is not held through an outage.
    """
    delay = backoff_s
    prepared = prepare is None
    while not stop.is_set():
        before = progress()
        try:
            if prepare is not None and not prepared:
                await prepare()
                prepared = True
            await run_batches(settings, topics, group_id, handler, stop, max_records=max_records)
            return
        except Exception as err:
            if on_failure is not None:
                on_failure(err)
            if progress() > before:
                delay = backoff_s  # it made progress since the last failure
            _log.warning("%s stopped: %s; resuming in %.1fs", name, err, delay)
        # The failed batch is cyclic garbage now that ``err`` is gone (its frames hold the records, documents and
        # request bodies; asyncio's tasks and their exceptions reference each other): freed here, not at
        # qingfeng.gc_tuning's rare old-generation pass. A store down for a minute fails a batch every few seconds:
        # the grader's index role stood at 346 MiB after a 60 s Elasticsearch outage against 203 before
        # (``bench/bench_memory_growth.py --role index --es-outage 150,60``). Milliseconds in a service (its start-up
        # objects frozen), but not free: skipped before a wait shorter than _COLLECT_BEFORE_WAIT_S (a retry at once;
        # tests), where it would dominate. The defaults back off from 1 s.
        if delay >= _COLLECT_BEFORE_WAIT_S:
            gc.collect()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, backoff_max_s)
