"""Batch spans link to their items' traces (capped), and alerts and errors are exported at any sampling ratio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from qingfeng.kafka import OutgoingRecord, Record
from qingfeng.settings import TelemetrySettings
from qingfeng.telemetry import build_provider, extract_context, inject_headers
from qingfeng.trace_batches import LINKS_DROPPED, MAX_LINKS, SMALL_BATCH, start_consumer_batch, traces_per_record
from qingfeng.trace_keep import KEEP_ATTRIBUTE, keep
from qingfeng.v1 import post_pb2


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _provider(exporter: InMemorySpanExporter, ratio: float, *, record_unsampled: bool = True) -> TracerProvider:
    return build_provider(
        TelemetrySettings(sample_ratio=ratio), process="test", exporter=exporter, record_unsampled=record_unsampled
    )


@pytest.fixture
def full(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = _provider(exporter, 1.0)
    yield provider
    provider.shutdown()


@pytest.fixture
def none(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = _provider(exporter, 0.0)
    yield provider
    provider.shutdown()


def _records(provider: TracerProvider, count: int, *, partitions: int = 3) -> list[Record]:
    """``count`` records as a producer in another process sends them: each with the traceparent of its own trace."""
    tracer = provider.get_tracer("producer")
    records = []
    for i in range(count):
        with tracer.start_as_current_span(f"send {i}", context=otel_context.Context()):
            headers = tuple(inject_headers())
        records.append(
            Record(
                topic="posts",
                partition=i % partitions,
                offset=i,
                key=None,
                value=b"",
                headers=headers,
                timestamp_ms=0,
                trace_context=extract_context(headers),
            )
        )
    return records


def test_a_consumer_batch_is_one_root_span_linked_to_each_records_trace(
    full: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    records = _records(full, 5)
    exporter.clear()
    span = start_consumer_batch("indexer", records, tracer=full.get_tracer("t"))
    span.end()
    (batch,) = exporter.get_finished_spans()
    assert batch.name == "indexer process batch" and batch.kind is SpanKind.CONSUMER
    assert batch.parent is None
    record_traces = {trace.get_current_span(r.trace_context).get_span_context().trace_id for r in records}
    assert {link.context.trace_id for link in batch.links} == record_traces
    assert batch.context.trace_id not in record_traces
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 5
    assert batch.attributes["messaging.destination.name"] == "posts"
    assert list(batch.attributes["qingfeng.batch.partitions"]) == ["posts:0", "posts:1", "posts:2"]
    assert batch.attributes[LINKS_DROPPED] == 0


def test_links_prefer_sampled_traces(exporter: InMemorySpanExporter) -> None:
    provider = _provider(exporter, 0.2)
    try:
        records = _records(provider, 400)
        sampled = sum(trace.get_current_span(r.trace_context).get_span_context().trace_flags.sampled for r in records)
        assert 0 < sampled < MAX_LINKS  # about 80 of 400 at ratio 0.2: fewer than the links a batch may have
        span = start_consumer_batch("indexer", records, tracer=provider.get_tracer("t"))
        span.end()
        flags = [link.context.trace_flags.sampled for link in span.links]  # type: ignore[attr-defined]
        assert len(flags) == MAX_LINKS and flags == [True] * sampled + [False] * (MAX_LINKS - sampled)
    finally:
        provider.shutdown()


def test_links_are_capped_and_the_rest_counted(full: TracerProvider, exporter: InMemorySpanExporter) -> None:
    records = _records(full, MAX_LINKS + 72)
    # A record without trace context (an old producer) is not linked and not counted as dropped.
    records.append(Record("posts", 0, 999, None, b"", (), 0))
    exporter.clear()
    start_consumer_batch("grader", records, tracer=full.get_tracer("t")).end()
    (batch,) = exporter.get_finished_spans()
    assert len(batch.links) == MAX_LINKS
    assert batch.attributes is not None and batch.attributes[LINKS_DROPPED] == 72
    assert batch.attributes["messaging.batch.message_count"] == MAX_LINKS + 73


def _outgoing(count: int) -> list[OutgoingRecord]:
    return [
        OutgoingRecord("posts", f"p{i}", post_pb2.Post(id=f"p{i}"), "post.collected", f"p{i}") for i in range(count)
    ]


def test_records_produced_by_a_batch_each_start_their_own_trace(
    full: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = full.get_tracer("t")
    answered = trace.set_span_in_context(tracer.start_span("consumed elsewhere"))
    many = SMALL_BATCH + 2
    records = [*_outgoing(many), OutgoingRecord("posts", "x", post_pb2.Post(), "post.collected", "x", parent=answered)]
    with (
        tracer.start_as_current_span("ImportPosts") as call,
        traces_per_record("collector send slice", records, tracer_provider=full) as sent,
    ):
        parents = [trace.get_current_span(r.parent).get_span_context() for r in sent]
        assert trace.get_current_span().get_span_context().trace_id == call.get_span_context().trace_id
    spans = {s.name: s for s in exporter.get_finished_spans()}
    roots = [s for s in exporter.get_finished_spans() if s.name == "collect posts"]
    assert len(roots) == many and all(s.parent is None for s in roots)
    # New traces, none of them the call's; the record that answers another trace keeps its parent.
    trace_ids = {p.trace_id for p in parents[:many]}
    assert len(trace_ids) == many and call.get_span_context().trace_id not in trace_ids
    assert parents[many] == trace.get_current_span(answered).get_span_context()
    batch = spans["collector send slice"]
    assert batch.parent is not None and batch.parent.span_id == call.get_span_context().span_id
    assert {link.context.trace_id for link in batch.links} == trace_ids


def test_a_small_batch_stays_in_the_callers_trace(full: TracerProvider, exporter: InMemorySpanExporter) -> None:
    tracer = full.get_tracer("t")
    with (
        tracer.start_as_current_span("SubmitTip") as call,
        traces_per_record("collector send slice", _outgoing(SMALL_BATCH), tracer_provider=full) as sent,
    ):
        assert all(r.parent is None for r in sent)  # the producer's span joins the current trace
        for _ in sent:
            tracer.start_span("send posts").end()
    spans = exporter.get_finished_spans()
    assert not [s for s in spans if s.name.startswith("collect ")]
    assert {s.context.trace_id for s in spans} == {call.get_span_context().trace_id}
    assert len(spans) == SMALL_BATCH + 2


def test_a_failed_send_marks_the_batch_as_an_error_and_it_is_kept_at_ratio_zero(
    none: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = none.get_tracer("t")
    with (
        pytest.raises(RuntimeError),
        traces_per_record("collector send slice", _outgoing(2), tracer_provider=none) as sent,
    ):
        for record in sent:  # as the producer does: its send span under the post's new trace
            tracer.start_span("send posts", context=record.parent).end()
        raise RuntimeError("kafka down")
    # Ratio 0: the posts' own traces are dropped (not even recorded: one per post is too many to record), the batch
    # span is recorded and, failed, exported.
    (batch,) = exporter.get_finished_spans()
    assert batch.name == "collector send slice" and batch.status.status_code is StatusCode.ERROR
    # Still linked: their trace ids find the posts' log lines.
    assert len(batch.links) == 2 and not any(link.context.trace_flags.sampled for link in batch.links)


def test_at_ratio_zero_ordinary_spans_are_not_exported(none: TracerProvider, exporter: InMemorySpanExporter) -> None:
    tracer = none.get_tracer("t")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child") as child:
        assert child.is_recording() and not child.get_span_context().trace_flags.sampled
    assert exporter.get_finished_spans() == ()


def test_at_ratio_zero_an_error_is_exported_with_the_spans_that_end_after_it(
    none: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = none.get_tracer("t")
    with tracer.start_as_current_span("batch") as batch:
        with tracer.start_as_current_span("fine before"):
            pass
        with tracer.start_as_current_span("fails") as failing:
            failing.set_status(Status(StatusCode.ERROR, "bulk refused"))
    names = [s.name for s in exporter.get_finished_spans()]
    # The failing span, and its parent that ended after it (the path to the error); not the sibling that was fine.
    assert names == ["fails", "batch"]
    (fails, parent) = exporter.get_finished_spans()
    assert fails.parent is not None and fails.parent.span_id == batch.get_span_context().span_id
    assert parent.context.trace_id == fails.context.trace_id


def test_at_ratio_zero_an_alert_is_sampled_and_its_trace_goes_on_sampled(
    none: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = none.get_tracer("t")
    with tracer.start_as_current_span("grader process batch"):
        post_context = otel_context.get_current()
        with tracer.start_as_current_span("send posts"):
            pass
        # As the grader's KafkaOutputSink sends an alert: the parent context marked keep().
        with tracer.start_as_current_span("send alerts", context=keep(post_context), kind=SpanKind.PRODUCER) as alert:
            assert alert.get_span_context().trace_flags.sampled
            headers = inject_headers()
    assert [s.name for s in exporter.get_finished_spans()] == ["send alerts"]
    # Downstream (the coordinator) the alert's trace arrives sampled, so its work is exported as well.
    with tracer.start_as_current_span("handle alert", context=extract_context(headers)) as handled:
        assert handled.get_span_context().trace_flags.sampled
    assert [s.name for s in exporter.get_finished_spans()] == ["send alerts", "handle alert"]


def test_a_keep_attribute_set_at_start_or_before_the_end_exports_the_span(
    none: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = none.get_tracer("t")
    with tracer.start_as_current_span("emit alert", attributes={KEEP_ATTRIBUTE: True}) as at_start:
        assert at_start.get_span_context().trace_flags.sampled
    with tracer.start_as_current_span("decided later") as later:
        later.set_attribute(KEEP_ATTRIBUTE, True)
    assert [s.name for s in exporter.get_finished_spans()] == ["emit alert", "decided later"]


def test_drop_mode_records_nothing_unsampled_and_so_cannot_keep_errors(exporter: InMemorySpanExporter) -> None:
    provider = _provider(exporter, 0.0, record_unsampled=False)
    try:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("fails") as span:
            assert not span.is_recording()
            span.set_status(Status(StatusCode.ERROR, "lost"))
        with tracer.start_as_current_span("alert", attributes={KEEP_ATTRIBUTE: True}) as alert:
            assert alert.is_recording(), "a keep mark at start is honoured in drop mode too"
        assert [s.name for s in exporter.get_finished_spans()] == ["alert"]
    finally:
        provider.shutdown()


@pytest.mark.parametrize("provider", [trace.NoOpTracerProvider(), None])
def test_without_an_sdk_every_record_gets_what_its_own_root_would_give(provider: trace.TracerProvider | None) -> None:
    """Tracing off: one parent for all (the invalid span in the caller's context), as a no-op root per record gave,
    so the producer's send span is the invalid one and no traceparent is written; an answering record keeps its own;
    an error still goes through. ``None``: the global provider, a proxy to the no-op tracer in this test process."""
    if provider is None and not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("a global SDK provider is installed in this process")
    remote = trace.NonRecordingSpan(trace.SpanContext(1, 2, is_remote=True, trace_flags=trace.TraceFlags(1)))
    answered = trace.set_span_in_context(remote)
    records = [
        *_outgoing(SMALL_BATCH + 3),
        OutgoingRecord("posts", "x", post_pb2.Post(), "post.collected", "x", parent=answered),
    ]
    key = otel_context.create_key("caller")
    token = otel_context.attach(otel_context.set_value(key, "v", trace.set_span_in_context(remote)))
    try:
        with traces_per_record("collector send slice", records, tracer_provider=provider) as sent:
            for record in sent[:-1]:
                assert record.parent is not None
                assert trace.get_current_span(record.parent) is trace.INVALID_SPAN
                assert otel_context.get_value(key, record.parent) == "v"  # the caller's context, as before
                assert inject_headers([], ctx=record.parent) == []
                assert record.with_parent(None) == records[sent.index(record)].with_parent(None)
            assert sent[-1] is records[-1]
        with pytest.raises(RuntimeError), traces_per_record("s", records, tracer_provider=provider):
            raise RuntimeError("send failed")
    finally:
        otel_context.detach(token)
