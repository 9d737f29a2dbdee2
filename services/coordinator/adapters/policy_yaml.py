"""Load and validate the coordinator's policy files (routing, playbooks, directory) from YAML.

Each file declares its ``kind``; pydantic checks every field (unknown fields are errors), and a failure raises
``PolicyFileError`` whose lines name the file and the dotted field, e.g.
``policies/routing.yaml: levels.red.ack_within: not a duration like 15m, 2h or next_working_day``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.coordinator.core.model import Disposition, Level, Rung
from services.coordinator.core.policy import (
    NEXT_WORKING_DAY,
    AgencyInfo,
    AttachmentRule,
    Calendar,
    ClockRule,
    CorruptionRule,
    Directory,
    LevelRule,
    MeetingRule,
    Person,
    Playbook,
    Playbooks,
    PublicationStep,
    RoutingPolicy,
    SupervisionRule,
    TaskStep,
)

__all__ = [
    "DEFAULT_DIRECTORY",
    "DEFAULT_PLAYBOOKS",
    "DEFAULT_ROUTING",
    "KINDS",
    "PolicyFileError",
    "load_directory",
    "load_playbooks",
    "load_routing",
    "validate_file",
]

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_ROUTING = POLICY_DIR / "routing.yaml"
DEFAULT_PLAYBOOKS = POLICY_DIR / "playbooks.yaml"
DEFAULT_DIRECTORY = POLICY_DIR / "directory.yaml"

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
_OFFSET = re.compile(r"^([+-])(\d\d):(\d\d)$")
_FIELD_FIRST = re.compile(r"^([\w.]+): (.*)$", re.S)
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_THREE_TIER = {"general": (Level.BLUE,), "major": (Level.YELLOW,), "serious": (Level.ORANGE, Level.RED)}


class PolicyFileError(ValueError):
    """A policy file is unreadable or invalid; ``errors`` are (field, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = tuple(errors)
        super().__init__("\n".join(f"{source}: {f}: {m}" if f else f"{source}: {m}" for f, m in errors))


def _duration(value: Any) -> timedelta:
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError("not a duration like 15m, 2h or 3d")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(minutes=n) if unit == "m" else timedelta(hours=n) if unit == "h" else timedelta(days=n)


def _clock(value: str) -> timedelta:
    match = _CLOCK.match(value)
    if not match:
        raise ValueError("not a time of day like 09:00")
    return timedelta(hours=int(match.group(1)), minutes=int(match.group(2)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Level(_Strict):
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
                _duration(v)
            except ValueError as err:
                raise ValueError("not a duration like 15m, 2h or next_working_day") from err
        return v


class _Escalation(_Strict):
    ladder: list[RungName] = Field(min_length=1)
    ack_within: str = "15m"

    @field_validator("ack_within")
    @classmethod
    def _d(cls, v: str) -> str:
        _duration(v)
        return v

    @field_validator("ladder")
    @classmethod
    def _ordered(cls, v: list[str]) -> list[str]:
        ranks = [Rung[name.upper()] for name in v]
        if ranks != sorted(set(ranks)):
            raise ValueError("rungs must be distinct and go from the lowest up")
        return v


class _WorkingDays(_Strict):
    utc_offset: str = "+08:00"
    day_starts: str = "09:00"
    weekend: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["sat", "sun"]
    holidays: list[date] = []
    workdays: list[date] = []

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if not _OFFSET.match(v):
            raise ValueError("not a UTC offset like +08:00")
        return v

    @field_validator("day_starts")
    @classmethod
    def _start(cls, v: str) -> str:
        _clock(v)
        return v


class _Corruption(_Strict):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    relevance_criterion: str = "relevance"
    unknown_is_corruption: bool = True
    notice_agency: AgencyName = "propaganda"
    notice_within: str = "24h"


class _Clocks(_Strict):
    golden_period: str = "2h"
    golden_period_levels: list[Literal["blue", "yellow", "orange", "red"]] = ["orange", "red"]
    refute_within: str = "24h"
    rumour_criteria: list[str] = ["rumour"]


class _Supervision(_Strict):
    remind_every: str = "4h"
    escalate_after: int = Field(default=2, ge=1)
    ladder: list[RungName] = ["opinion_office", "deputy_standing_member", "secretary"]


class _Quarterly(_Strict):
    months: list[int] = Field(default=[1, 4, 7, 10], min_length=1)
    day: int = Field(default=15, ge=1, le=28)
    at: str = "09:00"

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        if any(m < 1 or m > 12 for m in v):
            raise ValueError("months are 1..12")
        return v


class _Meetings(_Strict):
    members: list[AgencyName] = Field(min_length=1)
    emergency_within: str = "2h"
    quarterly: _Quarterly = _Quarterly()


class _Attachments(_Strict):
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    max_per_task: int = Field(default=20, ge=1, le=1000)


class _Routing(_Strict):
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
    def _levels_of_scheme(self) -> _Routing:
        expected = {"blue", "yellow", "orange", "red"} if self.scheme == "four_color" else set(_THREE_TIER)
        if set(self.levels) != expected:
            raise ValueError(f"levels: the {self.scheme} scheme needs exactly {sorted(expected)}")
        return self


def _durations_of(data: Any, path: str, keys: tuple[str, ...], errors: list[tuple[str, str]]) -> None:
    if not isinstance(data, dict):
        return
    for key in keys:
        if key in data and data[key] is not None:
            try:
                _duration(data[key])
            except ValueError as err:
                errors.append((f"{path}{key}", str(err)))


def _read(path: Path | str, text: str | None) -> tuple[str, Any]:
    source = str(path)
    try:
        raw = text if text is not None else Path(path).read_text(encoding="utf-8")
        return source, yaml.safe_load(raw)
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyFileError(source, [("", f"cannot read: {err}")]) from err
    except yaml.YAMLError as err:
        raise PolicyFileError(source, [("", f"not YAML: {err}")]) from err


def _validate(model: type[_Strict], source: str, data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        errors = []
        for e in err.errors():
            field, message = ".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, ")
            if not field and (whole := _FIELD_FIRST.match(message)):  # a model-level check names its field first
                field, message = whole.group(1), whole.group(2)
            errors.append((field, message))
        raise PolicyFileError(source, errors) from None


def load_routing(path: Path | str = DEFAULT_ROUTING, text: str | None = None) -> RoutingPolicy:
    source, data = _read(path, text)
    doc: _Routing = _validate(_Routing, source, data)
    errors: list[tuple[str, str]] = []
    for name, rule in doc.levels.items():
        _durations_of(rule.model_dump(), f"levels.{name}.", ("first_response_within",), errors)
    _durations_of(data.get("corruption"), "corruption.", ("notice_within",), errors)
    _durations_of(data.get("clocks"), "clocks.", ("golden_period", "refute_within"), errors)
    _durations_of(data.get("supervision"), "supervision.", ("remind_every",), errors)
    _durations_of(data.get("meetings"), "meetings.", ("emergency_within",), errors)
    _durations_of(data, "", ("default_task_within",), errors)
    try:
        _clock(doc.meetings.quarterly.at)
    except ValueError as err:
        errors.append(("meetings.quarterly.at", str(err)))
    if errors:
        raise PolicyFileError(source, errors)
    levels: dict[Level, LevelRule] = {}
    for name, rule in doc.levels.items():
        ack = NEXT_WORKING_DAY if rule.ack_within == "next_working_day" else _duration(rule.ack_within)
        first = _duration(rule.first_response_within) if rule.first_response_within else None
        built = LevelRule(Rung[rule.route_to.upper()], ack, first, rule.emergency_meeting, rule.label)
        for level in _THREE_TIER.get(name, (Level[name.upper()],) if name.upper() in Level.__members__ else ()):
            levels[level] = built
    ranks = [levels[lv].rung for lv in sorted(levels)]
    if ranks != sorted(ranks):
        raise PolicyFileError(source, [("levels", "a more severe level must not go to a lower rung")])
    sign, hours, minutes = _OFFSET.match(doc.working_days.utc_offset).groups()  # type: ignore[union-attr]
    offset = timedelta(hours=int(hours), minutes=int(minutes)) * (1 if sign == "+" else -1)
    wd = doc.working_days
    return RoutingPolicy(
        version=doc.version,
        scheme=doc.scheme,
        levels=levels,
        ladder=tuple(Rung[r.upper()] for r in doc.escalation.ladder),
        escalated_ack_within=_duration(doc.escalation.ack_within),
        default_task_within=_duration(doc.default_task_within),
        calendar=Calendar(
            offset,
            _clock(wd.day_starts),
            frozenset(_DAYS[d] for d in wd.weekend),
            frozenset(wd.holidays),
            frozenset(wd.workdays),
        ),
        corruption=CorruptionRule(
            doc.corruption.threshold,
            doc.corruption.relevance_criterion,
            doc.corruption.unknown_is_corruption,
            doc.corruption.notice_agency,
            _duration(doc.corruption.notice_within),
        ),
        clocks=ClockRule(
            _duration(doc.clocks.golden_period),
            frozenset(Level[n.upper()] for n in doc.clocks.golden_period_levels),
            _duration(doc.clocks.refute_within),
            frozenset(doc.clocks.rumour_criteria),
        ),
        supervision=SupervisionRule(
            _duration(doc.supervision.remind_every),
            doc.supervision.escalate_after,
            tuple(Rung[r.upper()] for r in doc.supervision.ladder),
        ),
        meetings=MeetingRule(
            tuple(doc.meetings.members),
            _duration(doc.meetings.emergency_within),
            tuple(doc.meetings.quarterly.months),
            doc.meetings.quarterly.day,
            _clock(doc.meetings.quarterly.at),
        ),
        attachments=AttachmentRule(doc.attachments.max_bytes, doc.attachments.max_per_task),
    )


class _TaskStep(_Strict):
    step: str = Field(min_length=1)
    agency: AgencyName
    description: str = Field(min_length=1)
    due_within: str
    assignee_unit: str = ""

    @field_validator("due_within")
    @classmethod
    def _d(cls, v: str) -> str:
        _duration(v)
        return v


class _PublicationStep(_Strict):
    step: str = Field(min_length=1)
    kind: Literal["statement", "progress", "refutation", "result", "reply"]
    due: Literal["within", "refutation", "golden_period"] = "within"
    due_within: str = "24h"
    repeat: int = Field(default=1, ge=1, le=20)
    every: str = "24h"

    @field_validator("due_within", "every")
    @classmethod
    def _d(cls, v: str) -> str:
        _duration(v)
        return v


class _Playbook(_Strict):
    tasks: list[_TaskStep] = []
    publications: list[_PublicationStep] = []


class _Playbooks(_Strict):
    kind: Literal["coordinator-playbooks"]
    version: str = Field(min_length=1)
    playbooks: dict[
        Literal[
            "verified_true", "reasonable_suggestion", "false_information", "needs_investigation", "misunderstanding"
        ],
        _Playbook,
    ]


def load_playbooks(path: Path | str = DEFAULT_PLAYBOOKS, text: str | None = None) -> Playbooks:
    source, data = _read(path, text)
    doc: _Playbooks = _validate(_Playbooks, source, data)
    steps = [t.step for p in doc.playbooks.values() for t in p.tasks]
    steps += [u.step for p in doc.playbooks.values() for u in p.publications]
    duplicates = sorted({s for s in steps if steps.count(s) > 1})
    if duplicates:
        raise PolicyFileError(source, [("playbooks", f"step names must be unique: {duplicates}")])
    return Playbooks(
        version=doc.version,
        by_disposition={
            Disposition(name): Playbook(
                tuple(
                    TaskStep(t.step, t.agency, t.description, _duration(t.due_within), t.assignee_unit)
                    for t in book.tasks
                ),
                tuple(
                    PublicationStep(p.step, p.kind, p.due, _duration(p.due_within), p.repeat, _duration(p.every))
                    for p in book.publications
                ),
            )
            for name, book in doc.playbooks.items()
        },
    )


class _Person(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: str = ""


class _Agency(_Strict):
    name: str = Field(min_length=1)
    duties: list[str] = []


class _Directory(_Strict):
    kind: Literal["coordinator-directory"]
    version: str = Field(min_length=1)
    rungs: dict[RungName, list[_Person]]
    agencies: dict[AgencyName, _Agency] = {}


def load_directory(path: Path | str = DEFAULT_DIRECTORY, text: str | None = None) -> Directory:
    source, data = _read(path, text)
    doc: _Directory = _validate(_Directory, source, data)
    return Directory(
        version=doc.version,
        people={
            Rung[r.upper()]: tuple(Person(p.id, p.name, p.role) for p in people) for r, people in doc.rungs.items()
        },
        agencies={k: AgencyInfo(a.name, tuple(a.duties)) for k, a in doc.agencies.items()},
    )


KINDS: dict[str, Callable[[Path | str], RoutingPolicy | Playbooks | Directory]] = {
    "coordinator-routing": load_routing,
    "coordinator-playbooks": load_playbooks,
    "coordinator-directory": load_directory,
}


def validate_file(path: Path | str) -> str:
    """Validate any coordinator policy file by its ``kind``; the summary line, or ``PolicyFileError``."""
    source, data = _read(path, None)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in KINDS:
        raise PolicyFileError(source, [("kind", f"must be one of {sorted(KINDS)}")])
    loaded = KINDS[kind](path)
    if isinstance(loaded, RoutingPolicy):
        return f"OK {kind} {loaded.version}: {loaded.scheme}, {len(loaded.levels)} levels"
    if isinstance(loaded, Playbooks):
        return f"OK {kind} {loaded.version}: {len(loaded.by_disposition)} playbooks"
    return f"OK {kind} {loaded.version}: {sum(len(p) for p in loaded.people.values())} people"
