"""The pydantic shapes of the coordinator's policy files (``policy_yaml`` loads them into the core's values).

Unknown fields are errors; durations are ``15m``/``2h``/``3d``, times of day ``09:00``, UTC offsets ``+08:00``.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.coordinator.core.model import Level, Rung

__all__ = [
    "AGENCY_KEYS",
    "DAYS",
    "OFFSET",
    "THREE_TIER",
    "DirectoryModel",
    "PlaybooksModel",
    "RoutingModel",
    "Strict",
    "clock_of",
    "duration_of",
]

AGENCY_KEYS = (
    "opinion_office",
    "discipline_commission",
    "propaganda",
    "police_cyber",
    "petitions",
    "daily_newspaper",
    "telecom_regulator",
    "case_management",
    "municipal_committee",
    "responsible_unit",
    "channel_operator",
)
RungName = Literal["opinion_office", "deputy_standing_member", "secretary", "municipal_committee"]
AgencyName = Literal[
    "opinion_office",
    "discipline_commission",
    "propaganda",
    "police_cyber",
    "petitions",
    "daily_newspaper",
    "telecom_regulator",
    "case_management",
    "municipal_committee",
    "responsible_unit",
    "channel_operator",
]
_DURATION = re.compile(r"^(\d+)(m|h|d)$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
OFFSET = re.compile(r"^([+-])(\d\d):(\d\d)$")
DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
THREE_TIER = {"general": (Level.BLUE,), "major": (Level.YELLOW,), "serious": (Level.ORANGE, Level.RED)}


def duration_of(value: Any) -> timedelta:
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError("not a duration like 15m, 2h or 3d")
    n, unit = int(match.group(1)), match.group(2)
    # A century at most: "99999999999d" overflowed timedelta, and shorter ones overflowed the first deadline.
    if n * {"m": 60, "h": 3600, "d": 86400}[unit] > 36_500 * 86400:
        raise ValueError("not a duration like 15m, 2h or 3d of at most 36500d")
    return timedelta(minutes=n) if unit == "m" else timedelta(hours=n) if unit == "h" else timedelta(days=n)


def clock_of(value: str) -> timedelta:
    match = _CLOCK.match(value)
    if not match:
        raise ValueError("not a time of day like 09:00")
    return timedelta(hours=int(match.group(1)), minutes=int(match.group(2)))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Level(Strict):
    label: str = ""
    route_to: RungName
    ack_within: str
    first_response_within: str | None = None
    emergency_meeting: Literal["none", "on_demand", "automatic"] = "none"

    @field_validator("ack_within")
    @classmethod
    def _ack(cls, v: str) -> str:
        if v != "next_working_day":
            try:
                duration_of(v)
            except ValueError as err:
                raise ValueError("not a duration like 15m, 2h or next_working_day") from err
        return v


class _Escalation(Strict):
    ladder: list[RungName] = Field(min_length=1)
    ack_within: str = "15m"
    # The identity roles (as the gateway's access policy gives them) that may escalate a case by hand; none: nobody.
    manual_roles: list[str] = []

    @field_validator("manual_roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        if any(not role.strip() for role in v) or len(set(v)) != len(v):
            raise ValueError("roles must be non-empty and distinct")
        return v

    @field_validator("ack_within")
    @classmethod
    def _d(cls, v: str) -> str:
        duration_of(v)
        return v

    @field_validator("ladder")
    @classmethod
    def _ordered(cls, v: list[str]) -> list[str]:
        ranks = [Rung[name.upper()] for name in v]
        if ranks != sorted(set(ranks)):
            raise ValueError("rungs must be distinct and go from the lowest up")
        return v


class _WorkingDays(Strict):
    utc_offset: str = "+08:00"
    day_starts: str = "09:00"
    weekend: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["sat", "sun"]
    holidays: list[date] = []
    workdays: list[date] = []

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if not OFFSET.match(v):
            raise ValueError("not a UTC offset like +08:00")
        return v

    @field_validator("day_starts")
    @classmethod
    def _start(cls, v: str) -> str:
        clock_of(v)
        return v


class _Corruption(Strict):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    relevance_criterion: str = "relevance"
    unknown_is_corruption: bool = True
    notice_agency: AgencyName = "propaganda"
    notice_within: str = "24h"


class _Clocks(Strict):
    golden_period: str = "2h"
    golden_period_levels: list[Literal["blue", "yellow", "orange", "red"]] = ["orange", "red"]
    refute_within: str = "24h"
    rumour_criteria: list[str] = ["rumour"]


class _Supervision(Strict):
    remind_every: str = "4h"
    escalate_after: int = Field(default=2, ge=1)
    ladder: list[RungName] = ["opinion_office", "deputy_standing_member", "secretary"]


class _Quarterly(Strict):
    months: list[int] = Field(default=[1, 4, 7, 10], min_length=1)
    day: int = Field(default=15, ge=1, le=28)
    at: str = "09:00"

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        if any(m < 1 or m > 12 for m in v):
            raise ValueError("months are 1..12")
        return v


class _Meetings(Strict):
    members: list[AgencyName] = Field(min_length=1)
    emergency_within: str = "2h"
    quarterly: _Quarterly = _Quarterly()


class _Attachments(Strict):
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    max_per_task: int = Field(default=20, ge=1, le=1000)


class RoutingModel(Strict):
    kind: Literal["coordinator-routing"]
    version: str = Field(min_length=1)
    scheme: Literal["four_color", "three_tier"] = "four_color"
    levels: dict[str, _Level]
    escalation: _Escalation
    working_days: _WorkingDays = _WorkingDays()
    corruption: _Corruption = _Corruption()
    clocks: _Clocks = _Clocks()
    supervision: _Supervision = _Supervision()
    default_task_within: str = "72h"
    meetings: _Meetings
    attachments: _Attachments = _Attachments()

    @model_validator(mode="after")
    def _levels_of_scheme(self) -> RoutingModel:
        expected = {"blue", "yellow", "orange", "red"} if self.scheme == "four_color" else set(THREE_TIER)
        if set(self.levels) != expected:
            raise ValueError(f"levels: the {self.scheme} scheme needs exactly {sorted(expected)}")
        return self


class _TaskStep(Strict):
    step: str = Field(min_length=1)
    agency: AgencyName
    description: str = Field(min_length=1)
    due_within: str
    assignee_unit: str = ""

    @field_validator("due_within")
    @classmethod
    def _d(cls, v: str) -> str:
        duration_of(v)
        return v


class _PublicationStep(Strict):
    step: str = Field(min_length=1)
    kind: Literal["statement", "progress", "refutation", "result", "reply"]
    due: Literal["within", "refutation", "golden_period"] = "within"
    due_within: str = "24h"
    repeat: int = Field(default=1, ge=1, le=20)
    every: str = "24h"

    @field_validator("due_within", "every")
    @classmethod
    def _d(cls, v: str) -> str:
        duration_of(v)
        return v


class _Playbook(Strict):
    tasks: list[_TaskStep] = []
    publications: list[_PublicationStep] = []


class PlaybooksModel(Strict):
    kind: Literal["coordinator-playbooks"]
    version: str = Field(min_length=1)
    playbooks: dict[
        Literal[
            "verified_true", "reasonable_suggestion", "false_information", "needs_investigation", "misunderstanding"
        ],
        _Playbook,
    ]


class _Person(Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: str = ""


class _Agency(Strict):
    name: str = Field(min_length=1)
    duties: list[str] = []


class DirectoryModel(Strict):
    kind: Literal["coordinator-directory"]
    version: str = Field(min_length=1)
    rungs: dict[RungName, list[_Person]]
    agencies: dict[AgencyName, _Agency] = {}
