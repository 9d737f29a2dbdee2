"""Who a case goes to and by when it must be acknowledged: level → rung, 涉腐 or not, working days, the ladder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from services.coordinator.core.model import Level, Rung
from services.coordinator.core.policy import NEXT_WORKING_DAY, Calendar, Directory, RoutingPolicy

__all__ = [
    "ack_deadline",
    "is_corruption_related",
    "make_id",
    "next_rung",
    "next_working_day_start",
    "people_for",
    "target_rung",
]


def make_id(prefix: str, *parts: object) -> str:
    """A stable id from what identifies the thing, so a replayed input makes the same row (and is ignored)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:20]
    return f"{prefix}-{digest}"


def next_working_day_start(calendar: Calendar, now: datetime) -> datetime:
    """The start of the first working day after ``now``'s local day (blue: "next working day")."""
    local = now.astimezone(UTC) + calendar.utc_offset
    day = local.date() + timedelta(days=1)
    for _ in range(60):  # holidays never run longer than a few weeks; the bound guards a bad calendar
        if calendar.is_working_day(day):
            break
        day += timedelta(days=1)
    start_local = datetime(day.year, day.month, day.day, tzinfo=UTC) + calendar.day_starts
    return start_local - calendar.utc_offset


def ack_deadline(policy: RoutingPolicy, level: Level, now: datetime, *, escalated: bool = False) -> datetime:
    """When acknowledgement is due for a case of ``level`` routed at ``now`` (after an escalation: the policy's
    escalated deadline, never later than the level's own)."""
    within = policy.rule(level).ack_within
    due = next_working_day_start(policy.calendar, now) if within == NEXT_WORKING_DAY else now + within
    if escalated:
        due = min(due, now + policy.escalated_ack_within)
    return due


def is_corruption_related(policy: RoutingPolicy, relevance: float) -> bool:
    """涉腐 by the score: at or above the threshold; an unknown score (< 0) follows the policy."""
    if relevance < 0:
        return policy.corruption.unknown_is_corruption
    return relevance >= policy.corruption.threshold


def target_rung(policy: RoutingPolicy, level: Level, corruption_related: bool) -> Rung:
    """The rung a case of ``level`` belongs to; opinion that is not 涉腐 never leaves the opinion office."""
    if not corruption_related:
        return Rung.OPINION_OFFICE
    return policy.rule(level).rung


def next_rung(policy: RoutingPolicy, rung: Rung) -> Rung | None:
    """The rung above ``rung`` on the escalation ladder; None at the top."""
    higher = [r for r in policy.ladder if r > rung]
    return min(higher) if higher else None


def people_for(directory: Directory, rung: Rung) -> tuple[str, ...]:
    return tuple(p.id for p in directory.people_of(rung))


def criteria_values(reasons: Iterable[tuple[str, float]], names: Iterable[str]) -> list[float]:
    wanted = set(names)
    return [value for criterion, value in reasons if criterion in wanted]
