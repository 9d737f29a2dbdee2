"""Routing by level, 涉腐 threshold, ack deadlines, the ladder, working days: tables on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.coordinator.core.cases import (
    AlertView,
    ack_timer_fired,
    acknowledge,
    apply_alert,
    mark_corruption,
    open_case,
)
from services.coordinator.core.model import CaseStatus, Level, Rung
from services.coordinator.core.policy import Directory, RoutingPolicy
from services.coordinator.core.routing import next_working_day_start

from .conftest import T0, alert


@pytest.mark.parametrize(
    ("level", "rung", "ack_after"),
    [
        (Level.YELLOW, Rung.DEPUTY_STANDING_MEMBER, timedelta(hours=2)),
        (Level.ORANGE, Rung.SECRETARY, timedelta(minutes=30)),
        (Level.RED, Rung.MUNICIPAL_COMMITTEE, timedelta(minutes=15)),
    ],
)
def test_four_colour_routing_and_deadlines(
    routing: RoutingPolicy, directory: Directory, level: Level, rung: Rung, ack_after: timedelta
) -> None:
    change = open_case(routing, directory, alert(level), T0)
    assert change.case is not None
    assert change.case.routed_to is rung
    assert change.case.ack_deadline == T0 + ack_after
    assert change.case.status is CaseStatus.AWAITING_ACK
    assert [t.kind for t in change.timers] == ["ack"] and change.timers[0].due_at == T0 + ack_after
    assert change.case.routed_people == tuple(p.id for p in directory.people_of(rung))


def test_blue_goes_to_the_office_by_the_next_working_day(routing: RoutingPolicy, directory: Directory) -> None:
    change = open_case(routing, directory, alert(Level.BLUE), T0)
    assert change.case is not None and change.case.routed_to is Rung.OPINION_OFFICE
    # Tuesday 10:00 Beijing -> Wednesday 09:00 Beijing = 01:00 UTC.
    assert change.case.ack_deadline == datetime(2026, 6, 3, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now_utc", "expected_utc"),
    [
        (datetime(2026, 6, 5, 10, 0, tzinfo=UTC), datetime(2026, 6, 8, 1, 0, tzinfo=UTC)),  # Fri 18:00 -> Mon 09:00
        (datetime(2026, 6, 5, 17, 0, tzinfo=UTC), datetime(2026, 6, 8, 1, 0, tzinfo=UTC)),  # Sat 01:00 -> Mon
        (datetime(2026, 6, 1, 15, 59, tzinfo=UTC), datetime(2026, 6, 2, 1, 0, tzinfo=UTC)),  # Mon 23:59 -> Tue
    ],
)
def test_next_working_day(routing: RoutingPolicy, now_utc: datetime, expected_utc: datetime) -> None:
    assert next_working_day_start(routing.calendar, now_utc) == expected_utc


@pytest.mark.parametrize(
    ("level", "rung"),
    [
        (Level.BLUE, Rung.OPINION_OFFICE),
        (Level.YELLOW, Rung.DEPUTY_STANDING_MEMBER),
        (Level.ORANGE, Rung.SECRETARY),
        (Level.RED, Rung.SECRETARY),
    ],
)
def test_three_tier_scheme(three_tier: RoutingPolicy, directory: Directory, level: Level, rung: Rung) -> None:
    change = open_case(three_tier, directory, alert(level), T0)
    assert change.case is not None and change.case.routed_to is rung


@pytest.mark.parametrize(
    ("relevance", "related", "rung", "notice_tasks"),
    [
        (0.9, True, Rung.SECRETARY, 0),
        (0.5, True, Rung.SECRETARY, 0),
        (0.49, False, Rung.OPINION_OFFICE, 1),
        (None, True, Rung.SECRETARY, 0),  # unknown: the policy routes it
    ],
)
def test_corruption_threshold(
    routing: RoutingPolicy, directory: Directory, relevance: float | None, related: bool, rung: Rung, notice_tasks: int
) -> None:
    change = open_case(routing, directory, alert(Level.ORANGE, relevance=relevance), T0)
    assert change.case is not None
    assert change.case.corruption_related is related
    assert change.case.information_notice is (not related)
    assert change.case.routed_to is rung
    assert len(change.tasks) == notice_tasks
    assert all(t.agency == "propaganda" and t.playbook_step == "notice.information" for t in change.tasks)


def test_manual_mark_reroutes_and_is_audited(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.ORANGE, relevance=0.1), T0).case
    assert case is not None and case.routed_to is Rung.OPINION_OFFICE
    later = T0 + timedelta(minutes=5)
    up = mark_corruption(routing, directory, case, True, "涉及公职人员", "wang", "opinion_office", later)
    assert up.case is not None and up.case.routed_to is Rung.SECRETARY and up.case.corruption_marked_by_hand
    assert up.case.ack_deadline == later + timedelta(minutes=30)
    assert [a.action for a in up.audit][:1] == ["case.mark_corruption"]
    assert up.audit[0].actor == "wang" and up.audit[0].details["reason"] == "涉及公职人员"
    down = mark_corruption(routing, directory, up.case, False, "一般舆情", "wang", "opinion_office", later)
    assert down.case is not None and down.case.routed_to is Rung.OPINION_OFFICE
    assert [t.agency for t in down.tasks] == ["propaganda"]
    # A later alert with a high score does not undo the hand mark.
    again = apply_alert(
        routing, directory, down.case, alert(Level.RED, seq=2, prev=Level.ORANGE, relevance=0.99), later
    )
    assert again.case is not None and again.case.corruption_related is False


def test_missed_deadlines_climb_the_ladder_then_stop(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.YELLOW), T0).case
    assert case is not None and case.ack_deadline is not None
    rungs = [case.routed_to]
    now = case.ack_deadline
    for _ in range(4):
        assert case.ack_deadline is not None
        change = ack_timer_fired(routing, directory, case, case.ack_deadline, case.ack_deadline)
        assert change.case is not None
        case = change.case
        rungs.append(case.routed_to)
        now = case.ack_deadline or now
    assert rungs == [
        Rung.DEPUTY_STANDING_MEMBER,
        Rung.SECRETARY,
        Rung.MUNICIPAL_COMMITTEE,
        Rung.MUNICIPAL_COMMITTEE,
        Rung.MUNICIPAL_COMMITTEE,
    ]
    assert [e.cause for e in case.escalations] == ["ack_deadline_missed"] * 2
    # escalated deadline: 15 min after the miss
    assert case.escalations[0].ack_deadline == case.escalations[0].at + timedelta(minutes=15)


def test_stale_or_acknowledged_timer_does_nothing(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.RED), T0).case
    assert case is not None and case.ack_deadline is not None
    acked = acknowledge(case, "leader", "discipline_commission", "", T0 + timedelta(minutes=1)).case
    assert acked is not None
    assert ack_timer_fired(routing, directory, acked, case.ack_deadline, case.ack_deadline).case is None
    assert ack_timer_fired(routing, directory, case, T0, case.ack_deadline).case is None  # not the current deadline


def test_level_raised_reroutes_open_case(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.YELLOW), T0).case
    assert case is not None
    case = acknowledge(case, "deputy", "discipline_commission", "", T0).case
    assert case is not None
    later = T0 + timedelta(minutes=40)
    change = apply_alert(routing, directory, case, alert(Level.ORANGE, seq=2, prev=Level.YELLOW, at=later), later)
    assert change.case is not None
    assert change.case.routed_to is Rung.SECRETARY and change.case.status is CaseStatus.AWAITING_ACK
    assert change.case.escalations[-1].cause == "level_raised"
    assert change.case.ack_deadline == later + timedelta(minutes=30)
    assert "case.routed" in change.case_events
    # The golden period counts from the first alert, not from the raise.
    assert change.case.first_response_due_at == T0 + timedelta(hours=2)


def test_lowered_level_keeps_the_route(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.ORANGE), T0).case
    assert case is not None
    change = apply_alert(routing, directory, case, alert(Level.YELLOW, seq=2, prev=Level.ORANGE), T0)
    assert change.case is not None and change.case.level is Level.YELLOW and change.case.routed_to is Rung.SECRETARY


def test_replayed_alert_changes_nothing(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.YELLOW), T0).case
    assert case is not None
    assert apply_alert(routing, directory, case, alert(Level.YELLOW), T0).case is None


def test_red_convenes_an_emergency_meeting_orange_does_not(routing: RoutingPolicy, directory: Directory) -> None:
    red = open_case(routing, directory, alert(Level.RED), T0)
    assert [m.kind for m in red.meetings] == ["emergency"]
    assert red.meetings[0].attendees == routing.meetings.members
    assert red.meetings[0].scheduled_at == T0 + timedelta(hours=2)
    assert open_case(routing, directory, alert(Level.ORANGE), T0).meetings == ()
    orange = open_case(routing, directory, alert(Level.ORANGE), T0).case
    assert orange is not None
    raised = apply_alert(routing, directory, orange, alert(Level.RED, seq=2, prev=Level.ORANGE), T0)
    assert [m.kind for m in raised.meetings] == ["emergency"]


def test_the_relevance_the_grader_sends_decides_corruption(routing: RoutingPolicy, directory: Directory) -> None:
    """The event's mean relevance on the alert wins over a reason that happened to fire on one window."""
    base = alert(Level.ORANGE, relevance=0.9)
    low = AlertView(**{**base.__dict__, "relevance": 0.1})
    change = open_case(routing, directory, low, T0)
    assert change.case is not None
    assert (change.case.corruption_related, change.case.routed_to) == (False, Rung.OPINION_OFFICE)


def test_alert_view_reads_the_relevance_field_only_when_set() -> None:
    from qingfeng.v1 import common_pb2, event_pb2

    from services.coordinator.consumer import alert_view

    proto = event_pb2.Alert(id="ev-1:1", event_id="ev-1", sequence=1, to_level=common_pb2.WARNING_LEVEL_ORANGE)
    assert alert_view(proto, T0).relevance is None
    proto.corruption_relevance = 0.0
    assert alert_view(proto, T0).relevance == 0.0
