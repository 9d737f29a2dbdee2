"""Each process names itself in its spans, even when its telemetry settings come from the environment, and samples
new traces at the configured ratio while keeping every trace that arrives sampled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from qingfeng.settings import TelemetrySettings
from qingfeng.telemetry import build_provider, service_name
from qingfeng.trace_keep import KeepingSampler

from gateway.settings import GatewaySettings
from services.collector.settings import CollectorSettings
from services.coordinator.settings import CoordinatorSettings
from services.grader.settings import GraderSettings
from services.publisher.settings import PublisherSettings

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = {
    "collector": (CollectorSettings, "QF_COLLECTOR_", ROOT / "services/collector/__main__.py"),
    "grader": (GraderSettings, "QF_GRADER_", ROOT / "services/grader/__main__.py"),
    "coordinator": (CoordinatorSettings, "QF_COORDINATOR_", ROOT / "services/coordinator/__main__.py"),
    "publisher": (PublisherSettings, "QF_PUBLISHER_", ROOT / "services/publisher/__main__.py"),
    "gateway": (GatewaySettings, "QF_GATEWAY_", ROOT / "gateway/__main__.py"),
}


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_process_reports_its_own_service_name(process: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings_class, prefix, main = PROCESSES[process]
    # Setting any telemetry variable rebuilds the nested group from its class defaults: the name must survive that.
    monkeypatch.setenv(f"{prefix}TELEMETRY__OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("QF_GATEWAY_ACCESS_POLICY", str(tmp_path / "access.yaml"))
    settings = settings_class()
    assert service_name(settings.telemetry, process) == f"qingfeng-{process}"
    calls = re.findall(r'setup_tracing\(settings\.telemetry, process="(\w+)"\)', main.read_text(encoding="utf-8"))
    assert calls == [process], f"{main} must set up tracing as {process!r}"


def test_a_configured_name_wins() -> None:
    assert service_name(TelemetrySettings(service_name="qf-grader-eu"), "grader") == "qf-grader-eu"


def test_sampling_is_parent_based_at_the_configured_ratio() -> None:
    provider = build_provider(TelemetrySettings(sample_ratio=0.0), process="grader")
    try:
        assert isinstance(provider, TracerProvider) and isinstance(provider.sampler, KeepingSampler)
        assert provider.resource.attributes["service.name"] == "qingfeng-grader"
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("new trace") as root:
            assert not root.get_span_context().trace_flags.sampled, "ratio 0: a new trace is not sampled"
        sampled_parent = trace.set_span_in_context(
            trace.NonRecordingSpan(
                trace.SpanContext(
                    0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
                )
            )
        )
        with tracer.start_as_current_span("continued", context=sampled_parent) as child:
            assert child.is_recording(), "a trace that arrives sampled stays sampled"
    finally:
        provider.shutdown()
