"""Life cycle, clocks, playbooks, 督办, meetings and instructions: tables on a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.coordinator.core.cases import (
    InvalidTransition,
    acknowledge,
    apply_alert,
    begin_verification,
    close_case,
    open_case,
    publication_published,
)
from services.coordinator.core.meetings import (
    add_instruction,
    convene,
    next_quarterly,
    quarterly_meeting,
    record_minutes,
)
from services.coordinator.core.model import (
    Case,
    CaseStatus,
    Decision,
    Disposition,
    Instruction,
    Level,
    Rung,
    Task,
    TaskStatus,
)
from services.coordinator.core.playbooks import set_disposition
from services.coordinator.core.policy import Directory, Playbooks, RoutingPolicy
from services.coordinator.core.tasks import complete_task, next_check, task_timer_fired, task_timers

from .conftest import T0, alert


def _acked(routing: RoutingPolicy, directory: Directory, level: Level = Level.ORANGE, **kw: object) -> Case:
    case = open_case(routing, directory, alert(level, **kw), T0).case  # type: ignore[arg-type]
    assert case is not None
    acked = acknowledge(case, "leader", "discipline_commission", "收到", T0 + timedelta(minutes=10)).case
    assert acked is not None
    return acked


def test_states_from_triage_to_closed_and_reopened(
    routing: RoutingPolicy, directory: Directory, playbooks: Playbooks
) -> None:
    case = _acked(routing, directory)
    assert case.status is CaseStatus.ACKNOWLEDGED and case.acknowledged_by == "leader"
    with pytest.raises(InvalidTransition):
        acknowledge(case, "x", None, "", T0)
    verifying = begin_verification(case, "office", "opinion_office", T0).case
    assert verifying is not None and verifying.status is CaseStatus.VERIFYING
    disposed = set_disposition(routing, playbooks, verifying, Disposition.MISUNDERSTANDING, "误解", "o", None, T0).case
    assert disposed is not None and disposed.status is CaseStatus.IN_DISPOSITION
    closed = close_case(disposed, "office", "opinion_office", T0 + timedelta(days=1)).case
    assert closed is not None and closed.status is CaseStatus.CLOSED
    # Same level again: stays closed. A new escalation: the secondary wave.
    later = T0 + timedelta(days=3)
    same = apply_alert(routing, directory, closed, alert(Level.YELLOW, seq=2, prev=Level.ORANGE, at=later), later)
    assert same.case is not None and same.case.status is CaseStatus.CLOSED
    wave = apply_alert(routing, directory, same.case, alert(Level.RED, seq=3, prev=Level.YELLOW, at=later), later)
    assert wave.case is not None
    assert wave.case.status is CaseStatus.AWAITING_ACK and wave.case.wave == 2 and wave.case.reopened_at == later
    assert wave.case.routed_to is Rung.MUNICIPAL_COMMITTEE and wave.case.disposition is None
    assert "case.reopened" in wave.case_events


def test_disposition_needs_acknowledgement(routing: RoutingPolicy, directory: Directory, playbooks: Playbooks) -> None:
    case = open_case(routing, directory, alert(Level.ORANGE), T0).case
    assert case is not None
    with pytest.raises(InvalidTransition):
        set_disposition(routing, playbooks, case, Disposition.VERIFIED_TRUE, "x", "o", None, T0)


@pytest.mark.parametrize(
    ("disposition", "task_agencies", "publication_kinds"),
    [
        (Disposition.VERIFIED_TRUE, ["case_management"], ["statement"]),
        (Disposition.REASONABLE_SUGGESTION, ["responsible_unit"], ["reply"]),
        (Disposition.FALSE_INFORMATION, ["police_cyber", "propaganda"], ["refutation"]),
        (Disposition.NEEDS_INVESTIGATION, ["case_management"], ["progress", "progress", "progress"]),
        (Disposition.MISUNDERSTANDING, [], ["reply"]),
    ],
)
def test_playbooks_create_tasks_and_publication_requests(
    routing: RoutingPolicy,
    directory: Directory,
    playbooks: Playbooks,
    disposition: Disposition,
    task_agencies: list[str],
    publication_kinds: list[str],
) -> None:
    case = _acked(routing, directory)
    now = T0 + timedelta(minutes=30)
    change = set_disposition(routing, playbooks, case, disposition, "核查结论", "office", "opinion_office", now)
    assert [t.agency for t in change.tasks] == task_agencies
    assert [p.kind for p in change.publications] == publication_kinds
    assert all(p.case_id == case.id and p.level is Level.ORANGE for p in change.publications)
    assert change.audit[0].action == "case.set_disposition"
    # Setting the same finding again runs nothing twice.
    assert change.case is not None
    again = set_disposition(routing, playbooks, change.case, disposition, "再次", "office", None, now)
    assert again.tasks == () and again.publications == ()


def test_refutation_due_on_the_rumour_clock(routing: RoutingPolicy, directory: Directory, playbooks: Playbooks) -> None:
    case = _acked(routing, directory, rumour=True)
    assert case.rumour and case.refutation_due_at == T0 + timedelta(hours=24)
    change = set_disposition(
        routing, playbooks, case, Disposition.FALSE_INFORMATION, "不实", "o", None, T0 + timedelta(hours=1)
    )
    assert [p.due_at for p in change.publications] == [T0 + timedelta(hours=24)]
    # Without a rumour alert the finding starts the clock.
    plain = _acked(routing, directory)
    found = T0 + timedelta(hours=3)
    change = set_disposition(routing, playbooks, plain, Disposition.FALSE_INFORMATION, "不实", "o", None, found)
    assert change.case is not None and change.case.refutation_due_at == found + timedelta(hours=24)


def test_progress_on_a_schedule(routing: RoutingPolicy, directory: Directory, playbooks: Playbooks) -> None:
    change = set_disposition(
        routing, playbooks, _acked(routing, directory), Disposition.NEEDS_INVESTIGATION, "待查", "o", None, T0
    )
    assert [p.due_at - T0 for p in change.publications] == [timedelta(hours=h) for h in (24, 48, 72)]
    assert len({p.id for p in change.publications}) == 3


@pytest.mark.parametrize(
    ("level", "published_after", "golden_due", "met"),
    [
        (Level.ORANGE, timedelta(minutes=90), True, True),
        (Level.RED, timedelta(hours=3), True, False),
        (Level.YELLOW, timedelta(minutes=30), False, None),
    ],
)
def test_golden_period_clock(
    routing: RoutingPolicy,
    directory: Directory,
    level: Level,
    published_after: timedelta,
    golden_due: bool,
    met: bool | None,
) -> None:
    case = open_case(routing, directory, alert(level), T0).case
    assert case is not None
    assert (case.first_response_due_at is not None) is golden_due
    change = publication_published(case, "pub-1", T0 + published_after, T0 + published_after)
    assert change.case is not None and change.case.first_response_at == T0 + published_after
    assert change.audit[0].details["golden_period_met"] is met
    # A second publication does not move the first response.
    assert publication_published(change.case, "pub-2", T0 + timedelta(hours=9), T0).case is None


def test_refutation_clock_met(routing: RoutingPolicy, directory: Directory) -> None:
    case = open_case(routing, directory, alert(Level.YELLOW, rumour=True), T0).case
    assert case is not None
    change = publication_published(case, "p", T0 + timedelta(hours=20), T0 + timedelta(hours=20))
    assert change.case is not None and change.case.refuted_at == T0 + timedelta(hours=20)
    assert change.audit[0].details["refutation_met"] is True


def _task(due: datetime) -> Task:
    return Task("t1", "c1", "police_cyber", "查处", due, TaskStatus.OPEN, T0, T0)


def test_supervision_reminds_then_escalates(routing: RoutingPolicy) -> None:
    task = _task(T0 + timedelta(hours=24))
    assert next_check(routing, task) == task.due_at
    supervisors, actions = [], []
    for _ in range(4):
        at = next_check(routing, task)
        assert at is not None
        change = task_timer_fired(routing, task, at, at)
        task = change.tasks[0]
        supervisors.append(task.supervision.supervised_by)
        actions.append(change.audit[0].action)
    assert [t.supervision.reminders for t in (task,)] == [4]
    assert supervisors == [Rung.OPINION_OFFICE, Rung.DEPUTY_STANDING_MEMBER, Rung.SECRETARY, Rung.SECRETARY]
    assert actions == ["task.remind", "task.supervision_escalate", "task.supervision_escalate", "task.remind"]
    assert task.supervision.last_reminded_at == T0 + timedelta(hours=24 + 12)


def test_done_task_is_not_supervised(routing: RoutingPolicy) -> None:
    task = _task(T0)
    done = complete_task(task, "已处置", "police", "police_cyber", T0).tasks[0]
    assert done.status is TaskStatus.DONE and not done.overdue(T0 + timedelta(days=9))
    assert task_timer_fired(routing, done, T0, T0 + timedelta(hours=1)).tasks == ()
    assert task_timers(routing, (done,)).timers == ()


def test_emergency_meeting_on_demand_needs_orange(routing: RoutingPolicy, directory: Directory) -> None:
    yellow = _acked(routing, directory, Level.YELLOW)
    with pytest.raises(InvalidTransition):
        convene(routing, "emergency", "", [yellow], None, [], "o", None, T0, "m1")
    orange = _acked(routing, directory, Level.ORANGE)
    change = convene(routing, "emergency", "", [orange], None, [], "o", None, T0, "m1")
    assert change.meetings[0].attendees == routing.meetings.members


def test_quarterly_meetings(routing: RoutingPolicy, directory: Directory) -> None:
    at = next_quarterly(routing, T0)
    assert at == datetime(2026, 7, 15, 1, 0, tzinfo=UTC)  # 15 July 09:00 Beijing
    cases = [_acked(routing, directory, Level.YELLOW), replace(_acked(routing, directory, Level.RED), id="c-red")]
    change = quarterly_meeting(routing, cases, at, at)
    meeting = change.meetings[0]
    assert meeting.title.startswith("2026年第3季度") and meeting.case_ids[0] == "c-red"
    assert change.timers[0].due_at == datetime(2026, 10, 15, 1, 0, tzinfo=UTC)


def test_minutes_decisions_become_tasks(routing: RoutingPolicy, directory: Directory) -> None:
    case = _acked(routing, directory)
    meeting = convene(routing, "emergency", "", [case], None, [], "o", None, T0, "m1").meetings[0]
    decisions = [
        Decision("公安网安核查发帖人", "police_cyber"),
        Decision("日报社发布通报", "daily_newspaper", due_at=T0 + timedelta(hours=6)),
    ]
    change = record_minutes(routing, meeting, "会议纪要", decisions, ["police_cyber"], "o", None, T0)
    assert [(t.agency, t.case_id) for t in change.tasks] == [("police_cyber", case.id), ("daily_newspaper", case.id)]
    assert change.tasks[1].due_at == T0 + timedelta(hours=6)
    assert change.tasks[0].due_at == T0 + routing.default_task_within
    assert [d.task_ids for d in change.meetings[0].decisions] == [(change.tasks[0].id,), (change.tasks[1].id,)]
    with pytest.raises(InvalidTransition):
        record_minutes(routing, change.meetings[0], "again", [], [], "o", None, T0)


def test_instruction_becomes_tasks(routing: RoutingPolicy, directory: Directory) -> None:
    case = _acked(routing, directory)
    instruction = Instruction(
        "i1", case.id, "sec", "李书记", "纪委书记", Rung.SECRETARY, "请迅速核查", T0, T0, "office"
    )
    stored, change = add_instruction(routing, case, instruction, ["propaganda", "police_cyber"], None, "opinion_office")
    assert [t.agency for t in change.tasks] == ["propaganda", "police_cyber"]
    assert stored.task_ids == tuple(t.id for t in change.tasks)
    assert "纪委书记批示" in change.tasks[0].description
    _, default = add_instruction(routing, case, instruction, [], None, None)
    assert [t.agency for t in default.tasks] == ["opinion_office"]


def test_progress_with_attachments_is_hashed_and_limited(routing: RoutingPolicy) -> None:
    from services.coordinator.core.tasks import TooLarge, Upload, report_progress

    task = _task(T0 + timedelta(days=1))
    change, contents = report_progress(
        routing, task, "已约谈发帖人", [Upload("笔录.pdf", "application/pdf", b"%PDF-1")], "police", "police_cyber", T0
    )
    done = change.tasks[0]
    assert done.status is TaskStatus.IN_PROGRESS and [p.note for p in done.progress] == ["已约谈发帖人"]
    attachment = done.attachments[0]
    assert attachment.size_bytes == 6 and len(attachment.sha256) == 64 and contents == ((attachment.sha256, b"%PDF-1"),)
    assert done.progress[0].attachment_ids == (attachment.id,)
    with pytest.raises(TooLarge):
        report_progress(
            routing, task, "x", [Upload("big", "", b"0" * (routing.attachments.max_bytes + 1))], "p", None, T0
        )
    finished = complete_task(done, "完成", "police", None, T0).tasks[0]
    with pytest.raises(InvalidTransition):
        report_progress(routing, finished, "late", [], "p", None, T0)
