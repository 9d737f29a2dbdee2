"""The coordinator's own terms: levels, rungs, cases, tasks, meetings, instructions, and the changes the core asks for.

Everything is a frozen dataclass of plain values; protobuf and SQL stay at the edges (``convert.py``,
``adapters/sql.py``). Times are aware UTC datetimes handed in by the caller, never read from a clock here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "OFFICE_AGENCIES",
    "Attachment",
    "AuditEntry",
    "Case",
    "CaseStatus",
    "Change",
    "Decision",
    "Disposition",
    "Escalation",
    "Instruction",
    "Level",
    "Meeting",
    "Progress",
    "PublicationAsk",
    "Rung",
    "Supervision",
    "Task",
    "TaskStatus",
    "Timer",
]

# The agencies that see everything (the office and the commission's leadership); every other agency is a partner.
OFFICE_AGENCIES = frozenset({"opinion_office", "discipline_commission"})


class Level(IntEnum):
    """The canonical warning scale; values equal ``qingfeng.v1.WarningLevel`` so comparisons mean severity."""

    NONE = 1
    BLUE = 2
    YELLOW = 3
    ORANGE = 4
    RED = 5

    @property
    def key(self) -> str:
        return self.name.lower()


class Rung(IntEnum):
    """The reporting ladder, lowest first; values equal ``qingfeng.v1.OfficialLevel``."""

    OPINION_OFFICE = 1
    DEPUTY_STANDING_MEMBER = 2
    SECRETARY = 3
    MUNICIPAL_COMMITTEE = 4

    @property
    def key(self) -> str:
        return self.name.lower()


class CaseStatus(StrEnum):
    AWAITING_ACK = "awaiting_acknowledgement"
    ACKNOWLEDGED = "acknowledged"
    VERIFYING = "verifying"  # 核查
    IN_DISPOSITION = "in_disposition"
    CLOSED = "closed"


class Disposition(StrEnum):
    VERIFIED_TRUE = "verified_true"
    REASONABLE_SUGGESTION = "reasonable_suggestion"
    FALSE_INFORMATION = "false_information"
    NEEDS_INVESTIGATION = "needs_investigation"
    MISUNDERSTANDING = "misunderstanding"


class TaskStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Escalation:
    from_rung: Rung
    to_rung: Rung
    cause: str  # "ack_deadline_missed" | "level_raised" | "manual" | "corruption_marked"
    at: datetime
    ack_deadline: datetime | None


@dataclass(frozen=True)
class Case:
    id: str
    event_id: str
    title: str
    level: Level
    status: CaseStatus
    routed_to: Rung
    created_at: datetime
    updated_at: datetime
    first_alert_at: datetime
    ack_deadline: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    escalations: tuple[Escalation, ...] = ()
    regions: tuple[tuple[str, str], ...] = ()  # (GB/T 2260 code, name)
    disposition: Disposition | None = None
    disposition_rationale: str = ""
    closed_at: datetime | None = None
    reopened_at: datetime | None = None
    wave: int = 1
    corruption_relevance: float = -1.0  # -1: unknown
    corruption_related: bool = True
    corruption_marked_by_hand: bool = False
    information_notice: bool = False
    first_response_due_at: datetime | None = None
    first_response_at: datetime | None = None
    rumour: bool = False
    refutation_due_at: datetime | None = None
    refuted_at: datetime | None = None
    routed_people: tuple[str, ...] = ()  # directory person ids
    last_alert_sequence: int = 0
    level_reasons: tuple[str, ...] = ()  # the grader's reasons for the current level, as sentences

    @property
    def is_open(self) -> bool:
        return self.status is not CaseStatus.CLOSED


@dataclass(frozen=True)
class Supervision:
    """督办 of an overdue task: reminders sent and the rung now supervising."""

    reminders: int = 0
    last_reminded_at: datetime | None = None
    supervised_by: Rung | None = None


@dataclass(frozen=True)
class Attachment:
    """A file on a task; the content is stored once per ``sha256``."""

    id: str
    name: str
    content_type: str
    size_bytes: int
    sha256: str
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class Progress:
    note: str
    reported_at: datetime
    reported_by: str
    attachment_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Task:
    id: str
    case_id: str
    agency: str  # agency key, e.g. "police_cyber"; "responsible_unit" with assignee_unit
    description: str
    due_at: datetime
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    assignee_unit: str = ""
    playbook_step: str = ""
    result: str = ""
    completed_at: datetime | None = None
    completed_by: str = ""
    supervision: Supervision = Supervision()
    progress: tuple[Progress, ...] = ()
    attachments: tuple[Attachment, ...] = ()

    def overdue(self, now: datetime) -> bool:
        return self.status in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS) and now > self.due_at


@dataclass(frozen=True)
class Decision:
    text: str
    owner: str  # agency key
    case_id: str = ""
    due_at: datetime | None = None
    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Meeting:
    id: str
    kind: str  # "quarterly" | "emergency"
    title: str
    case_ids: tuple[str, ...]
    convened_at: datetime
    scheduled_at: datetime
    attendees: tuple[str, ...]
    convened_by: str
    minutes: str = ""
    decisions: tuple[Decision, ...] = ()
    present: tuple[str, ...] = ()
    minutes_recorded_at: datetime | None = None


@dataclass(frozen=True)
class Instruction:
    id: str
    case_id: str
    leader_id: str
    leader_name: str
    leader_role: str
    rung: Rung
    text: str
    issued_at: datetime
    recorded_at: datetime
    recorded_by: str
    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublicationAsk:
    """A release the coordinator asks the publisher for (becomes ``qingfeng.v1.PublicationRequest``)."""

    id: str
    case_id: str
    event_id: str
    kind: str  # "statement" | "progress" | "refutation" | "result" | "reply"
    level: Level
    due_at: datetime
    playbook_step: str
    requested_at: datetime
    requested_by: str
    facts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Timer:
    """A durable deadline: fires once at ``due_at`` (``kind`` says what it does to ``target``)."""

    id: str
    kind: str  # "ack" | "task" | "quarterly"
    target: str
    due_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)
    agency: str | None = None


@dataclass(frozen=True)
class Change:
    """What one decision of the core asks the adapters to make durable, all in one transaction.

    ``case_events`` are the event types announced on ``qingfeng.cases.v1`` for ``case`` (e.g. "case.opened").
    ``cancel_timers`` are target prefixes whose pending timers no longer apply (a new deadline replaces them).
    """

    case: Case | None = None
    case_events: tuple[str, ...] = ()
    tasks: tuple[Task, ...] = ()
    publications: tuple[PublicationAsk, ...] = ()
    meetings: tuple[Meeting, ...] = ()
    timers: tuple[Timer, ...] = ()
    cancel_timers: tuple[tuple[str, str], ...] = ()  # (kind, target)
    audit: tuple[AuditEntry, ...] = ()

    def __add__(self, other: Change) -> Change:
        return Change(
            case=other.case if other.case is not None else self.case,
            case_events=self.case_events + other.case_events,
            tasks=self.tasks + other.tasks,
            publications=self.publications + other.publications,
            meetings=self.meetings + other.meetings,
            timers=self.timers + other.timers,
            cancel_timers=self.cancel_timers + other.cancel_timers,
            audit=self.audit + other.audit,
        )
