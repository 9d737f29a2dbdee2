"""Identity keys and TLS certificates for a local suite: who signs credentials, which services believe them, and
the local CA every gRPC and HTTPS listener's certificate chains to (``local_ca.py``).

``provision_identities(state)`` runs from `qingfeng up` before any process starts. On the first run it writes, under
``<state>/pki/`` (mode 0700): one Ed25519 private key per signer in ``keys/<name>.pem`` (mode 0600) and
``trust.yaml``, the public half every service reads through ``QF_<SERVICE>_IDENTITY__TRUST_FILE``. Later runs keep the
keys; ``trust.yaml`` is rewritten from them so a changed grant list takes effect (services re-read it live).

Signers: ``gateway`` asserts the partner identities it authenticated; ``ops-import`` is the operator's direct
``qingfeng import --collector`` and may call only ``ImportPosts``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from qingfeng.cli.local_ca import ensure_ca, ensure_leaf
from qingfeng.rpc.credentials import generate_key, public_pem, trust_yaml
from qingfeng.v1 import source_pb2

__all__ = [
    "GATEWAY_ISSUER",
    "IMPORT_ISSUER",
    "InternalSigner",
    "ca_file",
    "key_file",
    "provision_identities",
    "security_environment",
]

GATEWAY_ISSUER = "gateway"
IMPORT_ISSUER = "ops-import"
PKI_DIR = "pki"
TRUST_FILE = "trust.yaml"
SERVICE_PREFIXES = ("QF_COLLECTOR_", "QF_GRADER_", "QF_COORDINATOR_", "QF_PUBLISHER_")
GATEWAY_PREFIX = "QF_GATEWAY_"
# Partners with a client certificate of the local CA call here; bearer tokens go to the gateway's main port.
GATEWAY_MTLS_PORT = 50052


@dataclass(frozen=True)
class InternalSigner:
    """A signer of the local suite: its name, whether it asserts others' identities, and its exact grants."""

    name: str
    asserts_identities: bool = False
    grants: tuple[str, ...] = ()


def _method(module: object, service: str, name: str) -> str:
    descriptor = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
    return f"/{descriptor.full_name}/{descriptor.methods_by_name[name].name}"


def default_signers() -> tuple[InternalSigner, ...]:
    return (
        InternalSigner(GATEWAY_ISSUER, asserts_identities=True),
        InternalSigner(IMPORT_ISSUER, grants=(_method(source_pb2, "CollectorService", "ImportPosts"),)),
    )


def key_file(state: Path, name: str) -> Path:
    return state / PKI_DIR / "keys" / f"{name}.pem"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def provision_identities(state: Path, signers: Sequence[InternalSigner] | None = None) -> Path:
    """Make the keys that are missing and (re)write the trust file; returns the trust file's path."""
    entries = []
    for signer in signers or default_signers():
        path = key_file(state, signer.name)
        if not path.is_file():
            key = generate_key()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _write_private(path, pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        entries.append((signer.name, public_pem(loaded), signer.asserts_identities, signer.grants))  # type: ignore[arg-type]
    trust = state / PKI_DIR / TRUST_FILE
    tmp = trust.with_suffix(".tmp")
    tmp.write_text(trust_yaml(entries), encoding="utf-8")
    os.replace(tmp, trust)
    return trust


def ca_file(state: Path) -> Path:
    """The local CA certificate that clients of the suite (CLI, tests, a browser) verify its servers against."""
    return ensure_ca(state / PKI_DIR).cert


def security_environment(state: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Variables that point each process at the provisioned identity files and TLS certificates, except those the
    operator set already: services serve TLS and believe the trust file; the gateway serves gRPC and HTTPS with TLS
    (client certificates of the local CA are verified on a ``GRPC__MTLS_PORT`` listener when one is set, as
    `qingfeng up` does with ``GATEWAY_MTLS_PORT``), verifies the services against the CA and signs credentials with
    its key."""
    trust = provision_identities(state)
    pki = state / PKI_DIR
    ca = ensure_ca(pki)
    out: dict[str, str] = {}
    for prefix in (*SERVICE_PREFIXES, GATEWAY_PREFIX):
        leaf = ensure_leaf(pki, prefix.removeprefix("QF_").rstrip("_").lower(), ca=ca)
        out[f"{prefix}GRPC__TLS_CERT_FILE"] = str(leaf.cert)
        out[f"{prefix}GRPC__TLS_KEY_FILE"] = str(leaf.key)
        if prefix != GATEWAY_PREFIX:
            out[f"{prefix}IDENTITY__TRUST_FILE"] = str(trust)
    gateway_leaf = ensure_leaf(pki, "gateway", ca=ca)
    out["QF_GATEWAY_GRPC__TLS_CA_FILE"] = str(ca.cert)
    out["QF_GATEWAY_HTTP__TLS_CERT_FILE"] = str(gateway_leaf.cert)
    out["QF_GATEWAY_HTTP__TLS_KEY_FILE"] = str(gateway_leaf.key)
    out["QF_GATEWAY_UPSTREAM_TLS__CA_FILE"] = str(ca.cert)
    out["QF_GATEWAY_IDENTITY__ISSUER"] = GATEWAY_ISSUER
    out["QF_GATEWAY_IDENTITY__SIGNING_KEY_FILE"] = str(key_file(state, GATEWAY_ISSUER))
    return {key: value for key, value in out.items() if key not in env}
