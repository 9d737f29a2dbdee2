"""Every process starts, reports SERVING over gRPC health once its dependencies answer, and stops cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from tests.e2e.processes import free_port, start

pytestmark = pytest.mark.integration

PROCESSES = [
    ("collector", "services.collector"),
    ("grader", "services.grader"),
    ("coordinator", "services.coordinator"),
    ("publisher", "services.publisher"),
    ("gateway", "gateway"),
]


@pytest.mark.parametrize(("name", "module"), PROCESSES)
def test_process_serves_and_stops(
    name: str,
    module: str,
    kafka_bootstrap: str,
    es_url: str,
    tmp_path: Path,
    access_policy_file: Path,
    identity_env: dict[str, str],
) -> None:
    prefix = f"QF_{name.upper()}_"
    env = {
        f"{prefix}KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        f"{prefix}ELASTICSEARCH__URL": es_url,
        f"{prefix}ELASTICSEARCH__INDEX_PREFIX": f"qf-proc-{name}",
        "QF_GATEWAY_HTTP__PORT": str(free_port()),
        "QF_GATEWAY_ACCESS_POLICY": str(access_policy_file),
        **identity_env,
    }
    if name != "gateway":
        env[f"{prefix}DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
    if name in ("collector", "grader"):
        # Own topics: the grader reads its posts topic from the start, and must not replay other tests' posts.
        env[f"{prefix}TOPICS__POSTS"] = f"qf-proc-{tmp_path.name}.posts"
    running = start(name, module, env, tmp_path)
    try:
        status = running.wait_serving(timeout_s=60)
        assert status == health_pb2.HealthCheckResponse.SERVING, running.log_tail()
    finally:
        code = running.stop()
    assert code == 0, running.log_tail()
    lines = running.log_path.read_text().splitlines()
    assert any('"message": "serving"' in line for line in lines), "no structured 'serving' log line"
    assert any('"message": "stopped"' in line for line in lines), "no structured 'stopped' log line"
