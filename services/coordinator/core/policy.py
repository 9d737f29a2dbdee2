"""The coordinator's policies as plain values: routing (levels, deadlines, ladder, 涉腐, clocks, 督办, meetings),
playbooks per disposition, and the directory of people and agencies.

They are built from validated YAML by ``adapters/policy_yaml.py``; the core only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from services.coordinator.core.model import Disposition, Level, Rung

__all__ = [
    "NEXT_WORKING_DAY",
    "AgencyInfo",
    "AttachmentRule",
    "Calendar",
    "ClockRule",
    "CorruptionRule",
    "Directory",
    "LevelRule",
    "MeetingRule",
    "Person",
    "Playbook",
    "Playbooks",
    "PublicationStep",
    "RoutingPolicy",
    "SupervisionRule",
    "TaskStep",
]

# ``LevelRule.ack_within`` sentinel: due at the start of the next working day (blue, DESIGN §3).
NEXT_WORKING_DAY = timedelta(0)


@dataclass(frozen=True)
class LevelRule:
    rung: Rung
    ack_within: timedelta  # NEXT_WORKING_DAY for "next_working_day"
    first_response_within: timedelta | None = None
    emergency_meeting: str = "none"  # "none" | "on_demand" | "automatic"
    label: str = ""


@dataclass(frozen=True)
class Calendar:
    """Working days in the office's time zone; ``workdays`` are weekend days worked (调休), ``holidays`` days off."""

    utc_offset: timedelta = timedelta(hours=8)
    day_starts: timedelta = timedelta(hours=9)
    weekend: frozenset[int] = frozenset({5, 6})  # Monday is 0
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays


@dataclass(frozen=True)
class CorruptionRule:
    """涉腐 routing: below ``threshold`` an event becomes an information notice for ``notice_agency``."""

    threshold: float = 0.5
    relevance_criterion: str = "relevance"
    unknown_is_corruption: bool = True
    notice_agency: str = "propaganda"
    notice_within: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class ClockRule:
    golden_period: timedelta = timedelta(hours=2)
    golden_period_levels: frozenset[Level] = frozenset({Level.ORANGE, Level.RED})
    refute_within: timedelta = timedelta(hours=24)
    rumour_criteria: frozenset[str] = frozenset({"rumour"})


@dataclass(frozen=True)
class SupervisionRule:
    """督办: a reminder when a task falls overdue and every ``remind_every`` after; from reminder
    ``escalate_after`` on, supervision moves one rung up ``ladder`` per reminder."""

    remind_every: timedelta = timedelta(hours=4)
    escalate_after: int = 2
    ladder: tuple[Rung, ...] = (Rung.OPINION_OFFICE, Rung.DEPUTY_STANDING_MEMBER, Rung.SECRETARY)


@dataclass(frozen=True)
class MeetingRule:
    members: tuple[str, ...] = (
        "propaganda",
        "police_cyber",
        "petitions",
        "daily_newspaper",
        "telecom_regulator",
        "case_management",
    )
    emergency_within: timedelta = timedelta(hours=2)
    quarterly_months: tuple[int, ...] = (1, 4, 7, 10)
    quarterly_day: int = 15
    quarterly_at: timedelta = timedelta(hours=9)


@dataclass(frozen=True)
class AttachmentRule:
    max_bytes: int = 5 * 1024 * 1024
    max_per_task: int = 20


@dataclass(frozen=True)
class RoutingPolicy:
    version: str
    scheme: str  # "four_color" | "three_tier"
    levels: Mapping[Level, LevelRule]
    ladder: tuple[Rung, ...]
    escalated_ack_within: timedelta
    default_task_within: timedelta
    calendar: Calendar
    corruption: CorruptionRule
    clocks: ClockRule
    supervision: SupervisionRule
    meetings: MeetingRule
    attachments: AttachmentRule = AttachmentRule()
    # Roles that may escalate a case by hand (EscalateCase); empty: nobody.
    manual_escalation_roles: frozenset[str] = frozenset()

    def rule(self, level: Level) -> LevelRule:
        # Levels below blue never open a case; the lowest configured rule stands in for safety.
        return self.levels.get(level) or self.levels[min(self.levels)]


@dataclass(frozen=True)
class TaskStep:
    step: str
    agency: str
    description: str
    due_within: timedelta
    assignee_unit: str = ""


@dataclass(frozen=True)
class PublicationStep:
    """``due``: "refutation" (the refutation clock), "golden_period", or a fixed ``due_within``; repeated
    ``repeat`` times ``every`` apart (progress on a schedule)."""

    step: str
    kind: str
    due: str = "within"
    due_within: timedelta = timedelta(hours=24)
    repeat: int = 1
    every: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Playbook:
    tasks: tuple[TaskStep, ...] = ()
    publications: tuple[PublicationStep, ...] = ()


@dataclass(frozen=True)
class Playbooks:
    version: str
    by_disposition: Mapping[Disposition, Playbook]


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    role: str


@dataclass(frozen=True)
class AgencyInfo:
    name: str
    duties: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directory:
    version: str
    people: Mapping[Rung, tuple[Person, ...]]
    agencies: Mapping[str, AgencyInfo]

    def people_of(self, rung: Rung) -> tuple[Person, ...]:
        return self.people.get(rung, ())
