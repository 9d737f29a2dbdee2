"""The grader's alerts are traced at any sampling ratio: the alert record's producer span is sampled even when the
post that caused it was not, and its traceparent goes out sampled (the coordinator's handling is exported too);
event snapshots follow the post's sampling."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.settings import TelemetrySettings
from qingfeng.telemetry import build_provider
from qingfeng.v1 import event_pb2

from services.grader.adapters.kafka import KafkaOutputSink
from services.grader.ports import Outputs


class _CapturingProducer:
    """Starts the producer's span for each record as the real Producer does (``context=record.parent``)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        deliveries = []
        for i, record in enumerate(records):
            self.tracer.start_span(f"send {record.topic}", context=record.parent).end()
            deliveries.append(Delivery(record.topic, 0, i))
        return deliveries


async def test_at_ratio_zero_the_alert_is_exported_and_the_snapshot_is_not() -> None:
    exporter = InMemorySpanExporter()
    provider = build_provider(TelemetrySettings(sample_ratio=0.0), process="grader", exporter=exporter)
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("post from the collector") as post_span:  # unsampled at ratio 0
            cause = trace.set_span_in_context(post_span)
        assert not post_span.get_span_context().trace_flags.sampled
        sink = KafkaOutputSink(_CapturingProducer(tracer), alerts_topic="alerts", events_topic="events")  # type: ignore[arg-type]
        outputs = Outputs(
            alerts=(event_pb2.Alert(id="ev-1:1", event_id="ev-1"),),
            events=(event_pb2.Event(id="ev-1", version=1),),
            causes={"ev-1": cause},
        )
        assert await sink.publish(outputs) == {0: 1}
        exported = exporter.get_finished_spans()
        assert [s.name for s in exported] == ["send alerts"]
        (alert,) = exported
        # The alert stays in the post's trace, as a sampled child of it.
        assert alert.context.trace_id == post_span.get_span_context().trace_id
        assert alert.parent is not None and alert.parent.span_id == post_span.get_span_context().span_id
    finally:
        provider.shutdown()
