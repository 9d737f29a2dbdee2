"""TLS on gRPC from settings: handshakes with the local CA, plaintext refused both ways, mutual TLS enforced."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from qingfeng.cli.local_ca import ensure_ca, ensure_leaf
from qingfeng.rpc import TlsConfigError, aio_channel, build_server
from qingfeng.settings import ClientTlsSettings, GrpcSettings


async def _check(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ensure_leaf(tmp_path, "server")
    ensure_leaf(tmp_path, "client")
    return tmp_path


def _tls(pki: Path, **extra: object) -> GrpcSettings:
    return GrpcSettings(
        port=0,
        tls_cert_file=pki / "certs/server.pem",
        tls_key_file=pki / "certs/server.key",
        **extra,  # type: ignore[arg-type]
    )


async def test_a_server_without_certificate_or_explicit_plaintext_refuses_to_start() -> None:
    with pytest.raises(TlsConfigError, match="GRPC__TLS_CERT_FILE"):
        build_server(GrpcSettings(port=0))
    with pytest.raises(TlsConfigError, match="go together"):
        build_server(GrpcSettings(port=0, tls_cert_file=Path("/nonexistent.pem")))


async def test_tls_handshake_with_the_local_ca_and_plaintext_client_refused(pki: Path) -> None:
    server = build_server(_tls(pki))
    await server.server.start()
    await server.set_serving(True)
    try:
        address = f"127.0.0.1:{server.port}"
        async with aio_channel(address, ClientTlsSettings(ca_file=ensure_ca(pki).cert)) as channel:
            assert await _check(channel) == health_pb2.HealthCheckResponse.SERVING
        async with aio_channel(address, ClientTlsSettings(plaintext=True)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _check(channel)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        other_ca = ensure_ca(pki / "other")  # a server certificate from another CA is not believed
        async with aio_channel(address, ClientTlsSettings(ca_file=other_ca.cert)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _check(channel)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.server.stop(None)


async def test_mutual_tls_requires_a_client_certificate_of_the_ca(pki: Path) -> None:
    ca = ensure_ca(pki)
    server = build_server(_tls(pki, tls_ca_file=ca.cert, tls_client_auth="require"))
    await server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        client = ClientTlsSettings(
            ca_file=ca.cert, cert_file=pki / "certs/client.pem", key_file=pki / "certs/client.key"
        )
        async with aio_channel(address, client) as channel:
            assert await _check(channel) == health_pb2.HealthCheckResponse.NOT_SERVING  # answered: handshake done
        async with aio_channel(address, ClientTlsSettings(ca_file=ca.cert)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _check(channel)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.server.stop(None)


async def test_liveness_is_serving_while_readiness_is_not(pki: Path) -> None:
    server = build_server(_tls(pki))
    await server.start()
    try:
        async with aio_channel(f"127.0.0.1:{server.port}", ClientTlsSettings(ca_file=ensure_ca(pki).cert)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            alive = await stub.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=5)
            ready = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert alive.status == health_pb2.HealthCheckResponse.SERVING
        assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.server.stop(None)


async def test_a_second_port_requires_client_certificates_while_the_first_takes_any_tls_client(pki: Path) -> None:
    ca = ensure_ca(pki)
    server = build_server(_tls(pki, tls_ca_file=ca.cert, mtls_port=0))
    await server.start()
    try:
        assert server.mtls_port and server.mtls_port != server.port
        anonymous = ClientTlsSettings(ca_file=ca.cert)
        with_cert = ClientTlsSettings(
            ca_file=ca.cert, cert_file=pki / "certs/client.pem", key_file=pki / "certs/client.key"
        )
        async with aio_channel(f"127.0.0.1:{server.port}", anonymous) as channel:
            await _check(channel)
        async with aio_channel(f"127.0.0.1:{server.mtls_port}", with_cert) as channel:
            await _check(channel)
        async with aio_channel(f"127.0.0.1:{server.mtls_port}", anonymous) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _check(channel)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.server.stop(None)


async def test_the_mutual_tls_port_needs_a_ca() -> None:
    with pytest.raises(TlsConfigError, match="MTLS_PORT"):
        build_server(GrpcSettings(port=0, plaintext=True, mtls_port=0))
