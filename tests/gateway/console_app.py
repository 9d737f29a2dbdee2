"""The gateway's HTTP app with sign-in and the console API over given upstream addresses, for console route tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from qingfeng.v1 import case_pb2, event_pb2, publication_pb2
from starlette.middleware import Middleware

from gateway.access import AccessPolicy
from gateway.console_api import console_routes
from gateway.http import create_app
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter
from gateway.sessions import SessionMiddleware, SessionStore, session_routes
from tests.e2e.processes import free_port
from tests.identity import GATEWAY

UPSTREAMS = (
    case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"],
    event_pb2.DESCRIPTOR.services_by_name["GraderService"],
    publication_pb2.DESCRIPTOR.services_by_name["PublisherService"],
)


@asynccontextmanager
async def console_app(
    policy: AccessPolicy, upstreams: Mapping[ServiceDescriptor, str], *, searcher: Any = None
) -> AsyncIterator[Any]:
    """The app; a service not in ``upstreams`` points at a closed port (it is not running)."""
    nobody = f"127.0.0.1:{free_port()}"
    channels = {service: grpc.aio.insecure_channel(upstreams.get(service, nobody)) for service in UPSTREAMS}
    limiter = RateLimiter(rate_per_s=100.0, burst=100)
    failures = FailureLimiter(max_failures=20, window_s=60.0)
    store = SessionStore()
    routes = console_routes(
        policy=policy,
        limiter=limiter,
        channels=channels,
        signer=GATEWAY,
        failures=failures,
        concurrency=ConcurrencyLimiter(per_identity=8, streams_per_identity=2, per_server=64),
        timeout_s=5.0,
    )
    try:
        yield create_app(
            policy=policy,
            limiter=limiter,
            searcher=searcher,
            failures=failures,
            extra_routes=[*session_routes(store, policy, failures), *routes],
            inner_middleware=[Middleware(SessionMiddleware, store=store)],
        )
    finally:
        for channel in channels.values():
            await channel.close()
