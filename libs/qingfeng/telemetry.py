"""OpenTelemetry setup and W3C trace context carried in Kafka headers.

``setup_tracing`` is called once per process. New traces are sampled at ``sample_ratio`` and the rest follows the
parent; alert and error spans are exported whatever the ratio (``qingfeng.trace_keep``). Spans are exported over OTLP
only when an endpoint is configured. Kafka records carry ``traceparent`` (and ``tracestate``) in
their headers: ``inject_headers`` adds them on produce, ``extract_context`` restores them on consume so one trace
follows a post from the gateway through every service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from qingfeng.settings import TelemetrySettings
from qingfeng.trace_keep import KeepingSampler, KeepingSpanProcessor

__all__ = [
    "KafkaHeaders",
    "build_provider",
    "extract_context",
    "inject_headers",
    "service_name",
    "setup_tracing",
    "shutdown_tracing",
]

KafkaHeaders = Sequence[tuple[str, bytes]]

# W3C trace context only: it is what every OpenTelemetry SDK and collector speaks.
_PROPAGATOR = TraceContextTextMapPropagator()


def service_name(settings: TelemetrySettings, process: str) -> str:
    """The ``service.name`` this process reports: the configured one, else ``qingfeng-<process>``."""
    return settings.service_name or f"qingfeng-{process}"


def build_provider(
    settings: TelemetrySettings,
    *,
    process: str,
    exporter: SpanExporter | None = None,
    record_unsampled: bool = True,
) -> TracerProvider:
    """A tracer provider for ``process`` (collector, grader …), not installed.

    Sampling is parent-based: a trace that arrives sampled stays sampled across every service; new traces are
    sampled with probability ``sample_ratio``. Spans marked ``qingfeng.keep`` (alerts) are sampled in any case, and
    unsampled spans that end with an error are exported too; that needs them recorded (``record_unsampled``: the
    ratio's rejects are RECORD_ONLY instead of DROP). ``exporter`` (tests, benchmarks) gets the same spans as OTLP.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name(settings, process)}),
        sampler=KeepingSampler(settings.sample_ratio, record_unsampled=record_unsampled),
    )
    if settings.otlp_endpoint:
        # Imported here: the OTLP exporter pulls in grpc channels we do not want when export is off.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        otlp = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        provider.add_span_processor(KeepingSpanProcessor(otlp))
    if settings.console_export:
        provider.add_span_processor(KeepingSpanProcessor(SimpleSpanProcessor(ConsoleSpanExporter())))
    if exporter is not None:
        provider.add_span_processor(KeepingSpanProcessor(SimpleSpanProcessor(exporter)))
    return provider


def setup_tracing(settings: TelemetrySettings, *, process: str, record_unsampled: bool = True) -> TracerProvider:
    """Install the global tracer provider for this process and return it (for shutdown)."""
    provider = build_provider(settings, process=process, record_unsampled=record_unsampled)
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(_PROPAGATOR)
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the exporter, if the SDK provider is installed."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def inject_headers(
    headers: Iterable[tuple[str, bytes]] = (), ctx: otel_context.Context | None = None
) -> list[tuple[str, bytes]]:
    """Return ``headers`` plus ``traceparent``/``tracestate`` for the current (or given) context."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    out = [(k, v) for k, v in headers if k not in carrier]
    out.extend((k, v.encode("ascii")) for k, v in carrier.items())
    return out


def extract_context(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> otel_context.Context:
    """The trace context carried by a Kafka record's headers (an empty context when there is none)."""
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    carrier: dict[str, str] = {}
    for key, value in items:
        if key in ("traceparent", "tracestate") and value is not None:
            try:
                carrier[key] = value.decode("ascii")
            except UnicodeDecodeError:
                continue  # a forged or corrupt header starts a new trace instead of failing the record
    return _PROPAGATOR.extract(carrier)
