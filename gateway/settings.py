"""GatewaySettings: environment variables with the prefix ``QF_GATEWAY_`` (nested groups use ``__``).

The access policy has no default: a gateway without one would either refuse everybody or, worse, trust everybody,
so start-up fails with a message naming ``QF_GATEWAY_ACCESS_POLICY`` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from qingfeng.settings import (
    ClientTlsSettings,
    DatabaseSettings,
    GrpcSettings,
    ServiceSettings,
    service_settings_config,
)

__all__ = [
    "GatewayConfigError",
    "GatewaySettings",
    "HttpSettings",
    "LimitSettings",
    "RateLimitSettings",
    "load_settings",
]

ENV_PREFIX = "QF_GATEWAY_"


class GatewayConfigError(ValueError):
    """The gateway cannot start with this configuration; the message names the environment variable."""


class HttpSettings(BaseModel):
    """The console's HTTP listener (uvicorn, same event loop as gRPC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # HTTPS certificate and key (PEM); without them the console is served over plain HTTP only when ``plaintext``.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    plaintext: bool = False
    # Console sessions (gateway/sessions.py): ended after this long without a call, and this long after sign-in.
    session_idle_s: float = Field(default=900.0, gt=0)
    session_max_s: float = Field(default=8 * 3600.0, gt=0)


class RateLimitSettings(BaseModel):
    """Per-identity token bucket shared by gRPC and HTTP calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)
    # Items of client streams (ImportPosts), per identity apart from calls; an item waits at most item_wait_s.
    stream_items_per_s: float = Field(default=500.0, gt=0)
    stream_items_burst: int = Field(default=1000, ge=1)
    stream_item_wait_s: float = Field(default=1.0, ge=0)


class LimitSettings(BaseModel):
    """Abuse limits of the guard and the proxy (gateway/ratelimit.py, gateway/proxy.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Failed authentications per peer address and window; then the address is refused until the window ends.
    failed_auth_max: int = Field(default=10, ge=1)
    failed_auth_window_s: float = Field(default=60.0, gt=0)
    # Calls in flight per identity (streams among them) and over the whole gateway.
    concurrent_calls_per_identity: int = Field(default=32, ge=1)
    concurrent_streams_per_identity: int = Field(default=4, ge=1)
    concurrent_calls_per_server: int = Field(default=512, ge=1)
    # Deadline of an upstream call whose caller set none.
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    # How often (at most) the access policy file is checked for changes; SIGHUP re-reads it at once.
    policy_check_interval_s: float = Field(default=1.0, gt=0)
    # Largest request message (and stream item) a partner may send upstream, and per-method exceptions
    # (full method path -> bytes; as JSON in QF_GATEWAY_LIMITS__METHOD_MAX_REQUEST_BYTES).
    max_request_bytes: int = Field(default=512 * 1024, ge=1)
    method_max_request_bytes: dict[str, int] = Field(default_factory=dict)


class GatewaySettings(ServiceSettings):
    model_config: ClassVar[SettingsConfigDict] = service_settings_config(ENV_PREFIX)

    grpc: GrpcSettings = GrpcSettings(port=50051)
    http: HttpSettings = HttpSettings()
    # YAML with hashed tokens and grants (gateway/access.py); `qingfeng up` writes .qingfeng/access.yaml.
    access_policy: Path
    # How the gateway connects to the services: TLS verified against this CA (plaintext only when chosen).
    upstream_tls: ClientTlsSettings = ClientTlsSettings()
    # The gateway's own database, console sessions (gateway/session_rows.py): SQLite for one node; replicas behind
    # one address share one PostgreSQL database (postgresql+asyncpg://…). Variable: QF_GATEWAY_DATABASE__URL.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/gateway.db"))
    # Upstream services the gateway proxies to (host:port).
    collector_addr: str = "127.0.0.1:50061"
    grader_addr: str = "127.0.0.1:50062"
    coordinator_addr: str = "127.0.0.1:50063"
    publisher_addr: str = "127.0.0.1:50064"
    rate_limit: RateLimitSettings = RateLimitSettings()
    limits: LimitSettings = LimitSettings()
    # Largest page a search may ask for; larger page_size values are clamped to it.
    search_max_page_size: int = Field(default=100, ge=1, le=1000)
    # HMAC key of search page tokens (at least 16 characters); every replica behind one address needs the same.
    # Unset: a random key per process (tokens die with the process).
    search_page_token_key: SecretStr | None = Field(default=None, min_length=16)
    # How long a post search's point in time stays open after each page (Elasticsearch time units).
    search_pit_keep_alive: str = Field(default="2m", pattern=r"^[1-9]\d*(s|m)$")


def _variable(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part) for part in loc).upper()


def load_settings() -> GatewaySettings:
    """Read the settings from the environment, turning validation errors into one line per variable."""
    try:
        return GatewaySettings()  # type: ignore[call-arg]  # access_policy comes from the environment
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = _variable(tuple(error["loc"]))
            if error["type"] == "missing" and name == _variable(("access_policy",)):
                problems.append(
                    f"{name} is not set: point it at the access policy YAML "
                    "(`qingfeng up` writes .qingfeng/access.yaml and passes it)"
                )
            else:
                problems.append(f"{name}: {error['msg']}")
        raise GatewayConfigError("; ".join(problems)) from exc
