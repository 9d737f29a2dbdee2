"""Batch work as one span per batch, linked to the traces of the items in it.

A batch mixes items of many traces (a consumer's ``getmany()``, a slice of an import). One span per item puts every
post of a 3,000-post import into the import's trace (6,148 spans, measured); one span per batch keeps traces
bounded and links still lead from the batch to each item's trace and back:

- ``start_consumer_batch``: a consumer batch is one CONSUMER span ``<consumer> process batch``, a root (its own
  trace, sampled at the ratio), linked to the context each record carries in ``traceparent``. Records get no span of
  their own: ``Record.trace_context`` is the producer's context, so per-record work (``with record.traced():``) and
  what it produces continue the item's trace.
- ``traces_per_record``: records produced for a batch (a slice of an import or a fetch) each start a trace of their
  own (a ``collect`` root span, sampled at the ratio, then the producer's ``send`` span), and one span for the
  batch, in the caller's trace, links to them. A batch of at most ``SMALL_BATCH`` records (a tip, a small import)
  stays in the caller's trace instead: one trace then follows the request from the gateway to the alert (DESIGN
  §4), and it stays bounded.

Links are capped at ``MAX_LINKS`` per span; the rest are counted in ``qingfeng.links.dropped``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from qingfeng.trace_keep import ITEM_ATTRIBUTE

if TYPE_CHECKING:  # qingfeng.kafka imports this module: its classes are only annotations here
    from qingfeng.kafka.producer import OutgoingRecord
    from qingfeng.kafka.records import Record

__all__ = ["LINKS_DROPPED", "MAX_LINKS", "SMALL_BATCH", "links_to", "start_consumer_batch", "traces_per_record"]

# Jaeger and OTLP take more, but a span with thousands of links is unreadable and costs memory on every batch.
MAX_LINKS: Final = 128
# Up to this many produced records stay in the caller's trace (a few spans each, downstream included).
SMALL_BATCH: Final = 8
LINKS_DROPPED: Final = "qingfeng.links.dropped"
_TRACER_NAME: Final = "qingfeng.batches"


def links_to(contexts: Iterable[otel_context.Context], *, cap: int = MAX_LINKS) -> tuple[list[Link], int]:
    """Links to the span of each context that has a valid one (each span once), at most ``cap``, sampled traces
    first (the others are not exported, but their trace ids still find the logs); and how many more there were."""
    return _links((trace.get_current_span(ctx).get_span_context() for ctx in contexts), cap)


def _links(span_contexts: Iterable[SpanContext], cap: int) -> tuple[list[Link], int]:
    sampled: list[SpanContext] = []
    unsampled: list[SpanContext] = []
    seen: set[tuple[int, int]] = set()
    for span_context in span_contexts:
        if not span_context.is_valid:
            continue
        key = (span_context.trace_id, span_context.span_id)
        if key in seen:
            continue
        seen.add(key)
        (sampled if span_context.trace_flags.sampled else unsampled).append(span_context)
    chosen = (sampled + unsampled)[:cap]  # Link objects only for the chosen: a batch may have thousands
    return [Link(c) for c in chosen], len(seen) - len(chosen)


def start_consumer_batch(consumer: str, records: Sequence[Record], *, tracer: trace.Tracer | None = None) -> Span:
    """Start (not end, not make current) the span of one consumed batch: a root linked to the records' traces."""
    tracer = tracer or trace.get_tracer(_TRACER_NAME)
    links, dropped = links_to(record.trace_context for record in records)
    topics = sorted({record.topic for record in records})
    partitions = sorted({f"{record.topic}:{record.partition}" for record in records})
    return tracer.start_span(
        f"{consumer} process batch",
        context=otel_context.Context(),  # a root: the batch mixes records of many traces, linked instead
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": consumer,
            "messaging.destination.name": ",".join(topics),
            "messaging.batch.message_count": len(records),
            "qingfeng.batch.partitions": partitions,
            LINKS_DROPPED: dropped,
        },
    )


@contextmanager
def traces_per_record(
    name: str,
    records: Sequence[OutgoingRecord],
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[list[OutgoingRecord]]:
    """Give each record a trace of its own and wrap the block in one span ``name`` (current trace) linking to them.

    Yields the records with their ``parent`` set to their new trace: send those. A record that already has a
    parent keeps it (it answers a record of another trace); so do all records of a batch of at most ``SMALL_BATCH``
    under a valid caller span. The spans end when the block does, with an error status if it raised.
    """
    tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
    roots: list[Span] = []
    out: list[OutgoingRecord] = []
    small = len(records) <= SMALL_BATCH and trace.get_current_span().get_span_context().is_valid
    # Tracing off (no SDK: the API's no-op tracer, directly or behind the ProxyTracer until an SDK is set): a root
    # started under an empty context is always the invalid span, so every record gets the same parent, made once,
    # without a start_span and a context per record (the same parents, so the same send spans and headers).
    actual = tracer._tracer if isinstance(tracer, trace.ProxyTracer) else tracer
    if isinstance(actual, trace.NoOpTracer) and not small:
        invalid_root = trace.set_span_in_context(actual.start_span(_ROOT_NAME, context=otel_context.Context()))
        records_out = [record if record.parent is not None else record.with_parent(invalid_root) for record in records]
        with _batch_span(tracer, name, records, []):
            yield records_out
        return
    for record in records:
        if small or record.parent is not None:
            out.append(record)
            continue
        root = tracer.start_span(
            f"collect {record.topic}",
            context=otel_context.Context(),
            kind=SpanKind.INTERNAL,
            attributes={
                "messaging.message.id": record.event_id,
                "qingfeng.event_type": record.event_type,
                ITEM_ATTRIBUTE: True,  # dropped, not recorded, when unsampled: one per post is most of the spans
            },
        )
        roots.append(root)
        out.append(record.with_parent(trace.set_span_in_context(root)))
    with _batch_span(tracer, name, records, roots):
        yield out


_ROOT_NAME: Final = "collect"


@contextmanager
def _batch_span(
    tracer: trace.Tracer, name: str, records: Sequence[OutgoingRecord], roots: list[Span]
) -> Iterator[None]:
    """The batch's span in the current trace, linking to ``roots`` (the records' traces), current in the block; the
    roots and the batch span end with it, with an error status if it raised."""
    links, dropped = _links((root.get_span_context() for root in roots), MAX_LINKS)
    topics = sorted({record.topic for record in records})
    batch = tracer.start_span(
        name,
        links=links,
        attributes={
            "messaging.destination.name": ",".join(topics),
            "messaging.batch.message_count": len(records),
            LINKS_DROPPED: dropped,
        },
    )
    error: BaseException | None = None
    try:
        with trace.use_span(batch, end_on_exit=False, record_exception=True, set_status_on_exception=True):
            yield
    except BaseException as err:
        error = err
        raise
    finally:
        for root in roots:
            if error is not None:
                root.set_status(Status(StatusCode.ERROR, type(error).__name__))
            root.end()
        batch.end()
