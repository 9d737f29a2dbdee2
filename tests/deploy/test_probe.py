"""The health probe every Deployment and Compose service runs: one script, exercised against a real TLS gRPC server.

Kubelet's built-in gRPC probe cannot speak TLS, and every Qingfeng port is TLS, so the probes are an exec of this
script inside the container. Here it runs as a subprocess against a loopback server that requires a client
certificate, as the services do.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.manifests import K8S, compose, k8s_docs, of_kind

SERVICE = "qingfeng.v1.CollectorService"


def _k8s_probe_commands() -> list[list[str]]:
    commands = []
    for deployment in of_kind(k8s_docs(), "Deployment"):
        for container in deployment.body["spec"]["template"]["spec"]["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                commands.append(container[probe]["exec"]["command"])
    return commands


def _compose_probe_commands() -> list[list[str]]:
    return [s["healthcheck"]["test"][1:] for s in compose()["services"].values() if s.get("image") == "qingfeng:0.1.0"]


def _script() -> str:
    scripts = {c[2] for c in _k8s_probe_commands() + _compose_probe_commands()}
    assert len(scripts) == 1, "every probe runs the same script"
    (script,) = scripts
    return script


def test_every_deployment_and_compose_process_probes_with_the_script() -> None:
    assert len(_k8s_probe_commands()) == 10
    assert len(_compose_probe_commands()) == 5
    for command in _k8s_probe_commands() + _compose_probe_commands():
        assert command[:2] == ["python", "-c"]
    assert (K8S / "gateway.yaml").read_text().count(_script().splitlines()[0]) == 2


@pytest.fixture
def tls_dir(certs: Path, tmp_path: Path) -> Path:
    """The layout the probe reads (as in the pods' /run/tls): the collector's certificate and the internal CA."""
    shutil.copy(certs / "ca.crt", tmp_path / "ca.crt")
    shutil.copy(certs / "collector.crt", tmp_path / "tls.crt")
    shutil.copy(certs / "collector.key", tmp_path / "tls.key")
    return tmp_path


@pytest.fixture
async def server(certs: Path) -> AsyncIterator[tuple[int, health.aio.HealthServicer]]:
    credentials = grpc.ssl_server_credentials(
        [((certs / "collector.key").read_bytes(), (certs / "collector.crt").read_bytes())],
        root_certificates=(certs / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    grpc_server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_secure_port("127.0.0.1:0", credentials)
    await grpc_server.start()
    await servicer.set("liveness", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        yield port, servicer
    finally:
        await grpc_server.stop(0)


async def _probe(*args: Any) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _script(),
        *map(str, args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_liveness_passes_while_readiness_waits_for_the_dependencies(
    server: tuple[int, health.aio.HealthServicer], tls_dir: Path
) -> None:
    port, servicer = server
    assert await _probe(tls_dir, port, "collector", "liveness", "mutual") == 0
    assert await _probe(tls_dir, port, "collector", SERVICE, "mutual") == 1
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    assert await _probe(tls_dir, port, "collector", SERVICE, "mutual") == 0


async def test_probe_fails_for_a_wrong_name_a_missing_certificate_or_an_unknown_service(
    server: tuple[int, health.aio.HealthServicer], tls_dir: Path
) -> None:
    port, _ = server
    assert await _probe(tls_dir, port, "grader", "liveness", "mutual") != 0
    assert await _probe(tls_dir, port, "collector", "liveness", "none") != 0
    assert await _probe(tls_dir, port, "collector", "no.such.Service", "mutual") != 0


def test_compose_file_is_valid_yaml_for_the_probe_anchor() -> None:
    # The Compose healthchecks reference the script through a YAML alias; it must resolve to the same text.
    loaded = yaml.safe_load((K8S.parent / "docker-compose.yml").read_text())
    assert loaded["x-probe"] == _script()
