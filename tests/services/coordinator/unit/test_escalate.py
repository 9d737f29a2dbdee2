"""Escalation by hand (core): the raise re-routes like a raise by the grader, is audited with its reason, and the
roles that may do it come from the routing policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.coordinator.adapters.policy_yaml import POLICY_DIR, PolicyFileError, load_routing
from services.coordinator.core.cases import InvalidTransition, acknowledge, apply_alert, open_case
from services.coordinator.core.escalation import escalate_case, may_escalate
from services.coordinator.core.model import Case, CaseStatus, Level, Rung
from services.coordinator.core.policy import Directory, RoutingPolicy

from .conftest import T0, alert

LATER = T0 + timedelta(minutes=20)


def _opened(routing: RoutingPolicy, directory: Directory, level: Level, **kw: object) -> Case:
    case = open_case(routing, directory, alert(level, **kw), T0).case  # type: ignore[arg-type]
    assert case is not None
    return case


def test_manual_raise_routes_up_like_a_raise_by_the_grader(routing: RoutingPolicy, directory: Directory) -> None:
    case = _opened(routing, directory, Level.YELLOW)
    acked = acknowledge(case, "leader.deputy", "discipline_commission", "收到", T0 + timedelta(minutes=5)).case
    assert acked is not None and acked.status is CaseStatus.ACKNOWLEDGED
    by_hand = escalate_case(
        routing, directory, acked, Level.ORANGE, "媒体已介入", "office.director", "opinion_office", LATER
    )
    by_grader = apply_alert(routing, directory, acked, alert(Level.ORANGE, seq=2, prev=Level.YELLOW, at=LATER), LATER)
    mine, theirs = by_hand.case, by_grader.case
    assert mine is not None and theirs is not None
    # The same route, deadline, people and state as the grader's raise; only the recorded cause differs.
    for field in ("level", "routed_to", "routed_people", "ack_deadline", "status", "first_response_due_at"):
        assert getattr(mine, field) == getattr(theirs, field), field
    assert mine.routed_to is Rung.SECRETARY and mine.status is CaseStatus.AWAITING_ACK
    assert mine.ack_deadline == LATER + timedelta(minutes=30)
    assert [(e.from_rung, e.to_rung, e.cause) for e in mine.escalations] == [
        (Rung.DEPUTY_STANDING_MEMBER, Rung.SECRETARY, "manual")
    ]
    assert by_hand.case_events == ("case.level_changed", "case.escalated", "case.routed")
    first = by_hand.audit[0]
    assert (first.actor, first.agency, first.action) == ("office.director", "opinion_office", "case.escalate")
    assert first.details["reason"] == "媒体已介入" and first.details["to_level"] == "orange"
    assert [t.due_at for t in by_hand.timers] == [LATER + timedelta(minutes=30)]
    assert ("ack", case.id) in by_hand.cancel_timers


def test_raise_to_red_convenes_the_automatic_emergency_meeting(routing: RoutingPolicy, directory: Directory) -> None:
    case = _opened(routing, directory, Level.ORANGE)
    change = escalate_case(routing, directory, case, Level.RED, "已有聚集苗头", "leader.secretary", None, LATER)
    assert change.case is not None and change.case.routed_to is Rung.MUNICIPAL_COMMITTEE
    assert [m.kind for m in change.meetings] == ["emergency"]


def test_not_corruption_related_stays_with_the_office(routing: RoutingPolicy, directory: Directory) -> None:
    case = _opened(routing, directory, Level.BLUE, relevance=0.1)
    assert case.information_notice
    change = escalate_case(routing, directory, case, Level.ORANGE, "热度上升", "office.director", None, LATER)
    assert change.case is not None
    assert change.case.level is Level.ORANGE and change.case.routed_to is Rung.OPINION_OFFICE
    assert change.case.escalations == () and "case.routed" not in change.case_events
    assert change.audit[0].details["to_rung"] == "opinion_office"


@pytest.mark.parametrize("target", [Level.BLUE, Level.YELLOW])
def test_lower_or_equal_level_is_refused(routing: RoutingPolicy, directory: Directory, target: Level) -> None:
    case = _opened(routing, directory, Level.YELLOW)
    with pytest.raises(InvalidTransition, match="already yellow"):
        escalate_case(routing, directory, case, target, "理由", "office.director", None, LATER)


def test_roles_come_from_the_policy(routing: RoutingPolicy, three_tier: RoutingPolicy) -> None:
    assert may_escalate(routing, frozenset({"分管常委"})) and may_escalate(three_tier, frozenset({"市委"}))
    assert not may_escalate(routing, frozenset({"analyst", "see_tips"}))
    assert not may_escalate(routing, frozenset())
    routing_yaml = (POLICY_DIR / "routing.yaml").read_text(encoding="utf-8")
    text = routing_yaml.replace(
        "manual_roles: [舆情信息办公室主任, 分管常委, 纪委副书记, 纪委书记, 市委]", "manual_roles: [analyst]"
    )
    assert text != routing_yaml
    assert may_escalate(load_routing(text=text), frozenset({"analyst"}))
    with pytest.raises(PolicyFileError, match=r"escalation\.manual_roles"):
        load_routing(text=text.replace("manual_roles: [analyst]", "manual_roles: [analyst, analyst]"))
