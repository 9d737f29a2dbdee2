"""Joint meetings (联席会议): quarterly ones on a schedule, emergency ones (automatic for red, on demand for orange),
minutes whose decisions become tasks, and leaders' instructions (批示) that become tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from services.coordinator.core.cases import SYSTEM, InvalidTransition
from services.coordinator.core.model import (
    AuditEntry,
    Case,
    Change,
    Decision,
    Instruction,
    Meeting,
    Task,
    TaskStatus,
    Timer,
)
from services.coordinator.core.policy import RoutingPolicy
from services.coordinator.core.routing import make_id

__all__ = [
    "add_instruction",
    "convene",
    "next_quarterly",
    "quarterly_meeting",
    "quarterly_timer",
    "record_minutes",
]


def convene(
    policy: RoutingPolicy,
    kind: str,
    title: str,
    cases: Sequence[Case],
    scheduled_at: datetime | None,
    attendees: Sequence[str],
    actor: str,
    agency: str | None,
    now: datetime,
    meeting_id: str,
) -> Change:
    """Call a meeting by hand. An emergency meeting needs a case whose level allows one (orange on demand, red)."""
    if kind == "emergency":
        allowed = [c for c in cases if policy.rule(c.level).emergency_meeting in ("on_demand", "automatic")]
        if not allowed:
            raise InvalidTransition("an emergency meeting needs an open case whose level allows one (orange or red)")
    meeting = Meeting(
        id=meeting_id,
        kind=kind,
        title=title or ("紧急联席会议" if kind == "emergency" else "联席会议"),
        case_ids=tuple(c.id for c in cases),
        convened_at=now,
        scheduled_at=scheduled_at or now + policy.meetings.emergency_within,
        attendees=tuple(attendees) or policy.meetings.members,
        convened_by=actor,
    )
    entry = AuditEntry(
        actor, "meeting.convene", f"meetings/{meeting.id}", {"kind": kind, "cases": list(meeting.case_ids)}, agency
    )
    return Change(meetings=(meeting,), audit=(entry,))


def next_quarterly(policy: RoutingPolicy, now: datetime) -> datetime:
    """The next quarterly meeting time strictly after ``now`` (policy months, day and local hour)."""
    rule = policy.meetings
    offset = policy.calendar.utc_offset
    local = now + offset
    for year in (local.year, local.year + 1):
        for month in sorted(rule.quarterly_months):
            at = datetime(year, month, rule.quarterly_day, tzinfo=UTC) + rule.quarterly_at - offset
            if at > now:
                return at
    raise AssertionError("no quarterly month configured")  # the policy loader requires at least one


def quarterly_timer(policy: RoutingPolicy, now: datetime) -> Timer:
    at = next_quarterly(policy, now)
    return Timer(make_id("tm", "quarterly", at.isoformat()), "quarterly", at.isoformat(), at)


def quarterly_meeting(policy: RoutingPolicy, open_cases: Sequence[Case], at: datetime, now: datetime) -> Change:
    """The quarterly meeting due at ``at``: every member summoned, the open cases on the agenda (most severe first),
    and the timer for the next one."""
    local = at + policy.calendar.utc_offset
    quarter = (local.month - 1) // 3 + 1
    agenda = sorted(open_cases, key=lambda c: (-int(c.level), c.created_at))
    meeting = Meeting(
        id=make_id("m", "quarterly", at.isoformat()),
        kind="quarterly",
        title=f"{local.year}年第{quarter}季度涉腐网络舆情联席会议",
        case_ids=tuple(c.id for c in agenda),
        convened_at=now,
        scheduled_at=at,
        attendees=policy.meetings.members,
        convened_by=SYSTEM,
    )
    entry = AuditEntry(
        SYSTEM, "meeting.convene", f"meetings/{meeting.id}", {"kind": "quarterly", "cases": list(meeting.case_ids)}
    )
    return Change(meetings=(meeting,), timers=(quarterly_timer(policy, at),), audit=(entry,))


def record_minutes(
    policy: RoutingPolicy,
    meeting: Meeting,
    minutes: str,
    decisions: Sequence[Decision],
    present: Sequence[str],
    actor: str,
    agency: str | None,
    now: datetime,
) -> Change:
    """Record the minutes and attendance; each decision becomes a task for its owner on its case."""
    if meeting.minutes_recorded_at is not None:
        raise InvalidTransition(f"meeting {meeting.id} already has minutes")
    recorded: list[Decision] = []
    tasks: list[Task] = []
    for n, decision in enumerate(decisions):
        case_id = decision.case_id or (meeting.case_ids[0] if meeting.case_ids else "")
        task = Task(
            id=make_id("t", meeting.id, "decision", n),
            case_id=case_id,
            agency=decision.owner,
            description=f"会议决定: {decision.text}",
            due_at=decision.due_at or now + policy.default_task_within,
            status=TaskStatus.OPEN,
            created_at=now,
            updated_at=now,
            playbook_step=f"meeting.decision.{n + 1}",
        )
        tasks.append(task)
        recorded.append(replace(decision, case_id=case_id, task_ids=(task.id,)))
    done = replace(meeting, minutes=minutes, decisions=tuple(recorded), present=tuple(present), minutes_recorded_at=now)
    entry = AuditEntry(
        actor,
        "meeting.minutes",
        f"meetings/{meeting.id}",
        {"decisions": len(recorded), "tasks": [t.id for t in tasks]},
        agency,
    )
    return Change(meetings=(done,), tasks=tuple(tasks), audit=(entry,))


def add_instruction(
    policy: RoutingPolicy,
    case: Case,
    instruction: Instruction,
    assign_to: Sequence[str],
    due_at: datetime | None,
    agency: str | None,
) -> tuple[Instruction, Change]:
    """Record a leader's 批示 on a case; it becomes a task for each agency named (the opinion office by default)."""
    now = instruction.recorded_at
    tasks = tuple(
        Task(
            id=make_id("t", instruction.id, owner),
            case_id=case.id,
            agency=owner,
            description=f"落实{instruction.leader_role or instruction.leader_name}批示: {instruction.text}",
            due_at=due_at or now + policy.default_task_within,
            status=TaskStatus.OPEN,
            created_at=now,
            updated_at=now,
            playbook_step="instruction",
        )
        for owner in (assign_to or ("opinion_office",))
    )
    stored = replace(instruction, task_ids=tuple(t.id for t in tasks))
    entry = AuditEntry(
        instruction.recorded_by,
        "instruction.add",
        f"cases/{case.id}",
        {"instruction_id": stored.id, "rung": instruction.rung.key, "tasks": list(stored.task_ids)},
        agency,
    )
    return stored, Change(tasks=tasks, audit=(entry,))
