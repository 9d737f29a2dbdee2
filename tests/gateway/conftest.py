"""Fixtures for the gateway tests: an access policy with fresh tokens, and a tiny CoordinatorService upstream."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
import pytest
import yaml
from qingfeng.cli.tokens import REFLECTION_METHODS, every_method
from qingfeng.rpc import Caller, current_caller
from qingfeng.v1 import case_pb2, case_pb2_grpc, common_pb2, event_pb2, publication_pb2, search_pb2, source_pb2

from gateway.access import AccessPolicy, hash_token, parse_access_policy
from tests.identity import trusting_server

LIST_TASKS = "/qingfeng.v1.CoordinatorService/ListTasks"
GET_CASE = "/qingfeng.v1.CoordinatorService/GetCase"
# Every method of every service the gateway serves, listed exactly (grants allow no patterns).
ALL_METHODS = (
    *every_method(source_pb2, "CollectorService"),
    *every_method(event_pb2, "GraderService"),
    *every_method(case_pb2, "CoordinatorService"),
    *every_method(publication_pb2, "PublisherService"),
    *every_method(search_pb2, "SearchService"),
)


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in ("office", "police", "newspaper", "reader")}


@pytest.fixture(scope="session")
def policy_text(tokens: dict[str, str]) -> str:
    policy = {
        "version": "gateway-test",
        "identities": [
            {
                "name": "office-1",
                "agency": "opinion_office",
                "roles": ["analyst", "see_tips"],
                "token_sha256": hash_token(tokens["office"]),
                "grants": [*ALL_METHODS, *REFLECTION_METHODS],
            },
            {
                "name": "police-1",
                "agency": "police_cyber",
                "roles": ["duty_officer", "cyber"],
                "token_sha256": hash_token(tokens["police"]),
                "grants": [LIST_TASKS, "/qingfeng.v1.CoordinatorService/CompleteTask"],
            },
            {
                "name": "newspaper-1",
                "agency": "daily_newspaper",
                "token_sha256": hash_token(tokens["newspaper"]),
                "grants": ["/qingfeng.v1.PublisherService/ListPublications"],
            },
            {
                # Searches like the office but may not see tips, and only within Zhejiang (330000).
                "name": "reader-1",
                "agency": "discipline_commission",
                "roles": ["analyst"],
                "token_sha256": hash_token(tokens["reader"]),
                "grants": [*every_method(search_pb2, "SearchService")],
                "search": {"region_codes": ["330000"]},
            },
        ],
    }
    return yaml.safe_dump(policy)


@pytest.fixture(scope="session")
def policy(policy_text: str) -> AccessPolicy:
    return parse_access_policy(policy_text)


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, policy_text: str) -> Path:
    path = tmp_path_factory.mktemp("gateway-policy") / "access.yaml"
    path.write_text(policy_text, encoding="utf-8")
    return path


@dataclass
class FakeCoordinator(case_pb2_grpc.CoordinatorServiceServicer):
    """Answers ListTasks with one task describing the verified caller, and GetCase with NOT_FOUND; records the
    metadata and the callers it verified."""

    seen: list[dict[str, list[str]]] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)

    def _record(self, context: grpc.aio.ServicerContext) -> dict[str, list[str]]:
        metadata: dict[str, list[str]] = {}
        for key, value in context.invocation_metadata() or ():
            metadata.setdefault(key, []).append(value)
        self.seen.append(metadata)
        return metadata

    async def ListTasks(self, request: case_pb2.ListTasksRequest, context: grpc.aio.ServicerContext) -> object:
        self._record(context)
        caller = current_caller()
        self.callers.append(caller)
        agency, principal = caller.agency or "", caller.principal
        context.set_trailing_metadata((("x-upstream-saw-agency", agency),))
        return case_pb2.ListTasksResponse(
            tasks=[
                case_pb2.Task(
                    id="task-1",
                    case_id=request.case_id or "case-1",
                    agency=common_pb2.AGENCY_POLICE_CYBER,
                    description=f"核查谣言来源 for {principal}@{agency}",
                )
            ]
        )

    async def GetCase(self, request: case_pb2.GetCaseRequest, context: grpc.aio.ServicerContext) -> object:
        self._record(context)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"case {request.id!r} not found")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, FakeCoordinator]]:
    """A CoordinatorService on 127.0.0.1:<free port>: its address and the servicer (to inspect what it saw)."""
    servicer = FakeCoordinator()
    async with trusting_server(partial(case_pb2_grpc.add_CoordinatorServiceServicer_to_server, servicer)) as address:
        yield address, servicer
