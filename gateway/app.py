"""The gateway's composition root: the access policy, upstream channels, the gRPC server and the HTTP console.

One gRPC server serves, behind the ``GuardInterceptor`` (authn, authz, rate limit, audit): the pass-through proxy
for the four services' APIs, the gateway's own ``SearchService``, health and reflection. The console's HTTP app runs
under uvicorn as a background loop of the same event loop and stops with it. The gateway reports SERVING once
Kafka and Elasticsearch answer; the upstream services are not required for that (a call to a service that is down
fails with UNAVAILABLE, relayed by the proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn
from google.protobuf.descriptor import ServiceDescriptor
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from qingfeng.elastic import create_client
from qingfeng.readiness import elasticsearch_ready, kafka_ready
from qingfeng.rpc import (
    CredentialSigner,
    GrpcServer,
    ReadinessCheck,
    TlsConfigError,
    TrustConfigError,
    aio_channel,
    build_server,
    run_until_stopped,
    signer_from_settings,
)
from qingfeng.v1 import case_pb2, event_pb2, publication_pb2, search_pb2, search_pb2_grpc, source_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from gateway.access import (
    REFLECTION_METHODS,
    AccessPolicyError,
    PolicyFile,
    PolicySource,
    current_policy,
    reload_on_sighup,
)
from gateway.console_api import console_routes
from gateway.http import create_app
from gateway.interceptors import GuardInterceptor
from gateway.proxy import proxy_handler
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter
from gateway.search import Searcher, SearchServicer
from gateway.search_paging import PageTokens
from gateway.session_rows import SqlRows
from gateway.sessions import SessionMiddleware, SessionStore, session_routes
from gateway.settings import GatewayConfigError, GatewaySettings, HttpSettings

__all__ = [
    "Gateway",
    "bind_http",
    "build_gateway",
    "http_loop",
    "http_tls",
    "load_policy",
    "load_signer",
    "run",
    "served_methods",
    "upstream_services",
]

log = logging.getLogger("gateway")


def _client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    # The client span is a child of the gateway's server span and its traceparent replaces the caller's.
    interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors()  # type: ignore[no-untyped-call]
    return interceptors


def upstream_services(settings: GatewaySettings) -> dict[ServiceDescriptor, str]:
    """Each proxied service's descriptor and the address of the process that serves it."""
    return {
        source_pb2.DESCRIPTOR.services_by_name["CollectorService"]: settings.collector_addr,
        event_pb2.DESCRIPTOR.services_by_name["GraderService"]: settings.grader_addr,
        case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]: settings.coordinator_addr,
        publication_pb2.DESCRIPTOR.services_by_name["PublisherService"]: settings.publisher_addr,
    }


def served_methods(settings: GatewaySettings) -> frozenset[str]:
    """Every method path a grant may name: the proxied services', SearchService's and reflection's."""
    services = [*upstream_services(settings), search_pb2.DESCRIPTOR.services_by_name["SearchService"]]
    paths = {f"/{service.full_name}/{method.name}" for service in services for method in service.methods}
    return frozenset({*paths, *REFLECTION_METHODS})


def load_policy(settings: GatewaySettings) -> PolicyFile:
    """The access policy file (re-read when it changes), or a ``GatewayConfigError`` naming its variable."""
    try:
        return PolicyFile(
            settings.access_policy,
            check_interval_s=settings.limits.policy_check_interval_s,
            served=served_methods(settings),
        )
    except AccessPolicyError as exc:
        raise GatewayConfigError(f"QF_GATEWAY_ACCESS_POLICY: {exc}") from exc


