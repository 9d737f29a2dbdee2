"""The pinned connection keeps TLS honest: the guard connects to the checked IP, and the certificate is still checked
against the host name (SNI), not the IP. A loopback HTTPS server with a certificate for ``source.test`` only, from a
throwaway CA; names resolve through a table and the socket layer records every attempt (see test_ssrf_guard.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.collector.fetch import AddressPolicy, Fetcher, FetcherConfig, Politeness, TransportFailure
from tests.services.collector.integration.test_ssrf_guard import NamedResolver, RecordingBackend

NO_ROBOTS = Politeness(max_attempts=1, respect_robots=False)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for the DNS name source.test (no IP address in it), as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ssrf test CA"))
        .issuer_name(_name("ssrf test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("source.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("source.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


@pytest.fixture
async def https_site(tmp_path: Path) -> AsyncIterator[tuple[int, Path, list[str]]]:
    ca, cert, key = _pki(tmp_path)
    hosts: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        hosts.append(request.headers["Host"])
        return web.Response(text="tls ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    try:
        yield runner.addresses[0][1], ca, hosts
    finally:
        await runner.cleanup()


def _fetcher(ca: Path, backend: RecordingBackend) -> Fetcher:
    resolver = NamedResolver({"source.test": ["127.0.0.1"], "alias.test": ["127.0.0.1"]})
    config = FetcherConfig(
        default_min_interval_s=0.0,
        connect_timeout_s=2,
        read_timeout_s=5,
        address_policy=AddressPolicy.parse(["source.test", "alias.test", "127.0.0.1"]),
    )
    client_context = ssl.create_default_context(cafile=str(ca))
    return Fetcher(config, resolver=resolver, network_backend=backend, ssl_context=client_context)


async def test_tls_to_the_pinned_ip_is_verified_against_the_host_name(
    https_site: tuple[int, Path, list[str]],
) -> None:
    port, ca, hosts = https_site
    backend = RecordingBackend()
    async with _fetcher(ca, backend) as fetcher:
        response = await fetcher.get(f"https://source.test:{port}/ok", politeness=NO_ROBOTS)
        assert response.body == b"tls ok"
        # Same IP, but a name the certificate does not cover: the handshake fails, so SNI/verification used the
        # name and not the pinned address.
        with pytest.raises(TransportFailure, match="CERTIFICATE_VERIFY_FAILED"):
            await fetcher.get(f"https://alias.test:{port}/ok", politeness=NO_ROBOTS)
        with pytest.raises(TransportFailure, match="CERTIFICATE_VERIFY_FAILED"):
            await fetcher.get(f"https://127.0.0.1:{port}/ok", politeness=NO_ROBOTS)
    assert hosts == [f"source.test:{port}"]
    assert {host for host, _ in backend.attempts} == {"127.0.0.1"}
    assert all(ipaddress.ip_address(host) for host, _ in backend.attempts)
