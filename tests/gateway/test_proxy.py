"""The pass-through proxy: a call through the gateway reaches the upstream with the caller's identity, and the
upstream's answer (or its error) comes back unchanged."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from qingfeng.v1 import case_pb2, case_pb2_grpc

from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor
from gateway.proxy import proxy_handler
from gateway.ratelimit import RateLimiter
from tests.identity import GATEWAY

COORDINATOR = case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]

Gateway = Callable[[str], Awaitable[grpc.aio.Channel]]


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def through_gateway(policy: AccessPolicy) -> AsyncIterator[Gateway]:
    """Start a gateway proxying CoordinatorService to ``address``; returns a client channel to the gateway."""
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def start(address: str) -> grpc.aio.Channel:
        upstream = grpc.aio.insecure_channel(address)
        server = grpc.aio.server(interceptors=[GuardInterceptor(policy, RateLimiter(rate_per_s=100.0, burst=100))])
        server.add_generic_rpc_handlers((proxy_handler({COORDINATOR: upstream}, GATEWAY),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        servers.append(server)
        channels.extend((upstream, client))
        return client

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


async def test_call_reaches_upstream_with_the_identity(
    upstream: tuple[str, Any], through_gateway: Gateway, tokens: dict[str, str]
) -> None:
    address, fake = upstream
    stub = case_pb2_grpc.CoordinatorServiceStub(await through_gateway(address))
    # A caller cannot pose as another agency: the upstream believes only the gateway's signed credential.
    metadata = (*bearer(tokens["police"]), ("x-qingfeng-agency", "case_management"))
    call = stub.ListTasks(case_pb2.ListTasksRequest(case_id="case-7"), metadata=metadata, timeout=5)
    reply = await call
    assert [(t.id, t.case_id) for t in reply.tasks] == [("task-1", "case-7")]
    assert reply.tasks[0].description.endswith("for police-1@police_cyber")
    assert ("x-upstream-saw-agency", "police_cyber") in tuple(await call.trailing_metadata())
    [seen] = fake.seen
    [caller] = fake.callers
    assert (caller.principal, caller.agency, caller.issuer) == ("police-1", "police_cyber", "gateway")
    assert caller.roles == frozenset({"duty_officer", "cyber"})
    assert "x-qingfeng-agency" not in seen, "metadata the partner sent is not passed on"
    assert len(seen["x-qingfeng-credential"]) == 1
    assert "authorization" not in seen, "the partner's token is not passed on"


async def test_trace_context_is_forwarded(
    upstream: tuple[str, Any], through_gateway: Gateway, tokens: dict[str, str]
) -> None:
    address, fake = upstream
    stub = case_pb2_grpc.CoordinatorServiceStub(await through_gateway(address))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    metadata = (*bearer(tokens["office"]), ("traceparent", traceparent))
    await stub.ListTasks(case_pb2.ListTasksRequest(), metadata=metadata, timeout=5)
    assert fake.seen[0]["traceparent"] == [traceparent]


async def test_upstream_error_is_relayed(
    upstream: tuple[str, Any], through_gateway: Gateway, tokens: dict[str, str]
) -> None:
    address, _ = upstream
    stub = case_pb2_grpc.CoordinatorServiceStub(await through_gateway(address))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCase(case_pb2.GetCaseRequest(id="c-404"), metadata=bearer(tokens["office"]), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "case 'c-404' not found"


async def test_guard_refuses_before_the_upstream_is_called(
    upstream: tuple[str, Any], through_gateway: Gateway, tokens: dict[str, str]
) -> None:
    address, fake = upstream
    stub = case_pb2_grpc.CoordinatorServiceStub(await through_gateway(address))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCase(case_pb2.GetCaseRequest(id="c1"), metadata=bearer(tokens["police"]), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert fake.seen == []


async def test_upstream_down_is_unavailable(through_gateway: Gateway, tokens: dict[str, str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    stub = case_pb2_grpc.CoordinatorServiceStub(await through_gateway(address))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTasks(case_pb2.ListTasksRequest(), metadata=bearer(tokens["office"]), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
