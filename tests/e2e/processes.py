"""Start Qingfeng processes for end-to-end tests: free ports, JSON logs in a file, SERVING over gRPC health."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from qingfeng.cli.pki import ca_file

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _channel(port: int, ca_file: Path | None) -> grpc.Channel:
    """TLS verified against ``ca_file`` (the suite's local CA), or plaintext when there is none."""
    if ca_file is None:
        return grpc.insecure_channel(f"127.0.0.1:{port}")
    return grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca_file.read_bytes()))


def health_status(port: int, ca_file: Path | None = None, service: str = "") -> int:
    with _channel(port, ca_file) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return int(reply.status)


@dataclass
class Running:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    ca_file: Path | None = None
    env: Mapping[str, str] | None = None  # the whole environment it was started with, for restart()
    module: str = ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_serving(self, timeout_s: float = 60.0) -> int:
        """The last health status seen; SERVING as soon as it is reported."""
        deadline = time.monotonic() + timeout_s
        status = -1
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited early with {self.proc.returncode}:\n{self.log_tail()}"
            try:
                status = health_status(self.port, self.ca_file)
            except grpc.RpcError:
                status = -1
            if status == health_pb2.HealthCheckResponse.SERVING:
                return status
            time.sleep(0.3)
        return status

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then the exit code; kills and raises when the process ignores it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            self.proc.kill()
            message = f"{self.name} did not stop within {timeout_s} s of SIGTERM:\n{self.log_tail()}"
            raise AssertionError(message) from err

    def restart(self) -> None:
        """Start the process again as it was started (same module, port and environment), after a stop()."""
        assert self.proc.poll() is not None, f"{self.name} is still running"
        assert self.env is not None and self.module, f"{self.name} was not started by start()"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=ROOT, env=dict(self.env), stdout=log, stderr=subprocess.STDOUT
            )


def start(name: str, module: str, env: Mapping[str, str], log_dir: Path, *, port: int | None = None) -> Running:
    """Start ``python -m module`` from the repository root with ``env`` added to the environment; health is checked
    over TLS against ``QF_E2E_CA_FILE`` when ``env`` names it (as ``security_env`` does)."""
    port = port or free_port()
    prefix = f"QF_{name.upper()}_"
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, f"{prefix}GRPC__PORT": str(port), **env}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    ca = full_env.get("QF_E2E_CA_FILE")
    return Running(name, port, proc, log_path, Path(ca) if ca else None, full_env, module)


def tls_channel(port: int, suite_state: Path) -> grpc.aio.Channel:
    """An asyncio channel to a suite process on loopback, verifying its certificate against the local CA."""
    credentials = grpc.ssl_channel_credentials(ca_file(suite_state).read_bytes())
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)
