"""The guard on a real in-process grpc.aio server: authentication, authorisation, rate limit, audit, open health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from qingfeng.v1 import case_pb2, case_pb2_grpc

from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor, current_identity
from gateway.ratelimit import RateLimiter

BURST = 3


class _Coordinator(case_pb2_grpc.CoordinatorServiceServicer):
    """ListTasks answers with the identity the guard handed to the handler."""

    async def ListTasks(self, request: case_pb2.ListTasksRequest, context: grpc.aio.ServicerContext) -> object:
        identity = current_identity.get()
        assert identity is not None, "the guard sets the identity before the handler runs"
        return case_pb2.ListTasksResponse(tasks=[case_pb2.Task(id="t1", description=identity.agency)])


@pytest.fixture
async def channel(policy: AccessPolicy) -> AsyncIterator[grpc.aio.Channel]:
    now = [0.0]  # a frozen clock: the bucket never refills during a test
    limiter = RateLimiter(rate_per_s=1.0, burst=BURST, clock=lambda: now[0])
    server = grpc.aio.server(interceptors=[GuardInterceptor(policy, limiter)])
    case_pb2_grpc.add_CoordinatorServiceServicer_to_server(_Coordinator(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
            yield chan
    finally:
        await server.stop(None)


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_no_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTasks(case_pb2.ListTasksRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in (err.value.details() or "")


@pytest.mark.parametrize("token", ["forged-token", "", "Bearer"])
async def test_forged_token_is_unauthenticated(channel: grpc.aio.Channel, token: str) -> None:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    code = await _code(stub.ListTasks(case_pb2.ListTasksRequest(), metadata=_metadata(token), timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_police_cannot_call_a_method_not_granted(channel: grpc.aio.Channel, tokens: dict[str, str]) -> None:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCase(case_pb2.GetCaseRequest(id="c1"), metadata=_metadata(tokens["police"]), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "police_cyber/police-1 may not call /qingfeng.v1.CoordinatorService/GetCase" in (err.value.details() or "")


async def test_granted_call_runs_with_the_callers_identity(
    channel: grpc.aio.Channel, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    with caplog.at_level(logging.DEBUG, logger="qingfeng.audit"):
        reply = await stub.ListTasks(case_pb2.ListTasksRequest(), metadata=_metadata(tokens["police"]), timeout=5)
    assert [t.description for t in reply.tasks] == ["police_cyber"]
    audit = [r for r in caplog.records if r.name == "qingfeng.audit"]
    assert audit and audit[-1].__dict__["principal"] == "police-1"
    assert audit[-1].__dict__["status"] == "OK"


async def test_refusals_are_audited_at_info(
    channel: grpc.aio.Channel, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    with caplog.at_level(logging.INFO, logger="qingfeng.audit"):
        await _code(stub.GetCase(case_pb2.GetCaseRequest(), metadata=_metadata(tokens["police"]), timeout=5))
    [record] = [r for r in caplog.records if r.name == "qingfeng.audit"]
    assert record.levelno == logging.INFO
    assert record.__dict__["status"] == "PERMISSION_DENIED"
    assert record.__dict__["agency"] == "police_cyber"


async def test_rate_limit_is_per_identity(channel: grpc.aio.Channel, tokens: dict[str, str]) -> None:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    police, office = _metadata(tokens["police"]), _metadata(tokens["office"])
    codes = [await _code(stub.ListTasks(case_pb2.ListTasksRequest(), metadata=police, timeout=5)) for _ in range(4)]
    assert codes == [grpc.StatusCode.OK] * BURST + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert await _code(stub.ListTasks(case_pb2.ListTasksRequest(), metadata=office, timeout=5)) == grpc.StatusCode.OK


async def test_health_is_open_without_token(channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
