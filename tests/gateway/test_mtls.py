"""Mutual TLS at the guard, on a real TLS server on loopback: a partner identified by its client certificate alone,
a token deciding when one is sent, unknown certificates and plaintext clients refused.

grpcio (1.85) can only require client certificates or not ask for them at all (``require_client_auth=False`` sends
no CertificateRequest, whatever ``root_certificates`` says): a port that identifies partners by certificate must
require one. The last test pins that down, so a grpcio that starts asking optionally is noticed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from qingfeng.v1 import case_pb2, case_pb2_grpc

from gateway.access import authenticate, certificate_sha256, hash_token, parse_access_policy
from gateway.interceptors import GuardInterceptor, current_identity
from gateway.ratelimit import RateLimiter

LIST_TASKS = "/qingfeng.v1.CoordinatorService/ListTasks"


@dataclass(frozen=True)
class _Pem:
    cert: bytes
    key: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, *, server: bool = False
) -> tuple[_Pem, x509.Name, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    elif server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    pem = _Pem(
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return pem, _name(subject), key


@dataclass(frozen=True)
class _Pki:
    ca: _Pem
    server: _Pem
    partner: _Pem
    stranger: _Pem


@pytest.fixture(scope="module")
def pki() -> _Pki:
    ca, ca_name, ca_key = _issue("qingfeng test CA", None)
    server, _, _ = _issue("gateway", (ca_name, ca_key), server=True)
    partner, _, _ = _issue("case-management partner", (ca_name, ca_key))
    stranger, _, _ = _issue("somebody else", (ca_name, ca_key))
    return _Pki(ca=ca, server=server, partner=partner, stranger=stranger)


class _Coordinator(case_pb2_grpc.CoordinatorServiceServicer):
    async def ListTasks(self, request: case_pb2.ListTasksRequest, context: grpc.aio.ServicerContext) -> object:
        identity = current_identity.get()
        assert identity is not None
        return case_pb2.ListTasksResponse(tasks=[case_pb2.Task(id="t1", description=identity.name)])


async def _serve(pki: _Pki, *, require: bool) -> tuple[grpc.aio.Server, int]:
    policy = parse_access_policy(
        f"""
version: mtls-test
identities:
  - name: cm-mtls
    agency: case_management
    client_cert_sha256: "{certificate_sha256(pki.partner.cert)}"
    grants: ["{LIST_TASKS}"]
  - name: police-token
    agency: police_cyber
    token_sha256: "{hash_token("police-secret")}"
    grants: ["{LIST_TASKS}"]
"""
    )
    server = grpc.aio.server(interceptors=[GuardInterceptor(policy, RateLimiter(rate_per_s=100.0, burst=100))])
    case_pb2_grpc.add_CoordinatorServiceServicer_to_server(_Coordinator(), server)
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key, pki.server.cert)], root_certificates=pki.ca.cert, require_client_auth=require
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port


@pytest.fixture
async def tls_port(pki: _Pki) -> AsyncIterator[int]:
    """A port requiring a client certificate that chains to the CA."""
    server, port = await _serve(pki, require=True)
    try:
        yield port
    finally:
        await server.stop(None)


async def _call(
    port: int, pki: _Pki, client: _Pem | None, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[grpc.StatusCode, str]:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = case_pb2_grpc.CoordinatorServiceStub(channel)
        try:
            reply = await stub.ListTasks(case_pb2.ListTasksRequest(), metadata=metadata, timeout=5)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
    return grpc.StatusCode.OK, reply.tasks[0].description


async def test_a_partner_is_identified_by_its_client_certificate(tls_port: int, pki: _Pki) -> None:
    assert await _call(tls_port, pki, pki.partner) == (grpc.StatusCode.OK, "cm-mtls")


async def test_a_token_decides_when_one_is_sent(tls_port: int, pki: _Pki) -> None:
    police = (("authorization", "Bearer police-secret"),)
    assert await _call(tls_port, pki, pki.partner, police) == (grpc.StatusCode.OK, "police-token")
    code, _ = await _call(tls_port, pki, pki.partner, (("authorization", "Bearer forged"),))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_an_unknown_certificate_is_unauthenticated(tls_port: int, pki: _Pki) -> None:
    # Signed by the same CA, so the handshake succeeds: only the policy decides, and it does not know it.
    assert await _call(tls_port, pki, pki.stranger) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown client certificate",
    )


async def test_no_certificate_fails_the_handshake_on_a_port_that_requires_one(tls_port: int, pki: _Pki) -> None:
    code, _ = await _call(tls_port, pki, None, (("authorization", "Bearer police-secret"),))
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_grpcio_does_not_ask_for_a_certificate_unless_it_requires_one(pki: _Pki) -> None:
    server, port = await _serve(pki, require=False)
    try:
        code, message = await _call(port, pki, pki.partner)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "client certificate" in message
        police = (("authorization", "Bearer police-secret"),)
        assert await _call(port, pki, None, police) == (grpc.StatusCode.OK, "police-token")
    finally:
        await server.stop(None)


async def test_a_plaintext_client_is_refused(tls_port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_port}") as channel:
        stub = case_pb2_grpc.CoordinatorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTasks(
                case_pb2.ListTasksRequest(), metadata=(("authorization", "Bearer police-secret"),), timeout=3
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_fingerprint_is_the_sha256_of_the_der_certificate(pki: _Pki) -> None:
    der = x509.load_pem_x509_certificate(pki.partner.cert).public_bytes(serialization.Encoding.DER)
    expected = hashes.Hash(hashes.SHA256())
    expected.update(der)
    assert certificate_sha256(pki.partner.cert) == expected.finalize().hex()
    policy = parse_access_policy(
        f"version: x\nidentities:\n  - name: a\n    agency: analyst\n    client_cert_sha256: "
        f'"{certificate_sha256(pki.partner.cert)}"\n    grants: ["{LIST_TASKS}"]\n'
    )
    assert authenticate(policy, None, cert_sha256=certificate_sha256(pki.partner.cert.decode())).name == "a"
