"""Reflection through the gateway's guard: ``grpc.reflection.v1`` and ``v1alpha`` both answer, for granted
identities only (the exact reflection method paths), and v1 resolves the services' schemas like v1alpha."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2
from qingfeng.rpc import build_server
from qingfeng.settings import GrpcSettings
from qingfeng.v1 import case_pb2, case_pb2_grpc

from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor
from gateway.ratelimit import RateLimiter

COORDINATOR = case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture
async def channel(policy: AccessPolicy) -> AsyncIterator[grpc.aio.Channel]:
    built = build_server(
        GrpcSettings(port=0, plaintext=True),
        services=[
            (
                COORDINATOR,
                lambda s: case_pb2_grpc.add_CoordinatorServiceServicer_to_server(
                    case_pb2_grpc.CoordinatorServiceServicer(), s
                ),
            )
        ],
        interceptors=[GuardInterceptor(policy, RateLimiter(rate_per_s=100.0, burst=100))],
    )
    await built.server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as chan:
            yield chan
    finally:
        await built.server.stop(None)


async def _ask(
    channel: grpc.aio.Channel, path: str, token: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    # v1 and v1alpha messages are the same on the wire; the v1alpha classes encode both.
    info = channel.stream_stream(
        path,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = info(iter([request]), metadata=(("authorization", f"Bearer {token}"),), timeout=5)
    responses = [response async for response in call]
    assert len(responses) == 1
    return responses[0]


@pytest.mark.parametrize("path", [V1, V1ALPHA])
async def test_both_reflection_versions_list_and_describe_services(
    channel: grpc.aio.Channel, tokens: dict[str, str], path: str
) -> None:
    listed = await _ask(channel, path, tokens["office"], reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in listed.list_services_response.service}
    assert {
        COORDINATOR.full_name,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    found = await _ask(
        channel,
        path,
        tokens["office"],
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=COORDINATOR.full_name),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    assert any(
        service.name == "CoordinatorService"
        for file in files
        if file.package == "qingfeng.v1"
        for service in file.service
    )


async def test_v1_describes_itself(channel: grpc.aio.Channel, tokens: dict[str, str]) -> None:
    found = await _ask(
        channel,
        V1,
        tokens["office"],
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    )
    [file] = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    assert file.package == "grpc.reflection.v1"
    assert file.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"


@pytest.mark.parametrize("path", [V1, V1ALPHA])
async def test_reflection_needs_its_exact_grant(channel: grpc.aio.Channel, tokens: dict[str, str], path: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ask(channel, path, tokens["police"], reflection_pb2.ServerReflectionRequest(list_services=""))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ask(channel, path, "no-such-token", reflection_pb2.ServerReflectionRequest(list_services=""))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
