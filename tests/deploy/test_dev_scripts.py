"""The scripts that make Compose's certificates and secrets: run them into a temporary folder and use what they made.

The TLS handshakes run on loopback only; the settings are built by the real settings classes from the generated
secrets folder, which is what each container does with QF_SECRETS_DIR.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from qingfeng.rpc.credentials import load_signer, parse_trust

from gateway.access import load_access_policy
from tests.deploy.conftest import run_script
from tests.deploy.manifests import PROCESSES, compose, settings_class


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("secrets") / "secrets"
    run_script("secrets/make-dev-secrets.sh", out)
    yield out


def test_every_file_compose_mounts_is_generated(certs: Path, secrets_dir: Path) -> None:
    for name, secret in compose()["secrets"].items():
        relative = Path(secret["file"])
        base = certs if relative.parts[0] == "certs" else secrets_dir
        generated = base.joinpath(*relative.parts[2 if relative.parts[0] == "certs" else 1 :])
        assert generated.is_file() and generated.stat().st_size > 0, f"{name}: {relative} not generated"


def test_folders_are_private_and_the_ca_key_is_never_readable_by_others(certs: Path, secrets_dir: Path) -> None:
    assert certs.stat().st_mode & 0o077 == 0
    assert secrets_dir.stat().st_mode & 0o077 == 0
    assert (certs / "ca.key").stat().st_mode & 0o077 == 0


def test_kafka_keystore_is_key_then_chain(certs: Path) -> None:
    text = (certs / "kafka-keystore.pem").read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM keystore requires
    key = serialization.load_pem_private_key(text.encode(), password=None)
    chain = x509.load_pem_x509_certificates(text.encode())
    assert len(chain) == 2
    assert chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kafka" in names.get_values_for_type(x509.DNSName)


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> bytes:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await reader.readexactly(2))
            await writer.drain()
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=hostname)
        writer.write(b"ok")
        await writer.drain()
        data = await asyncio.wait_for(reader.readexactly(2), 5)
        writer.close()
        return data
    finally:
        listener.close()
        await listener.wait_closed()


def _server(certs: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs / "ca.crt")
    context.load_cert_chain(certs / f"{name}.crt", certs / f"{name}.key")
    context.verify_mode = ssl.CERT_REQUIRED  # as the services: only a client certificate from the CA gets in
    return context


def _client(certs: Path, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs / "ca.crt")
    if name is not None:
        context.load_cert_chain(certs / f"{name}.crt", certs / f"{name}.key")
    return context


async def test_gateway_certificate_opens_a_mutual_tls_connection_to_a_service(certs: Path) -> None:
    assert await _handshake(_server(certs, "collector"), _client(certs, "gateway"), "collector") == b"ok"


async def test_a_service_certificate_is_refused_for_another_name(certs: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(_server(certs, "collector"), _client(certs, "gateway"), "grader")


async def test_a_client_without_a_certificate_gets_no_connection(certs: Path) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        await _handshake(_server(certs, "grader"), _client(certs, None), "grader")


def _settings(process: str, secrets_dir: Path) -> Any:
    extra: dict[str, Any] = {"_secrets_dir": secrets_dir}
    if process == "gateway":
        extra["access_policy"] = secrets_dir / "access.yaml"
    return settings_class(process)(**extra)


@pytest.mark.parametrize("process", list(PROCESSES))
def test_each_process_reads_its_credentials_from_the_generated_files(process: str, secrets_dir: Path) -> None:
    settings = _settings(process, secrets_dir)
    assert settings.kafka.sasl_username == f"qingfeng-{process}"
    kafka_password = (secrets_dir / f"kafka_{process}_password").read_text().strip()
    assert settings.kafka.sasl_password.get_secret_value() == kafka_password
    if (secrets_dir / f"es_{process}_password").exists():
        assert settings.elasticsearch.username == f"qingfeng-{process}"
        es_password = (secrets_dir / f"es_{process}_password").read_text().strip()
        assert settings.elasticsearch.password.get_secret_value() == es_password
    if process != "gateway":
        db_password = (secrets_dir / "db_password").read_text().strip()
        assert f"qingfeng:{db_password}@postgres:5432/" in settings.database.url.get_secret_value()


def test_the_gateway_key_signs_what_the_trust_file_believes(secrets_dir: Path) -> None:
    trust = parse_trust((secrets_dir / "trust.yaml").read_text(), source="trust.yaml")
    signer = load_signer("gateway", secrets_dir / "gateway_identity.pem")
    method = "/qingfeng.v1.CollectorService/GetTip"
    caller = trust.verify(signer.mint(method, principal="analyst", agency="opinion_office"), method)
    assert (caller.principal, caller.issuer) == ("analyst", "gateway")
    assert load_access_policy(secrets_dir / "access.yaml") is not None


def test_a_second_run_keeps_passwords_and_keys(secrets_dir: Path) -> None:
    names = ["kafka_grader_password", "db_password", "gateway_identity.pem", "access.yaml", "collector_tip_key"]
    before = {n: (secrets_dir / n).read_bytes() for n in names}
    run_script("secrets/make-dev-secrets.sh", secrets_dir)
    assert {n: (secrets_dir / n).read_bytes() for n in names} == before
