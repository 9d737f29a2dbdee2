"""An event's level history at the gateway: GET /api/events/{id}/grades calls GraderService/ListEventGrades as the
caller (who needs that exact grant) and answers each change with its levels, rising flag and reasons; the gRPC
request's field rules hold at the edge; the local tokens grant the method to the identities that read events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import grpc
import httpx
import pytest
from qingfeng.cli.tokens import DEFAULT_IDENTITIES
from qingfeng.rpc import current_caller
from qingfeng.v1 import common_pb2, event_pb2, event_pb2_grpc

from gateway.access import AccessPolicy
from gateway.validation import violations
from tests.gateway.console_app import console_app
from tests.identity import trusting_server

GRADER = event_pb2.DESCRIPTOR.services_by_name["GraderService"]
METHOD = "/qingfeng.v1.GraderService/ListEventGrades"
W = common_pb2.WarningLevel


def _change(
    sequence: int, before: common_pb2.WarningLevel.ValueType, after: common_pb2.WarningLevel.ValueType, *, rising: bool
) -> event_pb2.Alert:
    change = event_pb2.Alert(
        id=f"ev-1:{sequence}", event_id="ev-1", sequence=sequence, from_level=before, to_level=after, rising=rising
    )
    change.reasons.add(
        criterion="distinct_authors", value=60.0 + sequence, threshold=50.0, op=common_pb2.COMPARISON_OPERATOR_GE,
        message=f"1小时内参与作者数 {60 + sequence} ≥ 50", level=after,
    )  # fmt: skip
    change.grade.level = after
    change.grade.label = "黄色预警"
    change.grade.graded_at.FromJsonString(f"2025-06-01T08:0{sequence}:00Z")
    return change


class _Grader(event_pb2_grpc.GraderServiceServicer):
    def __init__(self) -> None:
        self.callers: list[tuple[str, str]] = []

    async def ListEventGrades(
        self, request: event_pb2.ListEventGradesRequest, context: Any
    ) -> event_pb2.ListEventGradesResponse:
        caller = current_caller()
        self.callers.append((request.event_id, caller.principal))
        if request.event_id != "ev-1":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"event {request.event_id!r} has no level history")
        return event_pb2.ListEventGradesResponse(
            changes=[
                _change(1, W.WARNING_LEVEL_NONE, W.WARNING_LEVEL_BLUE, rising=False),
                _change(2, W.WARNING_LEVEL_BLUE, W.WARNING_LEVEL_YELLOW, rising=True),
            ]
        )


class _NoSearch:
    async def search_posts(self, request: Any, scope: Any = None) -> Any:
        raise AssertionError("not searched here")

    search_events = search_posts


@pytest.fixture
async def grader() -> AsyncIterator[tuple[str, _Grader]]:
    servicer = _Grader()  # type: ignore[abstract]  # the rest answer UNIMPLEMENTED
    async with trusting_server(partial(event_pb2_grpc.add_GraderServiceServicer_to_server, servicer)) as address:
        yield address, servicer


@pytest.fixture
async def client(policy: AccessPolicy, grader: tuple[str, _Grader]) -> AsyncIterator[httpx.AsyncClient]:
    # The coordinator and publisher are not running.
    async with (
        console_app(policy, {GRADER: grader[0]}, searcher=_NoSearch()) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as http,
    ):
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_history_route_answers_every_change_with_its_reasons_as_the_caller(
    client: httpx.AsyncClient, grader: tuple[str, _Grader], tokens: dict[str, str]
) -> None:
    reply = await client.get("/api/events/ev-1/grades", headers=_bearer(tokens["office"]))
    assert reply.status_code == 200, reply.text
    changes = reply.json()["changes"]
    assert [(c["from_level"], c["to_level"], c.get("rising", False)) for c in changes] == [
        ("WARNING_LEVEL_NONE", "WARNING_LEVEL_BLUE", False),
        ("WARNING_LEVEL_BLUE", "WARNING_LEVEL_YELLOW", True),
    ]
    reason = changes[1]["reasons"][0]
    assert (reason["criterion"], reason["value"], reason["threshold"]) == ("distinct_authors", 62.0, 50.0)
    assert reason["op"] == "COMPARISON_OPERATOR_GE" and reason["message"].endswith("≥ 50")
    assert changes[1]["grade"]["graded_at"] == "2025-06-01T08:02:00Z"
    assert grader[1].callers == [("ev-1", "office-1")]


async def test_the_history_route_needs_its_grant_and_passes_not_found_on(
    client: httpx.AsyncClient, grader: tuple[str, _Grader], tokens: dict[str, str]
) -> None:
    refused = await client.get("/api/events/ev-1/grades", headers=_bearer(tokens["police"]))
    assert refused.status_code == 403 and METHOD in refused.json()["error"]["message"]
    missing = await client.get("/api/events/ev-gone/grades", headers=_bearer(tokens["office"]))
    assert missing.status_code == 404
    assert grader[1].callers == [("ev-gone", "office-1")], "the refused call never reached the grader"


def test_the_request_rules_hold_at_the_edge() -> None:
    assert violations(event_pb2.ListEventGradesRequest(event_id="ev-1")) == []
    [empty] = violations(event_pb2.ListEventGradesRequest())
    assert empty.field == "event_id"
    [long] = violations(event_pb2.ListEventGradesRequest(event_id="e" * 513))
    assert long.field == "event_id"


def test_the_local_tokens_grant_the_history_to_whoever_reads_events() -> None:
    readers = {i.name for i in DEFAULT_IDENTITIES if "/qingfeng.v1.GraderService/GetEvent" in i.grants}
    granted = {i.name for i in DEFAULT_IDENTITIES if METHOD in i.grants}
    assert readers and granted == readers
