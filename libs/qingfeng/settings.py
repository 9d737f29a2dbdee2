"""Settings groups shared by every process.

Each process owns one ``BaseSettings`` subclass with its own prefix (``QF_GRADER_``, ``QF_GATEWAY_`` …) that nests
these groups, so a variable reads e.g. ``QF_GRADER_KAFKA__BOOTSTRAP_SERVERS``. Settings are built once in
``__main__`` before the event loop starts, kept frozen and passed down; nothing reads the environment elsewhere.
Secrets (tokens, database passwords) are ``SecretStr`` and may come from a secrets directory (``QF_SECRETS_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ClientTlsSettings",
    "DatabaseSettings",
    "ElasticsearchSettings",
    "GrpcSettings",
    "IdentitySettings",
    "KafkaSettings",
    "LogSettings",
    "ServiceSettings",
    "TelemetrySettings",
    "service_settings_config",
]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    """Where the brokers are and how topics are made."""

    bootstrap_servers: str = "127.0.0.1:19092"
    client_id: str = "qingfeng"
    # Partitions and replication used when a service creates its topics at start.
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Largest record a producer sends; larger payloads are dead-lettered with a reason instead.
    max_request_size_bytes: int = Field(default=1_048_576, ge=1024)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # Client authentication and encryption (qingfeng.kafka.security builds the client arguments from these).
    # PLAINTEXT is for the local stack only; deployments use SASL_SSL with SCRAM (deploy/README.md).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # CA bundle that signed the brokers' certificates; None = the system's trust store.
    ssl_cafile: Path | None = None


class ElasticsearchSettings(_Group):
    """The search cluster and the index naming scheme."""

    url: str = "http://127.0.0.1:19200"
    username: str | None = None
    password: SecretStr | None = None
    # CA bundle that signed the cluster's HTTPS certificate (an https:// url); None = the system's trust store.
    ca_file: Path | None = None
    # Every index and alias this suite owns starts with this prefix, so tests and tenants can be separated.
    index_prefix: str = "qingfeng"
    request_timeout_s: float = Field(default=30.0, gt=0)


class DatabaseSettings(_Group):
    """SQL store: SQLite is the embedded default, PostgreSQL is supported."""

    url: SecretStr = SecretStr("sqlite+aiosqlite:///./.qingfeng/qingfeng.db")
    echo: bool = False


class TelemetrySettings(_Group):
    """OpenTelemetry: spans are recorded (sampled), exported only when an endpoint is configured."""

    # Unset: each process names itself (qingfeng-grader …). A nested group set from the environment is rebuilt from
    # the class defaults, so a per-process default here would be lost as soon as any TELEMETRY__ variable is set.
    service_name: str | None = None
    otlp_endpoint: str | None = None
    # Share of new traces exported; a call or record that arrives with a sampled parent is always exported, and so are
    # alerts and errors at any ratio (qingfeng.trace_keep). 0.01: measured, 0.1 costs the collector ~23 % CPU per post
    # (exporting a span costs ~0.2 ms of CPU in Python), 0.01 ~2 % (README, bench/bench_tracing_cost.py).
    sample_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    # Write finished spans to the log as JSON lines (debugging without a collector).
    console_export: bool = False


class LogSettings(_Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class GrpcSettings(_Group):
    """The gRPC listener. TLS is on when ``tls_cert_file`` and ``tls_key_file`` are set; plaintext must be chosen
    explicitly (``plaintext=true``) and is logged as a warning at start."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    # Seconds that running calls get to finish after SIGTERM.
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Server certificate chain and private key (PEM files).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # CA bundle that client certificates must chain to (with ``tls_client_auth=require`` or ``mtls_port``).
    tls_ca_file: Path | None = None
    # "require": every caller of ``port`` presents a certificate of ``tls_ca_file``. grpcio cannot ask for one
    # optionally, so a server that takes tokens and certificates listens twice: ``port`` and ``mtls_port``.
    tls_client_auth: Literal["none", "require"] = "none"
    # A second listener that requires client certificates of ``tls_ca_file`` (partners identified by certificate).
    mtls_port: int | None = Field(default=None, ge=0, le=65535)
    # Serve without TLS (local debugging, tests inside one process); never in a deployment.
    plaintext: bool = False


class ClientTlsSettings(_Group):
    """How a process connects to gRPC servers: the CA that signed their certificates, and optionally a client
    certificate for mutual TLS. ``plaintext=true`` connects without TLS (only to a plaintext server)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    plaintext: bool = False


class IdentitySettings(_Group):
    """How a process proves who it is and whom it believes (``qingfeng.rpc.credentials``).

    A service needs ``trust_file`` (it refuses to start without one: it believes no caller it cannot verify). A
    process that calls services itself (the gateway, the CLI's import) needs ``issuer`` and ``signing_key_file``.
    """

    trust_file: Path | None = None
    issuer: str | None = None
    signing_key_file: Path | None = None
    # Seconds a minted credential lives; short, because it is bound to one call's service and method.
    credential_ttl_s: float = Field(default=30.0, gt=0, le=300)


def service_settings_config(prefix: str) -> SettingsConfigDict:
    """The shared pydantic-settings config for a process whose variables start with ``prefix``."""
    secrets_dir = os.environ.get("QF_SECRETS_DIR")
    return SettingsConfigDict(
        env_prefix=prefix,
        env_nested_delimiter="__",
        # A variable such as QF_GRADER_GRPC__TLS_CERT_FILE updates the process's default group (port 50062 …) instead
        # of rebuilding the group from the class defaults (port 0).
        nested_model_default_partial_update=True,
        frozen=True,
        extra="forbid",
        secrets_dir=secrets_dir if secrets_dir and Path(secrets_dir).is_dir() else None,
    )


class ServiceSettings(BaseSettings):
    """Base for each process's settings: the groups every service has. Subclasses set ``model_config``."""

    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_")

    kafka: KafkaSettings = KafkaSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    log: LogSettings = LogSettings()
    grpc: GrpcSettings = GrpcSettings()
    identity: IdentitySettings = IdentitySettings()
    # Prometheus /metrics (qingfeng.metrics: consumer lag, the collector's produce budget) on metrics_host:port;
    # off when unset. Loopback by default: a scraper runs beside the process.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    def describe(self) -> dict[str, Any]:
        """The effective settings with secrets masked, for the start-up log line."""
        return self.model_dump(mode="json")
