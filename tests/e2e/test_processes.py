"""Every process starts, reports SERVING over gRPC health once its dependencies answer, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = [
    ("collector", "services.collector"),
    ("grader", "services.grader"),
    ("coordinator", "services.coordinator"),
    ("publisher", "services.publisher"),
    ("gateway", "gateway"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        return int(reply.status)


def _wait_serving(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    status = -1
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited early with {proc.returncode}"
        try:
            status = _health(port)
        except grpc.RpcError:
            status = -1
        if status == health_pb2.HealthCheckResponse.SERVING:
            return status
        time.sleep(0.3)
    return status


@pytest.mark.parametrize(("name", "module"), PROCESSES)
def test_process_serves_and_stops(
    name: str, module: str, kafka_bootstrap: str, es_url: str, tmp_path: Path, access_policy_file: Path
) -> None:
    port = _free_port()
    prefix = f"QF_{name.upper()}_"
    env = {
        **os.environ,
        f"{prefix}GRPC__PORT": str(port),
        f"{prefix}KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        f"{prefix}ELASTICSEARCH__URL": es_url,
        f"{prefix}ELASTICSEARCH__INDEX_PREFIX": f"qf-proc-{name}",
        "QF_GATEWAY_HTTP__PORT": str(_free_port()),
        "QF_GATEWAY_ACCESS_POLICY": str(access_policy_file),
    }
    if name in ("coordinator", "publisher"):
        env[f"{prefix}DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            status = _wait_serving(proc, port, timeout_s=60)
            assert status == health_pb2.HealthCheckResponse.SERVING, log_path.read_text()[-3000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"{name} did not stop within 30 s of SIGTERM:\n{log_path.read_text()[-3000:]}")
    assert code == 0, log_path.read_text()[-3000:]
    lines = log_path.read_text().splitlines()
    assert any('"message": "serving"' in line for line in lines), "no structured 'serving' log line"
    assert any('"message": "stopped"' in line for line in lines), "no structured 'stopped' log line"
