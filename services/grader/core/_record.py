"""The per-event state the engine keeps, and its plain-data form for snapshot/restore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._cooldown import LevelState, settled
from ._guard import Guard
from .grading import Fired
from .metrics import EventMetrics
from .model import Grade, Override, Reason

__all__ = ["STATE_FORMAT", "EventRecord", "event_in", "event_out"]

STATE_FORMAT = "qingfeng.grader.state/1"

# (policy rank, what fired, graded at, rising, effective rank) of the last evaluation.
Evaluation = tuple[int, Fired, datetime, bool, int]


class EventRecord:
    """Mutable state of one event (a plain class with slots: it changes on every post)."""

    __slots__ = (
        "evaluation", "first_at", "grade", "guard", "id", "keywords", "last_at", "last_ts", "level", "metrics",
        "override", "posts", "previous", "reps", "rising", "sequence", "state", "title", "version",
    )  # fmt: skip

    def __init__(self, eid: str, metrics: EventMetrics, at: datetime) -> None:
        self.id = eid
        self.metrics = metrics
        self.state = settled(0)
        self.override: Override | None = None
        self.sequence = 0  # of the last alert; alerts are numbered 1, 2, … per event
        self.version = 0  # of the last snapshot
        self.level = 0  # effective canonical rank (override or policy)
        self.previous = 0
        self.rising = False
        self.first_at = self.last_at = at
        self.last_ts = at.timestamp()
        self.posts = 0
        self.reps: list[tuple[int, str]] = []  # (followers, post id), most followed first
        self.evaluation: Evaluation | None = None
        self.grade: Grade | None = None  # built from `evaluation` on demand
        self.title = ""  # as last shown, kept for the final snapshot after a merge
        self.keywords: tuple[str, ...] = ()
        self.guard: Guard | None = None  # the rules above its level known to fail (_guard); not stored


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _must(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _override_out(o: Override | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"level": o.level, "reason": o.reason, "by": o.by, "at": _dt(o.at), "expires_at": _dt(o.expires_at)}


def _override_in(data: dict[str, Any] | None) -> Override | None:
    if data is None:
        return None
    return Override(data["level"], data["reason"], data["by"], _must(data["at"]), _parse(data["expires_at"]))


def _grade_out(g: Grade) -> dict[str, Any]:
    return {
        "level": g.level,
        "label": g.label,
        "scheme": g.scheme,
        "policy_version": g.policy_version,
        "reasons": [list(r) for r in g.reasons],
        "graded_at": _dt(g.graded_at),
        "policy_level": g.policy_level,
        "rising": g.rising,
        "override": _override_out(g.override),
        "hold_until": _dt(g.hold_until),
    }


def _grade_in(data: dict[str, Any]) -> Grade:
    return Grade(
        level=data["level"],
        label=data["label"],
        scheme=data["scheme"],
        policy_version=data["policy_version"],
        reasons=tuple(Reason(*row) for row in data["reasons"]),
        graded_at=_must(data["graded_at"]),
        policy_level=data["policy_level"],
        rising=data["rising"],
        override=_override_in(data["override"]),
        hold_until=_parse(data["hold_until"]),
    )


def event_out(ev: EventRecord, grade: Grade) -> dict[str, Any]:
    """Plain data of one event; `grade` is its current grade (built by the engine)."""
    s = ev.state
    return {
        "id": ev.id,
        "metrics": ev.metrics.to_dict(),
        "state": [s.rank, s.below_since, s.pending],
        "override": _override_out(ev.override),
        "sequence": ev.sequence,
        "version": ev.version,
        "level": ev.level,
        "previous": ev.previous,
        "rising": ev.rising,
        "first_at": _dt(ev.first_at),
        "last_at": _dt(ev.last_at),
        "last_ts": ev.last_ts,
        "posts": ev.posts,
        "reps": [list(r) for r in ev.reps],
        "grade": _grade_out(grade),
        "title": ev.title,
        "keywords": list(ev.keywords),
    }


def event_in(row: dict[str, Any], metrics: EventMetrics) -> EventRecord:
    """Inverse of event_out, around metrics already rebuilt."""
    ev = EventRecord(row["id"], metrics, _must(row["first_at"]))
    ev.last_at, ev.last_ts = _must(row["last_at"]), row["last_ts"]
    ev.state = LevelState(*row["state"])
    ev.override = _override_in(row["override"])
    ev.sequence, ev.version, ev.level, ev.previous = row["sequence"], row["version"], row["level"], row["previous"]
    ev.rising, ev.posts = row["rising"], row["posts"]
    ev.reps = [(r[0], r[1]) for r in row["reps"]]
    ev.grade = _grade_in(row["grade"])
    ev.title, ev.keywords = row["title"], tuple(row["keywords"])
    return ev
