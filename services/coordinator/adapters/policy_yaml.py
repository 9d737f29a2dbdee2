"""Load and validate the coordinator's policy files (routing, playbooks, directory) from YAML.

Each file declares its ``kind``; pydantic checks every field (unknown fields are errors), and a failure raises
``PolicyFileError`` whose lines name the file and the dotted field, e.g.
``policies/routing.yaml: levels.red.ack_within: not a duration like 15m, 2h or next_working_day``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from qingfeng.safe_yaml import SafeYamlError, load_yaml

from services.coordinator.adapters.policy_models import (
    DAYS,
    OFFSET,
    THREE_TIER,
    DirectoryModel,
    PlaybooksModel,
    RoutingModel,
    Strict,
    clock_of,
    duration_of,
)
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

# Routing, playbooks and the directory are a few KB; PyYAML's pure-Python parser is slow on large documents.
_MAX_POLICY_BYTES = 64 * 1024
_FIELD_FIRST = re.compile(r"^([\w.]+): (.*)$", re.S)
POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_ROUTING = POLICY_DIR / "routing.yaml"
DEFAULT_PLAYBOOKS = POLICY_DIR / "playbooks.yaml"
DEFAULT_DIRECTORY = POLICY_DIR / "directory.yaml"


class PolicyFileError(ValueError):
    """A policy file is unreadable or invalid; ``errors`` are (field, message) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = tuple(errors)
        super().__init__("\n".join(f"{source}: {f}: {m}" if f else f"{source}: {m}" for f, m in errors))


def _durations_of(data: Any, path: str, keys: tuple[str, ...], errors: list[tuple[str, str]]) -> None:
    if not isinstance(data, dict):
        return
    for key in keys:
        if key in data and data[key] is not None:
            try:
                duration_of(data[key])
            except ValueError as err:
                errors.append((f"{path}{key}", str(err)))


def _read(path: Path | str, text: str | None) -> tuple[str, Any]:
    source = str(path)
    try:
        raw = text if text is not None else Path(path).read_text(encoding="utf-8")
        # No anchors/aliases, bounded size and depth: a policy file is input, and input can be hostile.
        return source, load_yaml(raw, source=source, max_bytes=_MAX_POLICY_BYTES)
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyFileError(source, [("", f"cannot read: {err}")]) from err
    except SafeYamlError as err:
        raise PolicyFileError(source, [("", str(err))]) from err


def _validate(model: type[Strict], source: str, data: Any) -> Any:
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
    doc: RoutingModel = _validate(RoutingModel, source, data)
    errors: list[tuple[str, str]] = []
    for name, rule in doc.levels.items():
        _durations_of(rule.model_dump(), f"levels.{name}.", ("first_response_within",), errors)
    _durations_of(data.get("corruption"), "corruption.", ("notice_within",), errors)
    _durations_of(data.get("clocks"), "clocks.", ("golden_period", "refute_within"), errors)
    _durations_of(data.get("supervision"), "supervision.", ("remind_every",), errors)
    _durations_of(data.get("meetings"), "meetings.", ("emergency_within",), errors)
    _durations_of(data, "", ("default_task_within",), errors)
    try:
        clock_of(doc.meetings.quarterly.at)
    except ValueError as err:
        errors.append(("meetings.quarterly.at", str(err)))
    if errors:
        raise PolicyFileError(source, errors)
    levels: dict[Level, LevelRule] = {}
    for name, rule in doc.levels.items():
        ack = NEXT_WORKING_DAY if rule.ack_within == "next_working_day" else duration_of(rule.ack_within)
        first = duration_of(rule.first_response_within) if rule.first_response_within else None
        built = LevelRule(Rung[rule.route_to.upper()], ack, first, rule.emergency_meeting, rule.label)
        for level in THREE_TIER.get(name, (Level[name.upper()],) if name.upper() in Level.__members__ else ()):
            levels[level] = built
    ranks = [levels[lv].rung for lv in sorted(levels)]
    if ranks != sorted(ranks):
        raise PolicyFileError(source, [("levels", "a more severe level must not go to a lower rung")])
    sign, hours, minutes = OFFSET.match(doc.working_days.utc_offset).groups()  # type: ignore[union-attr]
    offset = timedelta(hours=int(hours), minutes=int(minutes)) * (1 if sign == "+" else -1)
    wd = doc.working_days
    return RoutingPolicy(
        version=doc.version,
        scheme=doc.scheme,
        levels=levels,
        ladder=tuple(Rung[r.upper()] for r in doc.escalation.ladder),
        escalated_ack_within=duration_of(doc.escalation.ack_within),
        manual_escalation_roles=frozenset(doc.escalation.manual_roles),
        default_task_within=duration_of(doc.default_task_within),
        calendar=Calendar(
            offset,
            clock_of(wd.day_starts),
            frozenset(DAYS[d] for d in wd.weekend),
            frozenset(wd.holidays),
            frozenset(wd.workdays),
        ),
        corruption=CorruptionRule(
            doc.corruption.threshold,
            doc.corruption.relevance_criterion,
            doc.corruption.unknown_is_corruption,
            doc.corruption.notice_agency,
            duration_of(doc.corruption.notice_within),
        ),
        clocks=ClockRule(
            duration_of(doc.clocks.golden_period),
            frozenset(Level[n.upper()] for n in doc.clocks.golden_period_levels),
            duration_of(doc.clocks.refute_within),
            frozenset(doc.clocks.rumour_criteria),
        ),
        supervision=SupervisionRule(
            duration_of(doc.supervision.remind_every),
            doc.supervision.escalate_after,
            tuple(Rung[r.upper()] for r in doc.supervision.ladder),
        ),
        meetings=MeetingRule(
            tuple(doc.meetings.members),
            duration_of(doc.meetings.emergency_within),
            tuple(doc.meetings.quarterly.months),
            doc.meetings.quarterly.day,
            clock_of(doc.meetings.quarterly.at),
        ),
        attachments=AttachmentRule(doc.attachments.max_bytes, doc.attachments.max_per_task),
    )


def load_playbooks(path: Path | str = DEFAULT_PLAYBOOKS, text: str | None = None) -> Playbooks:
    source, data = _read(path, text)
    doc: PlaybooksModel = _validate(PlaybooksModel, source, data)
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
                    TaskStep(t.step, t.agency, t.description, duration_of(t.due_within), t.assignee_unit)
                    for t in book.tasks
                ),
                tuple(
                    PublicationStep(p.step, p.kind, p.due, duration_of(p.due_within), p.repeat, duration_of(p.every))
                    for p in book.publications
                ),
            )
            for name, book in doc.playbooks.items()
        },
    )


def load_directory(path: Path | str = DEFAULT_DIRECTORY, text: str | None = None) -> Directory:
    source, data = _read(path, text)
    doc: DirectoryModel = _validate(DirectoryModel, source, data)
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
