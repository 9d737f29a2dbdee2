"""Escalation by hand: a person with one of the policy's roles raises a case's level, with a reason.

The raise re-routes the case exactly as a raise announced by the grader does (``cases._route``): the rung the new
level calls for (opinion that is not 涉腐 stays with the office), a fresh acknowledgement deadline, the clocks of the
new level, an automatic emergency meeting where the policy says so. Who may do it and whether a retry already did
it are decided by the caller (``service.py``); this function only refuses what no retry could fix.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.coordinator.core.cases import (
    InvalidTransition,
    _ack_timer,
    _clocks,
    _emergency_meeting,
    _route,
)
from services.coordinator.core.model import AuditEntry, Case, Change, Level
from services.coordinator.core.policy import Directory, RoutingPolicy

__all__ = ["MANUAL", "escalate_case", "may_escalate"]

MANUAL = "manual"  # the Escalation cause recorded on the case


def may_escalate(policy: RoutingPolicy, roles: frozenset[str]) -> bool:
    """Whether a caller holding ``roles`` may escalate by hand (``escalation.manual_roles`` of the routing policy)."""
    return bool(roles & policy.manual_escalation_roles)


def escalate_case(
    policy: RoutingPolicy,
    directory: Directory,
    case: Case,
    level: Level,
    reason: str,
    actor: str,
    agency: str | None,
    now: datetime,
) -> Change:
    """Raise ``case`` to ``level`` and re-route it; ``InvalidTransition`` for a closed case or a level not higher."""
    if not case.is_open:
        raise InvalidTransition(f"case {case.id} is closed; it reopens when its event escalates again")
    if level <= case.level:
        raise InvalidTransition(f"case {case.id} is already {case.level.key}; escalate to a higher level")
    raised = _clocks(policy, replace(case, level=level, updated_at=now), None)
    routed, routed_audit = _route(policy, directory, raised, now, cause=MANUAL)
    moved = routed.routed_to != case.routed_to
    updated = routed if moved else raised
    entry = AuditEntry(
        actor,
        "case.escalate",
        f"cases/{case.id}",
        {
            "cause": MANUAL,
            "reason": reason,
            "from_level": case.level.key,
            "to_level": level.key,
            "from_rung": case.routed_to.key,
            "to_rung": updated.routed_to.key,
        },
        agency,
    )
    events = ("case.level_changed", "case.escalated", *(("case.routed",) if moved else ()))
    meeting = _emergency_meeting(policy, updated, now)
    cancel, timers = _ack_timer(updated)
    return Change(
        case=updated,
        case_events=events,
        meetings=(meeting,) if meeting else (),
        timers=timers,
        cancel_timers=cancel,
        audit=(entry, *(routed_audit if moved else ())),
    )
