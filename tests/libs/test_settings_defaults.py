"""A variable that sets one field of a nested group keeps the process's own defaults for the rest of the group
(the gRPC port of each process survives QF_<PROCESS>_GRPC__TLS_CERT_FILE, as `qingfeng up` sets it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from services.collector.settings import CollectorSettings
from services.coordinator.settings import CoordinatorSettings
from services.grader.settings import GraderSettings
from services.publisher.settings import PublisherSettings

PORTS = {
    "QF_COLLECTOR_": (CollectorSettings, 50061),
    "QF_GRADER_": (GraderSettings, 50062),
    "QF_COORDINATOR_": (CoordinatorSettings, 50063),
    "QF_PUBLISHER_": (PublisherSettings, 50064),
    "QF_GATEWAY_": (GatewaySettings, 50051),
}


@pytest.mark.parametrize("prefix", sorted(PORTS))
def test_a_nested_variable_keeps_the_process_defaults(
    prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings_class, port = PORTS[prefix]
    monkeypatch.setenv("QF_GATEWAY_ACCESS_POLICY", str(tmp_path / "access.yaml"))
    monkeypatch.setenv(f"{prefix}GRPC__TLS_CERT_FILE", "/run/tls/tls.crt")
    settings = settings_class()
    assert settings.grpc.port == port
    assert settings.grpc.tls_cert_file == Path("/run/tls/tls.crt")
