"""The console's HTTP/JSON routes: each is authorised as its one gRPC method and calls the upstream with a
credential minted for the caller; the upstream's answers and errors come back as HTTP statuses; a service that is
not there answers 503 instead of breaking; gateway/openapi.yaml documents exactly the routes the app serves."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from qingfeng.rpc import current_caller
from qingfeng.settings import GrpcSettings
from qingfeng.v1 import case_pb2, case_pb2_grpc, event_pb2, publication_pb2, search_pb2
from starlette.routing import Mount, Route

from gateway.access import AccessPolicy
from gateway.app import build_gateway, load_policy
from gateway.console_api import ROUTES
from gateway.settings import GatewaySettings
from tests.gateway.conftest import FakeCoordinator
from tests.gateway.console_app import console_app
from tests.identity import GATEWAY, trusting_server

OPENAPI = Path(__file__).resolve().parents[2] / "gateway" / "openapi.yaml"
COORDINATOR = case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]
GRADER = event_pb2.DESCRIPTOR.services_by_name["GraderService"]
PUBLISHER = publication_pb2.DESCRIPTOR.services_by_name["PublisherService"]


class _Coordinator(FakeCoordinator):
    """The conftest fake (ListTasks describes the caller, GetCase is NOT_FOUND) plus an acknowledgement that
    records who acknowledged; every other method is UNIMPLEMENTED, as the generated base class answers."""

    acks: list[tuple[str, str]]

    async def AcknowledgeCase(
        self, request: case_pb2.AcknowledgeCaseRequest, context: Any
    ) -> case_pb2.AcknowledgeCaseResponse:
        caller = current_caller()
        self.acks.append((request.case_id, caller.principal))
        return case_pb2.AcknowledgeCaseResponse(case=case_pb2.Case(id=request.case_id, title="某局长受贿"))

    async def GetRapidReport(
        self, request: case_pb2.GetRapidReportRequest, context: Any
    ) -> case_pb2.GetRapidReportResponse:
        report = case_pb2.RenderedReport(
            title="舆情快报", content_type="text/html; charset=utf-8", content="<h1>舆情快报</h1>".encode()
        )
        return case_pb2.GetRapidReportResponse(report=report, issue_number=3)


class _Searcher:
    async def search_posts(self, request: search_pb2.SearchPostsRequest, scope: Any = None) -> Any:
        return search_pb2.SearchPostsResponse()

    async def search_events(self, request: search_pb2.SearchEventsRequest, scope: Any = None) -> Any:
        return search_pb2.SearchEventsResponse()


@pytest.fixture
async def coordinator() -> AsyncIterator[tuple[str, _Coordinator]]:
    servicer = _Coordinator()  # type: ignore[abstract]  # the rest answer UNIMPLEMENTED
    servicer.acks = []
    async with trusting_server(partial(case_pb2_grpc.add_CoordinatorServiceServicer_to_server, servicer)) as address:
        yield address, servicer


@pytest.fixture
async def app(policy: AccessPolicy, coordinator: tuple[str, _Coordinator]) -> AsyncIterator[Any]:
    address, _ = coordinator  # the grader and publisher are not running
    async with console_app(policy, {COORDINATOR: address}, searcher=_Searcher()) as app:
        yield app


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as http:
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_route_calls_its_method_as_the_caller(
    client: httpx.AsyncClient, coordinator: tuple[str, _Coordinator], tokens: dict[str, str]
) -> None:
    _, fake = coordinator
    reply = await client.get("/api/tasks", params={"case_id": "case-7"}, headers=_bearer(tokens["police"]))
    assert reply.status_code == 200, reply.text
    [task] = reply.json()["tasks"]
    assert task["case_id"] == "case-7" and task["agency"] == "AGENCY_POLICE_CYBER"
    assert task["description"].endswith("for police-1@police_cyber")
    [caller] = fake.callers
    assert (caller.principal, caller.agency, caller.issuer) == ("police-1", "police_cyber", "gateway")
    assert caller.roles == frozenset({"duty_officer", "cyber"})
    assert "authorization" not in fake.seen[0], "the caller's token is not passed upstream"


async def test_a_method_not_granted_is_403_and_never_reaches_the_upstream(
    client: httpx.AsyncClient, coordinator: tuple[str, _Coordinator], tokens: dict[str, str]
) -> None:
    _, fake = coordinator
    reply = await client.get("/api/cases/case-7", headers=_bearer(tokens["police"]))
    assert reply.status_code == 403
    error = reply.json()["error"]
    assert error["code"] == "PERMISSION_DENIED" and error["method"] == "/qingfeng.v1.CoordinatorService/GetCase"
    assert fake.seen == []


async def test_an_upstream_not_found_stays_404(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    reply = await client.get("/api/cases/case-9", headers=_bearer(tokens["office"]))
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "NOT_FOUND"
    assert "case-9" in reply.json()["error"]["message"]


async def test_unauthenticated_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/tasks")).status_code == 401
    assert (await client.get("/api/tasks", headers=_bearer("forged"))).status_code == 401


async def test_unimplemented_and_unreachable_services_say_so(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    meetings = await client.get("/api/meetings", params={"case_id": "c"}, headers=_bearer(tokens["office"]))
    assert meetings.status_code == 501 and meetings.json()["error"]["code"] == "UNIMPLEMENTED"
    drafts = await client.get("/api/drafts", headers=_bearer(tokens["office"]))
    assert drafts.status_code == 503 and drafts.json()["error"]["code"] == "UNAVAILABLE"
    assert "PublisherService" in drafts.json()["error"]["message"]


async def test_bad_parameters_are_400_before_any_call(
    client: httpx.AsyncClient, coordinator: tuple[str, _Coordinator], tokens: dict[str, str]
) -> None:
    _, fake = coordinator
    office = _bearer(tokens["office"])
    assert (await client.get("/api/tasks", params={"overdue_only": "maybe"}, headers=office)).status_code == 400
    assert (await client.get("/api/tasks", params={"status": "TASK_STATUS_NOPE"}, headers=office)).status_code == 400
    unknown = await client.get("/api/tasks", params={"drop_table": "1"}, headers=office)
    assert unknown.status_code == 400 and "drop_table" in unknown.json()["error"]["message"]
    assert fake.seen == []


async def test_acknowledge_with_a_session_needs_csrf(
    client: httpx.AsyncClient,
    coordinator: tuple[str, _Coordinator],
    tokens: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, fake = coordinator
    csrf = (await client.post("/api/session", json={"token": tokens["office"]})).json()["csrf_token"]
    refused = await client.post("/api/cases/case-1/acknowledge", json={})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "CSRF_REFUSED"
    assert fake.acks == []
    with caplog.at_level(logging.DEBUG, logger="qingfeng.audit"):
        reply = await client.post(
            "/api/cases/case-1/acknowledge", json={"note": "收到"}, headers={"X-CSRF-Token": csrf}
        )
    assert reply.status_code == 200, reply.text
    [audited] = [r for r in caplog.records if r.name == "qingfeng.audit" and "acknowledge" in r.getMessage()]
    assert audited.__dict__["state_change"] is True and audited.levelno == logging.INFO
    assert reply.json()["case"]["id"] == "case-1"
    assert fake.acks == [("case-1", "office-1")]


async def test_rapid_report_is_served_sandboxed(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    reply = await client.get("/api/cases/case-1/report", headers=_bearer(tokens["office"]))
    assert reply.status_code == 200 and "舆情快报" in reply.text
    assert reply.headers["content-type"].startswith("text/html")
    assert "sandbox" in reply.headers["content-security-policy"]
    # One policy only: the page-wide CSP (no inline styles) would otherwise intersect with the report's own.
    assert len(reply.headers.get_list("content-security-policy")) == 1


def _served(app: Any) -> set[tuple[str, str]]:
    served = set()
    for route in app.routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        served |= {(route.path, method.lower()) for method in route.methods or () if method != "HEAD"}
    return served


async def test_openapi_documents_exactly_the_routes_the_gateway_serves(policy_file: Path) -> None:
    # The console app as the gateway wires it (no server started, nothing contacted).
    settings = GatewaySettings(access_policy=policy_file, grpc=GrpcSettings(port=0, plaintext=True))
    built = build_gateway(settings, load_policy(settings), GATEWAY)
    try:
        served = _served(built.http_app)
    finally:
        for cleanup in built.cleanups:
            await cleanup()
    document = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert ("/api/cases/{id}/acknowledge", "post") in served and ("/api/session", "delete") in served
    assert documented == served, f"undocumented: {served - documented}; documented, not served: {documented - served}"


def test_openapi_names_each_routes_grpc_method() -> None:
    document = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    for route in ROUTES:
        operation = document["paths"][route.path][route.http_method.lower()]
        assert operation["x-grpc-method"] == route.grpc_method
        service = {"CoordinatorService": COORDINATOR, "GraderService": GRADER, "PublisherService": PUBLISHER}
        assert route.rpc in service[route.service].methods_by_name
