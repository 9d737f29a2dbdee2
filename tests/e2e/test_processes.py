"""Every process starts, reports SERVING over gRPC health once its dependencies answer, and stops cleanly."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from tests.e2e.processes import free_port, start
from tests.shared_servers import drop_run, suite_env

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
    run = f"qf-proc-{secrets.token_hex(4)}"
    env = {
        f"{prefix}KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        f"{prefix}ELASTICSEARCH__URL": es_url,
        # Own topics, groups and indices: the grader reads its posts topic from the start, and must not replay
        # other tests' posts; a default group would join the developer's running suite.
        **suite_env(name, run),
        "QF_GATEWAY_HTTP__PORT": str(free_port()),
        "QF_GATEWAY_ACCESS_POLICY": str(access_policy_file),
        **identity_env,
    }
    if name != "gateway":
        env[f"{prefix}DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
    running = start(name, module, env, tmp_path)
    try:
        status = running.wait_serving(timeout_s=60)
        assert status == health_pb2.HealthCheckResponse.SERVING, running.log_tail()
    finally:
        try:
            code = running.stop()
        finally:  # after the process, which would recreate what is deleted under it
            drop_run(kafka_bootstrap, es_url, run)
    assert code == 0, running.log_tail()
    lines = running.log_path.read_text().splitlines()
    assert any('"message": "serving"' in line for line in lines), "no structured 'serving' log line"
    assert any('"message": "stopped"' in line for line in lines), "no structured 'stopped' log line"
