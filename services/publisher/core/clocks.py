"""The response clocks (DESIGN §3): a first authoritative release for an orange or red case within the golden
period (2 h) of the alert, and a refutation of a false rumour within 24 h. Which clock runs depends on the draft's
kind and level; its deadline is the request's ``due_at`` or, when none was given, the start plus the policy's span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.publisher.core.model import Draft, Kind
from services.publisher.core.policy import Clocks

__all__ = ["ResponseClock", "due_at", "response_clock"]

GOLDEN_PERIOD = "golden_period"
REFUTATION = "refutation_24h"


@dataclass(frozen=True)
class ResponseClock:
    name: str
    due_at: datetime
    # None while running (not released yet and not overdue).
    met: bool | None


def _name(kind: Kind, level: str, clocks: Clocks) -> str | None:
    if kind is Kind.REFUTATION:
        return REFUTATION
    if kind is Kind.STATEMENT or level in clocks.golden_levels:
        return GOLDEN_PERIOD if level in clocks.golden_levels else None
    return None


def due_at(kind: Kind, level: str, started_at: datetime | None, clocks: Clocks) -> datetime | None:
    """The deadline implied by the policy when a request gave none."""
    name = _name(kind, level, clocks)
    if name is None or started_at is None:
        return None
    return started_at + (clocks.refutation if name == REFUTATION else clocks.golden_period)


def response_clock(draft: Draft, clocks: Clocks, now: datetime) -> ResponseClock | None:
    """The clock this draft races, met / missed / running at ``now``; None when it races none."""
    name = _name(draft.kind, draft.level, clocks)
    deadline = draft.due_at or due_at(draft.kind, draft.level, draft.clock_started_at, clocks)
    if deadline is None:
        return None
    name = name or "due"
    if draft.published_at is not None:
        return ResponseClock(name, deadline, draft.published_at <= deadline)
    return ResponseClock(name, deadline, False if now > deadline else None)
