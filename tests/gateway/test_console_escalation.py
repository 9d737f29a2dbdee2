"""POST /api/cases/{id}/escalate through the console API to the real coordinator (its gRPC servicer over SQLite):
a role the routing policy names escalates with a session and its CSRF token; the analyst's role is refused by the
coordinator, an identity without the grant by the gateway; no reason, a lower level, an unknown case come back as
400, 409 and 404; a retry escalates once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from qingfeng.cli.tokens import DEFAULT_IDENTITIES
from qingfeng.storage import build_engine, run_migrations
from qingfeng.v1 import case_pb2, case_pb2_grpc

from gateway.access import hash_token, parse_access_policy
from gateway.validation import violations
from services.coordinator.adapters.policy_yaml import load_directory, load_playbooks, load_routing
from services.coordinator.adapters.sql import OutboxTopics, SqlStore
from services.coordinator.app import MIGRATIONS, VERSION_TABLE
from services.coordinator.core.cases import AlertView
from services.coordinator.core.escalation import may_escalate
from services.coordinator.core.model import Level
from services.coordinator.handling import Handling, Policies
from services.coordinator.reporting import Reporting
from services.coordinator.server import CoordinatorServicer
from services.coordinator.service import CoordinatorApi
from tests.gateway.console_app import console_app
from tests.identity import trusting_server

COORDINATOR = case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]
_CASES = ("GetCase", "ListCases", "AcknowledgeCase", "EscalateCase")
TOKENS = {"leader": "leader-token-0123456789", "analyst": "analyst-token-0123456789", "police": "police-token-01234567"}


def _policy() -> Any:
    grants = [f"/qingfeng.v1.CoordinatorService/{m}" for m in _CASES]
    identities = [
        ("leader", "discipline_commission", ["分管常委"], list(grants)),
        ("analyst", "opinion_office", ["analyst"], list(grants)),
        ("police", "police_cyber", [], ["/qingfeng.v1.CoordinatorService/ListTasks"]),
    ]
    doc = {
        "version": "escalation-1",
        "identities": [
            {"name": n, "agency": a, "roles": r, "grants": g, "token_sha256": hash_token(TOKENS[n])}
            for n, a, r, g in identities
        ],
    }
    return parse_access_policy(yaml.safe_dump(doc, allow_unicode=True))


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The real servicer over a fresh SQLite database, with one yellow case; (address, case id)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    engine = build_engine(url)
    handling = Handling(
        SqlStore(engine, OutboxTopics("t.cases", "t.tasks", "t.requests")),
        Policies(load_routing(), load_playbooks(), load_directory()),
    )

    def clock() -> datetime:
        return datetime.now(UTC)

    alert = AlertView(
        "ev-1:1", "ev-1", 1, Level.NONE, Level.YELLOW, "某局长违规收礼", clock(), (), (("relevance", 0.9),)
    )
    case_id = str(await handling.on_alert(alert, clock()))
    servicer = CoordinatorServicer(CoordinatorApi(handling, clock), Reporting(handling, clock), clock)
    try:
        async with trusting_server(
            partial(case_pb2_grpc.add_CoordinatorServiceServicer_to_server, servicer)
        ) as address:
            yield address, case_id
    finally:
        await engine.dispose()


@pytest.fixture
async def client(coordinator: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        console_app(_policy(), {COORDINATOR: coordinator[0]}) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as http,
    ):
        yield http


async def _signed_in(client: httpx.AsyncClient, who: str) -> dict[str, str]:
    reply = await client.post("/api/session", json={"token": TOKENS[who]})
    assert reply.status_code == 200, reply.text
    return {"X-CSRF-Token": reply.json()["csrf_token"]}


async def test_a_leader_escalates_with_a_session(client: httpx.AsyncClient, coordinator: tuple[str, str]) -> None:
    _, case_id = coordinator
    path = f"/api/cases/{case_id}/escalate"
    csrf = await _signed_in(client, "leader")
    body = {"level": "WARNING_LEVEL_ORANGE", "reason": "传统媒体开始报道", "request_id": "console-1"}
    refused = await client.post(path, json=body)  # the session's CSRF token is missing
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "CSRF_REFUSED"
    assert (await client.get(f"/api/cases/{case_id}")).json()["case"]["level"] == "WARNING_LEVEL_YELLOW"
    reply = await client.post(path, json=body, headers=csrf)
    assert reply.status_code == 200, reply.text
    case = reply.json()["case"]
    assert case["level"] == "WARNING_LEVEL_ORANGE" and case["routed_to"] == "OFFICIAL_LEVEL_SECRETARY"
    assert [e["cause"] for e in case["escalations"]] == ["ESCALATION_CAUSE_MANUAL"]
    again = await client.post(path, json=body, headers=csrf)  # a retry (the button pressed twice)
    assert again.status_code == 200 and len(again.json()["case"]["escalations"]) == 1
    lower = await client.post(path, json={"level": "WARNING_LEVEL_YELLOW", "reason": "x"}, headers=csrf)
    assert lower.status_code == 409 and lower.json()["error"]["code"] == "FAILED_PRECONDITION"
    blank = await client.post(path, json={"level": "WARNING_LEVEL_RED", "reason": " "}, headers=csrf)
    assert blank.status_code == 400 and blank.json()["error"]["code"] == "INVALID_ARGUMENT"
    missing = await client.post("/api/cases/case-nope/escalate", json=body, headers=csrf)
    assert missing.status_code == 404
    unknown = await client.post(path, json={**body, "level": "WARNING_LEVEL_PURPLE"}, headers=csrf)
    assert unknown.status_code == 400


async def test_roles_without_the_right_are_refused(client: httpx.AsyncClient, coordinator: tuple[str, str]) -> None:
    _, case_id = coordinator
    path = f"/api/cases/{case_id}/escalate"
    body = {"level": "WARNING_LEVEL_RED", "reason": "热度上升"}
    analyst = await client.post(path, json=body, headers={"Authorization": f"Bearer {TOKENS['analyst']}"})
    assert analyst.status_code == 403 and "routing policy" in analyst.json()["error"]["message"]  # the coordinator
    police = await client.post(path, json=body, headers={"Authorization": f"Bearer {TOKENS['police']}"})
    assert police.status_code == 403
    assert police.json()["error"]["method"] == "/qingfeng.v1.CoordinatorService/EscalateCase"  # the gateway
    case = (await client.get(f"/api/cases/{case_id}", headers={"Authorization": f"Bearer {TOKENS['analyst']}"})).json()
    assert case["case"]["level"] == "WARNING_LEVEL_YELLOW" and "escalations" not in case["case"]


def test_the_local_leaders_are_granted_it_and_hold_a_role_the_policy_names() -> None:
    routing = load_routing()
    granted = [i for i in DEFAULT_IDENTITIES if "/qingfeng.v1.CoordinatorService/EscalateCase" in i.grants]
    may = {i.name for i in granted if may_escalate(routing, frozenset(i.roles))}
    assert may == {"office_director", "deputy_standing_member", "commission_secretary", "municipal_committee"}
    assert {i.name for i in granted} - may == {"analyst", "lead_handler"}  # every method, but not the role


def test_the_gateway_checks_the_declared_field_rules_before_any_call() -> None:
    ok = case_pb2.EscalateCaseRequest(case_id="c", level=4, reason="理由", request_id="r")
    assert violations(ok) == []
    bad = case_pb2.EscalateCaseRequest(reason="x" * 2001, request_id="r" * 129)
    assert sorted(v.field for v in violations(bad)) == ["case_id", "level", "reason", "request_id"]
