"""TLS for gRPC, server and client side, from settings: one place that reads certificate files.

A server serves TLS when its certificate and key are configured, and can require client certificates (mutual TLS)
that chain to ``tls_ca_file`` on its port, or on a second port (``mtls_port``) beside a token-only one. Plaintext is
an explicit choice (``plaintext=true``) and is logged as a warning.
A client verifies the server against ``ca_file`` and presents ``cert_file``/``key_file`` when given.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc

from qingfeng.settings import ClientTlsSettings, GrpcSettings

__all__ = [
    "TlsConfigError",
    "aio_channel",
    "channel_credentials",
    "mtls_server_credentials",
    "server_credentials",
    "sync_channel",
]

log = logging.getLogger(__name__)


class TlsConfigError(ValueError):
    """A TLS setting names a file that cannot be read, or settings that do not go together."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what} {path}: {exc.strerror}") from exc


def server_credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``, or None for a plaintext server (only when ``plaintext`` is set)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        if settings.tls_cert_file or settings.tls_key_file:
            raise TlsConfigError("GRPC__TLS_CERT_FILE and GRPC__TLS_KEY_FILE go together")
        if not settings.plaintext:
            raise TlsConfigError(
                "no TLS certificate: set GRPC__TLS_CERT_FILE and GRPC__TLS_KEY_FILE "
                "(or GRPC__PLAINTEXT=true to serve without TLS, never in a deployment)"
            )
        return None
    if settings.plaintext:
        raise TlsConfigError("GRPC__PLAINTEXT=true contradicts GRPC__TLS_CERT_FILE")
    pair = (_read(settings.tls_key_file, "GRPC__TLS_KEY_FILE"), _read(settings.tls_cert_file, "GRPC__TLS_CERT_FILE"))
    if settings.tls_client_auth == "none":
        return grpc.ssl_server_credentials([pair])
    if settings.tls_ca_file is None:
        raise TlsConfigError("GRPC__TLS_CLIENT_AUTH needs GRPC__TLS_CA_FILE (the CA client certificates chain to)")
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=_read(settings.tls_ca_file, "GRPC__TLS_CA_FILE"),
        require_client_auth=True,
    )


def mtls_server_credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    """Credentials for the ``mtls_port`` listener (client certificates required), or None when it is not set."""
    if settings.mtls_port is None:
        return None
    if settings.tls_cert_file is None or settings.tls_key_file is None or settings.tls_ca_file is None:
        raise TlsConfigError("GRPC__MTLS_PORT needs GRPC__TLS_CERT_FILE, GRPC__TLS_KEY_FILE and GRPC__TLS_CA_FILE")
    pair = (_read(settings.tls_key_file, "GRPC__TLS_KEY_FILE"), _read(settings.tls_cert_file, "GRPC__TLS_CERT_FILE"))
    return grpc.ssl_server_credentials(
        [pair], root_certificates=_read(settings.tls_ca_file, "GRPC__TLS_CA_FILE"), require_client_auth=True
    )


def channel_credentials(tls: ClientTlsSettings) -> grpc.ChannelCredentials | None:
    """Credentials for a secure channel, or None when ``plaintext`` is chosen."""
    if tls.plaintext:
        return None
    if (tls.cert_file is None) != (tls.key_file is None):
        raise TlsConfigError("a client certificate needs both cert_file and key_file")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file, "TLS CA_FILE") if tls.ca_file else None,
        private_key=_read(tls.key_file, "TLS KEY_FILE") if tls.key_file else None,
        certificate_chain=_read(tls.cert_file, "TLS CERT_FILE") if tls.cert_file else None,
    )


def aio_channel(address: str, tls: ClientTlsSettings, **kwargs: Any) -> grpc.aio.Channel:
    """An asyncio channel to ``address``: TLS unless ``tls.plaintext``."""
    credentials = channel_credentials(tls)
    if credentials is None:
        return grpc.aio.insecure_channel(address, **kwargs)
    return grpc.aio.secure_channel(address, credentials, **kwargs)


def sync_channel(address: str, tls: ClientTlsSettings, **kwargs: Any) -> grpc.Channel:
    """A blocking channel to ``address`` (CLI tools): TLS unless ``tls.plaintext``."""
    credentials = channel_credentials(tls)
    if credentials is None:
        return grpc.insecure_channel(address, **kwargs)
    return grpc.secure_channel(address, credentials, **kwargs)
