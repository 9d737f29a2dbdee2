"""GatewaySettings from the environment, and the start-up failures that name their variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qingfeng.telemetry import service_name

from gateway.app import load_policy, upstream_services
from gateway.settings import GatewayConfigError, GatewaySettings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, policy_file: Path) -> None:
    monkeypatch.setenv("QF_GATEWAY_ACCESS_POLICY", str(policy_file))
    monkeypatch.setenv("QF_GATEWAY_HTTP__PORT", "18080")
    monkeypatch.setenv("QF_GATEWAY_RATE_LIMIT__BURST", "7")
    settings = load_settings()
    assert settings.access_policy == policy_file
    assert (settings.grpc.port, settings.http.host, settings.http.port) == (50051, "127.0.0.1", 18080)
    assert settings.rate_limit.burst == 7
    assert service_name(settings.telemetry, "gateway") == "qingfeng-gateway"
    addresses = {d.name: a for d, a in upstream_services(settings).items()}
    assert addresses == {
        "CollectorService": "127.0.0.1:50061",
        "GraderService": "127.0.0.1:50062",
        "CoordinatorService": "127.0.0.1:50063",
        "PublisherService": "127.0.0.1:50064",
    }


def test_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch, policy_file: Path) -> None:
    monkeypatch.setenv("QF_GATEWAY_ACCESS_POLICY", str(policy_file))
    monkeypatch.setenv("QF_GATEWAY_LIMITS__FAILED_AUTH_MAX", "5")
    monkeypatch.setenv("QF_GATEWAY_LIMITS__UPSTREAM_TIMEOUT_S", "12.5")
    monkeypatch.setenv(
        "QF_GATEWAY_LIMITS__METHOD_MAX_REQUEST_BYTES", '{"/qingfeng.v1.CollectorService/ImportPosts": 1048576}'
    )
    limits = load_settings().limits
    assert (limits.failed_auth_max, limits.upstream_timeout_s) == (5, 12.5)
    assert limits.method_max_request_bytes == {"/qingfeng.v1.CollectorService/ImportPosts": 1048576}
    assert limits.concurrent_streams_per_identity == 4 and limits.max_request_bytes == 512 * 1024
    monkeypatch.setenv("QF_GATEWAY_LIMITS__CONCURRENT_CALLS_PER_SERVER", "0")
    with pytest.raises(GatewayConfigError, match="QF_GATEWAY_LIMITS__CONCURRENT_CALLS_PER_SERVER"):
        load_settings()


def test_missing_policy_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QF_GATEWAY_ACCESS_POLICY", raising=False)
    with pytest.raises(GatewayConfigError, match="QF_GATEWAY_ACCESS_POLICY is not set"):
        load_settings()


def test_bad_value_names_the_nested_variable(monkeypatch: pytest.MonkeyPatch, policy_file: Path) -> None:
    monkeypatch.setenv("QF_GATEWAY_ACCESS_POLICY", str(policy_file))
    monkeypatch.setenv("QF_GATEWAY_HTTP__PORT", "eighty")
    with pytest.raises(GatewayConfigError, match="QF_GATEWAY_HTTP__PORT"):
        load_settings()


@pytest.mark.parametrize(("content", "message"), [(None, "cannot read"), ("version: [", "not valid YAML")])
def test_unusable_policy_file_names_the_variable(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "access.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(GatewayConfigError, match=f"QF_GATEWAY_ACCESS_POLICY: {path}: .*{message}"):
        load_policy(GatewaySettings(access_policy=path))


@pytest.mark.parametrize("policy", [None, "/nonexistent/access.yaml"])
def test_process_fails_fast_with_the_reason(policy: str | None) -> None:
    env = {"PATH": "/usr/bin:/bin", "QF_GATEWAY_HTTP__PORT": "0", "QF_GATEWAY_GRPC__PORT": "0"}
    if policy:
        env["QF_GATEWAY_ACCESS_POLICY"] = policy
    done = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "QF_GATEWAY_ACCESS_POLICY" in done.stdout + done.stderr
