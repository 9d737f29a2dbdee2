"""EscalateCase over gRPC on SQLite and PostgreSQL: the roles of the routing policy, the raise re-routed and
announced through the outbox, the audit chain, retries that escalate once, and the errors (need-to-know included)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
from qingfeng.storage import outbox_table, read_audit, verify_chain
from qingfeng.v1 import case_pb2, case_pb2_grpc, common_pb2
from sqlalchemy import MetaData, select

from services.coordinator.adapters.sql import SqlStore
from services.coordinator.handling import Handling
from tests.identity import signed_channel

from ..conftest import FakeClock
from .harness import Running, running

_outbox = outbox_table(MetaData())
ORANGE, RED, YELLOW = common_pb2.WARNING_LEVEL_ORANGE, common_pb2.WARNING_LEVEL_RED, common_pb2.WARNING_LEVEL_YELLOW


@pytest.fixture
async def live(handling: Handling, clock: FakeClock) -> AsyncIterator[Running]:
    async with running(handling, clock) as r:
        yield r


def _stub(
    live: Running, agency: str, roles: Iterable[str], principal: str = "office.director"
) -> tuple[grpc.aio.Channel, case_pb2_grpc.CoordinatorServiceStub]:
    channel = signed_channel(f"127.0.0.1:{live.port}", principal=principal, agency=agency, roles=roles)
    return channel, case_pb2_grpc.CoordinatorServiceStub(channel)


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    raise AssertionError("the call succeeded")


async def _case_events(store: SqlStore, case_id: str) -> list[str]:
    async with store.unit() as unit:
        rows = await unit.session.execute(
            select(_outbox.c.event_type).where(_outbox.c.key == case_id).order_by(_outbox.c.id)
        )
        return [r.event_type for r in rows if r.event_type.startswith("case.")]


async def test_director_escalates_once_and_it_is_routed_audited_and_announced(live: Running, store: SqlStore) -> None:
    case_id = live.seeded.petition_case  # yellow, with the deputy standing member
    channel, director = _stub(live, "opinion_office", ["舆情信息办公室主任"])
    async with channel:
        before = await _case_events(store, case_id)
        ask = case_pb2.EscalateCaseRequest(case_id=case_id, level=ORANGE, reason="传统媒体已介入", request_id="r-1")
        case = (await director.EscalateCase(ask)).case
        assert case.level == ORANGE and case.routed_to == common_pb2.OFFICIAL_LEVEL_SECRETARY
        assert case.status == case_pb2.CASE_STATUS_AWAITING_ACKNOWLEDGEMENT
        assert [(e.to_level, e.cause) for e in case.escalations] == [
            (common_pb2.OFFICIAL_LEVEL_SECRETARY, case_pb2.ESCALATION_CAUSE_MANUAL)
        ]
        announced = (await _case_events(store, case_id))[len(before) :]
        assert announced == ["case.level_changed", "case.escalated", "case.routed"]
        # Retries: the same request id (even naming another level), then the same target level without an id.
        again = (await director.EscalateCase(ask)).case
        other = case_pb2.EscalateCaseRequest(case_id=case_id, level=RED, reason="重试", request_id="r-1")
        assert (await director.EscalateCase(other)).case.level == ORANGE
        plain = case_pb2.EscalateCaseRequest(case_id=case_id, level=ORANGE, reason="重试")
        third = (await director.EscalateCase(plain)).case
        assert again == third and len(third.escalations) == 1
        assert (await _case_events(store, case_id))[len(before) :] == announced
    async with store.unit() as unit:
        records = [r for r in await read_audit(unit.session, limit=1000) if r.action == "case.escalate"]
        assert (await verify_chain(unit.session)).ok
    assert [(r.actor, r.agency, r.target, r.details["reason"]) for r in records] == [
        ("office.director", "opinion_office", f"cases/{case_id}", "传统媒体已介入")
    ]


async def test_errors(live: Running) -> None:
    s = live.seeded
    channel, leader = _stub(live, "discipline_commission", ["纪委书记"], principal="leader.secretary")
    async with channel:
        # The rumour case is orange: an equal or lower level is no escalation.
        for level in (ORANGE, YELLOW):
            ask = case_pb2.EscalateCaseRequest(case_id=s.rumour_case, level=level, reason="理由")
            assert await _code(leader.EscalateCase(ask)) == grpc.StatusCode.FAILED_PRECONDITION
        no_reason = case_pb2.EscalateCaseRequest(case_id=s.rumour_case, level=RED, reason="  ")
        assert await _code(leader.EscalateCase(no_reason)) == grpc.StatusCode.INVALID_ARGUMENT
        no_level = case_pb2.EscalateCaseRequest(case_id=s.rumour_case, reason="理由")
        assert await _code(leader.EscalateCase(no_level)) == grpc.StatusCode.INVALID_ARGUMENT
        missing = case_pb2.EscalateCaseRequest(case_id="case-missing", level=RED, reason="理由")
        assert await _code(leader.EscalateCase(missing)) == grpc.StatusCode.NOT_FOUND
    # A partner holding a role the policy names still may not see another agency's case: NOT_FOUND, word for word
    # what a missing case answers.
    channel, partner = _stub(live, "petitions", ["纪委书记"], principal="petitions.zhang")
    async with channel:
        hidden = case_pb2.EscalateCaseRequest(case_id=s.rumour_case, level=RED, reason="理由")
        missing = case_pb2.EscalateCaseRequest(case_id="case-missing", level=RED, reason="理由")
        errors = []
        for ask in (hidden, missing):
            try:
                await partner.EscalateCase(ask)
            except grpc.aio.AioRpcError as err:
                errors.append((err.code(), err.details().replace(ask.case_id, "<id>")))
        assert errors[0] == errors[1] and errors[0][0] == grpc.StatusCode.NOT_FOUND
    # Roles the policy does not name (the analyst's): refused whatever the case, before it is looked up.
    channel, analyst = _stub(live, "opinion_office", ["analyst", "see_tips"], principal="analyst")
    async with channel:
        for case_id in (s.rumour_case, "case-missing"):
            ask = case_pb2.EscalateCaseRequest(case_id=case_id, level=RED, reason="理由")
            assert await _code(analyst.EscalateCase(ask)) == grpc.StatusCode.PERMISSION_DENIED
        unchanged = await analyst.GetCase(case_pb2.GetCaseRequest(id=s.rumour_case))
        assert unchanged.case.level == ORANGE