def bind_http(settings: HttpSettings) -> socket.socket:
    """Bind the console's socket before anything starts, so a taken port fails the start with its variable."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise GatewayConfigError(
            f"QF_GATEWAY_HTTP__HOST/QF_GATEWAY_HTTP__PORT: cannot bind {settings.host}:{settings.port}: {exc.strerror}"
        ) from exc
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway's lifecycle owns SIGTERM and sets ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_tls(settings: HttpSettings) -> dict[str, Any]:
    """uvicorn's TLS arguments for the console, or a ``GatewayConfigError`` when neither TLS nor plaintext is set."""
    if settings.tls_cert_file and settings.tls_key_file:
        if settings.plaintext:
            raise GatewayConfigError("QF_GATEWAY_HTTP__PLAINTEXT=true contradicts QF_GATEWAY_HTTP__TLS_CERT_FILE")
        return {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
    if settings.tls_cert_file or settings.tls_key_file:
        raise GatewayConfigError("QF_GATEWAY_HTTP__TLS_CERT_FILE and QF_GATEWAY_HTTP__TLS_KEY_FILE go together")
    if not settings.plaintext:
        raise GatewayConfigError(
            "no HTTPS certificate: set QF_GATEWAY_HTTP__TLS_CERT_FILE and QF_GATEWAY_HTTP__TLS_KEY_FILE "
            "(or QF_GATEWAY_HTTP__PLAINTEXT=true, never in a deployment)"
        )
    log.warning("console on plain HTTP (QF_GATEWAY_HTTP__PLAINTEXT=true): tokens travel in clear")
    return {}


def http_loop(
    app: ASGIApp, sock: socket.socket, *, grace_s: float, tls: dict[str, Any] | None = None
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A background loop for ``run_until_stopped``: uvicorn serves ``app`` on ``sock`` until the stop event."""

    async def serve(stop: asyncio.Event) -> None:
        # Logging stays ours (JSON lines); the audit middleware replaces uvicorn's access log.
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=max(1, round(grace_s)),
            **(tls or {}),
        )
        server = _EmbeddedServer(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        stopping = asyncio.create_task(stop.wait())
        log.info("http listening", extra={"port": sock.getsockname()[1]})
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        stopping.cancel()
        try:
            await serving
        except SystemExit as exc:  # uvicorn exits the process on a failed start; the lifecycle should decide
            raise RuntimeError(f"HTTP console failed (uvicorn exit {exc.code})") from None
        finally:
            sock.close()
        if not stop.is_set():
            raise RuntimeError("HTTP console stopped on its own")

    return serve


@dataclass
class Gateway:
    """The wired gateway, not yet started: the gRPC server, the console app and what to probe and close."""

    grpc_server: GrpcServer
    http_app: Starlette
    readiness: list[ReadinessCheck]
    cleanups: list[Callable[[], Awaitable[None]]]


def load_signer(settings: GatewaySettings) -> CredentialSigner:
    """The key the gateway signs upstream credentials with, or a ``GatewayConfigError`` naming the variable."""
    try:
        return signer_from_settings(settings.identity, env_prefix="QF_GATEWAY_")
    except TrustConfigError as exc:
        raise GatewayConfigError(str(exc)) from exc


def build_gateway(settings: GatewaySettings, policy: PolicySource, signer: CredentialSigner) -> Gateway:
    """Wire every part from settings (must run inside the event loop: gRPC channels bind to it)."""
    limiter = RateLimiter(rate_per_s=settings.rate_limit.rate_per_s, burst=settings.rate_limit.burst)
    item_limiter = RateLimiter(
        rate_per_s=settings.rate_limit.stream_items_per_s, burst=settings.rate_limit.stream_items_burst
    )
    limits = settings.limits
    failures = FailureLimiter(max_failures=limits.failed_auth_max, window_s=limits.failed_auth_window_s)
    concurrency = ConcurrencyLimiter(
        per_identity=limits.concurrent_calls_per_identity,
        streams_per_identity=limits.concurrent_streams_per_identity,
        per_server=limits.concurrent_calls_per_server,
    )
    es = create_client(settings.elasticsearch)
    key = settings.search_page_token_key
    searcher = Searcher(
        es,
        settings.elasticsearch.index_prefix,
        max_page_size=settings.search_max_page_size,
        page_tokens=PageTokens(key.get_secret_value().encode()) if key else None,
        pit_keep_alive=settings.search_pit_keep_alive,
    )
    options = [
        ("grpc.max_receive_message_length", settings.grpc.max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc.max_message_bytes),
        # Upstreams restart; reconnect quickly instead of the default backoff of up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    channels = {
        service: aio_channel(address, settings.upstream_tls, options=options, interceptors=_client_interceptors())
        for service, address in upstream_services(settings).items()
    }
    # Client streams (ImportPosts) go over channels without the tracing interceptor: it blocks writes (proxy.py).
    stream_channels = {
        service: aio_channel(address, settings.upstream_tls, options=options)
        for service, address in upstream_services(settings).items()
    }
    proxy = proxy_handler(
        channels,
        signer,
        stream_upstreams=stream_channels,
        item_limiter=item_limiter,
        default_timeout_s=limits.upstream_timeout_s,
        stream_item_wait_s=settings.rate_limit.stream_item_wait_s,
        max_request_bytes=limits.max_request_bytes,
        method_max_request_bytes=limits.method_max_request_bytes,
    )
    search_servicer = SearchServicer(searcher)
    proxied = list(channels)
    # Reflection lists every service by its descriptor; the one generic handler serves all proxied methods.
    services: list[tuple[ServiceDescriptor, Callable[[grpc.aio.Server], None]]] = [
        (proxied[0], lambda server: server.add_generic_rpc_handlers((proxy,))),
        *((service, lambda server: None) for service in proxied[1:]),
        (
            search_pb2.DESCRIPTOR.services_by_name["SearchService"],
            lambda server: search_pb2_grpc.add_SearchServiceServicer_to_server(search_servicer, server),
        ),
    ]
    guard = GuardInterceptor(policy, limiter, failures=failures, concurrency=concurrency)
    session_rows = SqlRows(settings.database.url.get_secret_value())  # migrated on first use
    sessions = SessionStore(idle_s=settings.http.session_idle_s, max_s=settings.http.session_max_s, rows=session_rows)
    grpc_server = build_server(settings.grpc, services=services, interceptors=[guard])

    async def close_channels() -> None:
        await asyncio.gather(*(channel.close() for channel in (*channels.values(), *stream_channels.values())))

    return Gateway(
        grpc_server=grpc_server,
        http_app=create_app(
            policy=policy,
            limiter=limiter,
            searcher=searcher,
            failures=failures,
            concurrency=concurrency,
            extra_routes=[
                *session_routes(sessions, policy, failures),
                *console_routes(
                    policy=policy,
                    limiter=limiter,
                    channels=channels,
                    signer=signer,
                    failures=failures,
                    concurrency=concurrency,
                    timeout_s=limits.upstream_timeout_s,
                ),
            ],
            inner_middleware=[Middleware(SessionMiddleware, store=sessions, policy=policy)],
        ),
        readiness=[kafka_ready(settings.kafka), elasticsearch_ready(es)],
        cleanups=[es.close, close_channels, session_rows.close],
    )


async def run(settings: GatewaySettings, *, stop: asyncio.Event | None = None) -> None:
    """Serve gRPC and HTTP until SIGTERM (or ``stop``); raises ``GatewayConfigError`` before serving on bad config."""
    policy = load_policy(settings)
    loaded = current_policy(policy)
    log.info("access policy loaded", extra={"policy_version": loaded.version, "identities": len(loaded.identities)})
    signer = load_signer(settings)
    tls = http_tls(settings.http)
    http_socket = bind_http(settings.http)
    try:
        gateway = build_gateway(settings, policy, signer)
    except TlsConfigError as exc:
        http_socket.close()
        raise GatewayConfigError(f"{exc} (each variable prefixed QF_GATEWAY_)") from exc
    await run_until_stopped(
        gateway.grpc_server,
        readiness=gateway.readiness,
        background=[
            http_loop(gateway.http_app, http_socket, grace_s=settings.grpc.shutdown_grace_s, tls=tls),
            reload_on_sighup(policy),
        ],
        cleanups=gateway.cleanups,
        grace_s=settings.grpc.shutdown_grace_s,
        stop=stop,
    )
