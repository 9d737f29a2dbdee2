"""Request validation at the edge from the rules the protos declare: required fields, lengths, item counts, enum
values, nesting, and bytes that are not the method's message — refused before anything reaches a service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from qingfeng.errors import InvalidArgument
from qingfeng.v1 import case_pb2, case_pb2_grpc, publication_pb2, source_pb2

from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor
from gateway.proxy import proxy_handler
from gateway.ratelimit import RateLimiter
from gateway.validation import DEFAULT_MAX_ITEMS, request_checker, violations
from tests.identity import GATEWAY

COORDINATOR = case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]


def _fields(message: Any) -> set[str]:
    return {v.field for v in violations(message)}


def test_a_valid_request_has_no_violations() -> None:
    tip = source_pb2.SubmitTipRequest(
        text="某局长收受购物卡", url="https://example.org/a", media_urls=["https://x/1.png"]
    )
    assert violations(tip) == []


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (source_pb2.SubmitTipRequest(text=""), "text"),  # required
        (source_pb2.SubmitTipRequest(text="x", title="标" * 201), "title"),  # declared max_len 200
        (source_pb2.SubmitTipRequest(text="x", media_urls=["u"] * 21), "media_urls"),  # declared max_items 20
        (source_pb2.SubmitTipRequest(text="x", origin=99), "origin"),  # not a declared enum value
        (publication_pb2.SignOffRequest(draft_id="d1"), "decision"),  # required enum
        (publication_pb2.CreateDraftRequest(draft=publication_pb2.Draft(body="字" * 20_001)), "draft.body"),  # nested
        (case_pb2.AcknowledgeCaseRequest(case_id="c", note="n" * 2_001), "note"),
        (case_pb2.ListTasksRequest(case_id="c" * 70_000), "case_id"),  # the default bound on any string
    ],
)
def test_a_broken_rule_names_its_field(message: Any, field: str) -> None:
    assert field in _fields(message)


def test_maps_and_repeated_fields_are_bounded_by_default() -> None:
    values = {f"k{i}": "v" for i in range(DEFAULT_MAX_ITEMS + 1)}
    assert "template_values" in _fields(publication_pb2.CreateDraftRequest(template_values=values))
    assert "template_values['k']" in _fields(publication_pb2.CreateDraftRequest(template_values={"k": "v" * 70_000}))


def test_bytes_that_are_not_the_message_are_refused() -> None:
    check = request_checker(source_pb2.SubmitTipRequest.DESCRIPTOR)
    with pytest.raises(InvalidArgument, match=r"not a qingfeng\.v1\.SubmitTipRequest"):
        check(b"\xff\xff\xff\xff")
    check(source_pb2.SubmitTipRequest(text="ok").SerializeToString())


@pytest.fixture
async def gateway_to(policy: AccessPolicy) -> AsyncIterator[Any]:
    closers: list[Any] = []

    async def start(address: str) -> grpc.aio.Channel:
        upstream = grpc.aio.insecure_channel(address)
        server = grpc.aio.server(interceptors=[GuardInterceptor(policy, RateLimiter(rate_per_s=100.0, burst=100))])
        server.add_generic_rpc_handlers((proxy_handler({COORDINATOR: upstream}, GATEWAY),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        closers.extend((upstream.close, client.close, lambda: server.stop(None)))
        return client

    yield start
    for close in closers:
        await close()


async def test_an_invalid_request_never_reaches_the_service(
    upstream: tuple[str, Any], gateway_to: Any, tokens: dict[str, str]
) -> None:
    address, fake = upstream
    stub = case_pb2_grpc.CoordinatorServiceStub(await gateway_to(address))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTasks(
            case_pb2.ListTasksRequest(case_id="c" * 70_000),
            metadata=(("authorization", f"Bearer {tokens['office']}"),),
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details)
    assert [v.field for v in bad.field_violations] == ["case_id"]
    assert fake.seen == [], "nothing reached the coordinator"
