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

Rebalances: a ``ConsumerRebalanceListener`` waits, in ``on_partitions_revoked``, for the batches in flight to finish
and commit before the partitions go to another member. It waits on the handlers' tasks only, never on ``getmany()``:
``getmany()`` can wait on the rebalance, which waits on the listener, so waiting for it there would deadlock.

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
from opentelemetry import trace

from qingfeng.kafka.batch_window import BatchHandler, BatchWindow
from qingfeng.kafka.security import client_kwargs
from qingfeng.metrics import ConsumerLag
from qingfeng.settings import KafkaSettings

__all__ = ["BatchHandler", "run_batches", "run_batches_resuming"]

# After a failure, the garbage collector runs before a wait at least this long (see run_batches_resuming).
_COLLECT_BEFORE_WAIT_S = 0.1

_log = logging.getLogger(__name__)
_TRACER_NAME = "qingfeng.kafka"


class _FinishBatchesBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """Makes a rebalance wait until the batches in flight have run their handlers and committed (or failed)."""

    def __init__(self, group_id: str, consumer: Any, lag: ConsumerLag) -> None:
        self.window: BatchWindow | None = None  # set once the consumer exists
        self._group_id = group_id
        self._consumer = consumer
        self._lag = lag

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.window is not None:
            await self.window.settle()
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
    batches_in_flight: int = 1,
) -> None:
    """Consume ``topics`` as group ``group_id`` in batches until ``stop`` is set.

    ``handler`` receives the records of one ``getmany()`` (at most ``max_records``, in offset order per partition)
    and must return only once its effect is durable. The batches in flight when ``stop`` is set are finished and
    committed before the consumer closes. An exception from ``handler`` stops the runner without committing that
    batch (nor any fetched after it) and propagates.

    ``batches_in_flight`` > 1 lets that many handlers run at once (``qingfeng.kafka.batch_window``) while the
    consumer is behind (the last batch was full): the next batch is fetched and handled while the last ones finish,
    commits stay in fetch order, and a batch with a key still in flight waits for it. Handlers must then tolerate
    running concurrently (on different keys). With 1, one batch at a time: fetched after the one before committed.
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
    lag = ConsumerLag(group_id)
    listener = _FinishBatchesBeforeRevoke(group_id, consumer, lag)
    window = listener.window = BatchWindow(
        consumer, handler, size=batches_in_flight, full_at=max_records, group_id=group_id, tracer=tracer, lag=lag
    )
    consumer.subscribe(topics=list(topics), listener=listener)
    await consumer.start()
    try:
        while not stop.is_set():
            await window.wait_to_fetch()
            if stop.is_set():  # set while the batches before ran
                break
            fetched = await consumer.getmany(timeout_ms=poll_timeout_ms, max_records=max_records)
            window.raise_failed()
            if not fetched:
                lag.observe(consumer)
                continue
            keys = await window.make_room(fetched)
            if stop.is_set():  # set while the batches before ran: these records are not handled, nor committed
                break
            window.start(fetched, keys)
        await window.drain()  # the batches in flight when stop was set are finished and committed
    except asyncio.CancelledError:
        await window.abandon(cancel=True)
        raise
    except BaseException:
        await window.abandon()
        raise
    finally:
        await consumer.stop()


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
    batches_in_flight: int = 1,
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
            await run_batches(
                settings,
                topics,
                group_id,
                handler,
                stop,
                max_records=max_records,
                batches_in_flight=batches_in_flight,
            )
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
