"""A case's life: opened by an alert (or by hand), routed, acknowledged, verified (核查), disposed of, closed, and
reopened when its event escalates again (跟踪处置: a secondary wave). Missed acknowledgement deadlines climb the
ladder; a level raised by the grader re-routes the open case; 涉腐 marks re-route it too.

Every function takes the policy and ``now`` and returns a ``Change``; none reads a clock or touches storage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.coordinator.core.model import (
    AuditEntry,
    Case,
    CaseStatus,
    Change,
    Escalation,
    Level,
    Meeting,
    Rung,
    Task,
    TaskStatus,
    Timer,
)
from services.coordinator.core.policy import Directory, RoutingPolicy
from services.coordinator.core.routing import (
    ack_deadline,
    criteria_values,
    is_corruption_related,
    make_id,
    next_rung,
    people_for,
    target_rung,
)

__all__ = [
    "SYSTEM",
    "AlertView",
    "InvalidTransition",
    "ack_timer_fired",
    "acknowledge",
    "apply_alert",
    "begin_verification",
    "close_case",
    "mark_corruption",
    "open_case",
    "publication_published",
]

SYSTEM = "coordinator"


class InvalidTransition(ValueError):
    """The case is not in a state that allows the action (e.g. acknowledging a closed case)."""


@dataclass(frozen=True)
class AlertView:
    """What the coordinator uses of a grader ``Alert``; ``event_id`` is already resolved through merge redirects."""

    id: str
    event_id: str
    sequence: int
    from_level: Level
    to_level: Level
    title: str
    at: datetime
    regions: tuple[tuple[str, str], ...] = ()
    reasons: tuple[tuple[str, float], ...] = ()  # (criterion, value)
    reason_texts: tuple[str, ...] = ()  # the reasons as the grader worded them
    relevance: float | None = None  # the event's mean corruption relevance, when the grader sent it


def _relevance(policy: RoutingPolicy, alert: AlertView, previous: float) -> float:
    """The event's relevance as the alert carries it, else from a reason on that criterion, else what was known."""
    if alert.relevance is not None:
        return alert.relevance
    values = criteria_values(alert.reasons, [policy.corruption.relevance_criterion])
    return max(values) if values else previous


def _is_rumour(policy: RoutingPolicy, alert: AlertView) -> bool:
    return any(c in policy.clocks.rumour_criteria for c, _ in alert.reasons)


def _ack_timer(case: Case) -> tuple[tuple[tuple[str, str], ...], tuple[Timer, ...]]:
    cancel = (("ack", case.id),)
    if case.ack_deadline is None or case.status is not CaseStatus.AWAITING_ACK:
        return cancel, ()
    return cancel, (
        Timer(make_id("tm", "ack", case.id, case.ack_deadline.isoformat()), "ack", case.id, case.ack_deadline),
    )


def _clocks(policy: RoutingPolicy, case: Case, alert: AlertView | None) -> Case:
    """Golden period (from the first alert, for the policy's levels) and refutation clock (from a rumour alert)."""
    if case.first_response_due_at is None and case.level in policy.clocks.golden_period_levels:
        case = replace(case, first_response_due_at=case.first_alert_at + policy.clocks.golden_period)
    if alert is not None and _is_rumour(policy, alert) and case.refutation_due_at is None:
        case = replace(case, rumour=True, refutation_due_at=alert.at + policy.clocks.refute_within)
    return case


def _notice_task(policy: RoutingPolicy, case: Case, now: datetime) -> Task:
    """The information notice (信息通报) that hands general online opinion to the propaganda department."""
    agency = policy.corruption.notice_agency
    return Task(
        id=make_id("t", case.id, "notice", case.wave, agency),
        case_id=case.id,
        agency=agency,
        description=f"信息通报: 非涉腐网络舆情「{case.title}」, 请按职责做好舆论引导",
        due_at=now + policy.corruption.notice_within,
        status=TaskStatus.OPEN,
        created_at=now,
        updated_at=now,
        playbook_step="notice.information",
    )


def _emergency_meeting(policy: RoutingPolicy, case: Case, now: datetime) -> Meeting | None:
    if not case.corruption_related or policy.rule(case.level).emergency_meeting != "automatic":
        return None
    return Meeting(
        id=make_id("m", case.id, case.wave, "emergency", case.level.key),
        kind="emergency",
        title=f"紧急联席会议: {case.title}",
        case_ids=(case.id,),
        convened_at=now,
        scheduled_at=now + policy.meetings.emergency_within,
        attendees=policy.meetings.members,
        convened_by=SYSTEM,
    )


def _route(
    policy: RoutingPolicy, directory: Directory, case: Case, now: datetime, *, cause: str | None
) -> tuple[Case, tuple[AuditEntry, ...]]:
    """Route to the rung the level (and 涉腐) calls for; ``cause`` records an Escalation when the rung rises."""
    rung = target_rung(policy, case.level, case.corruption_related)
    escalated = cause is not None and rung > case.routed_to
    deadline = ack_deadline(policy, case.level, now)
    history = case.escalations
    if escalated and cause is not None:
        history += (Escalation(case.routed_to, rung, cause, now, deadline),)
    routed = replace(
        case,
        routed_to=rung,
        routed_people=people_for(directory, rung),
        ack_deadline=deadline,
        status=CaseStatus.AWAITING_ACK,
        acknowledged_at=None,
        acknowledged_by="",
        escalations=history,
        updated_at=now,
    )
    details = {
        "rung": rung.key,
        "level": case.level.key,
        "ack_deadline": deadline.isoformat(),
        "people": list(routed.routed_people),
        "corruption_related": case.corruption_related,
    }
    if cause:
        details["cause"] = cause
    return routed, (AuditEntry(SYSTEM, "case.route", f"cases/{case.id}", details),)


def open_case(
    policy: RoutingPolicy, directory: Directory, alert: AlertView, now: datetime, *, case_id: str | None = None
) -> Change:
    """The case for an event's first alert (blue or above): routed by level and 涉腐, clocks started."""
    relevance = _relevance(policy, alert, -1.0)
    related = is_corruption_related(policy, relevance)
    case = Case(
        id=case_id or make_id("case", alert.event_id),
        event_id=alert.event_id,
        title=alert.title,
        level=alert.to_level,
        status=CaseStatus.AWAITING_ACK,
        routed_to=Rung.OPINION_OFFICE,
        created_at=now,
        updated_at=now,
        first_alert_at=alert.at,
        regions=alert.regions,
        corruption_relevance=relevance,
        corruption_related=related,
        information_notice=not related,
        last_alert_sequence=alert.sequence,
        level_reasons=alert.reason_texts,
    )
    case = _clocks(policy, case, alert)
    case, routed_audit = _route(policy, directory, case, now, cause=None)
    cancel, timers = _ack_timer(case)
    opened = AuditEntry(
        SYSTEM,
        "case.open",
        f"cases/{case.id}",
        {"event_id": case.event_id, "alert_id": alert.id, "level": case.level.key},
    )
    meeting = _emergency_meeting(policy, case, now)
    tasks = () if related else (_notice_task(policy, case, now),)
    return Change(
        case=case,
        case_events=("case.opened",),
        tasks=tasks,
        meetings=(meeting,) if meeting else (),
        timers=timers,
        cancel_timers=cancel,
        audit=(opened, *routed_audit),
    )


def apply_alert(policy: RoutingPolicy, directory: Directory, case: Case, alert: AlertView, now: datetime) -> Change:
    """A later alert of the case's event: follow the level, re-route on a raise, reopen a closed case that escalates.

    An alert not newer than the last one applied (a replay, or an older alert of a merged event) changes nothing.
    """
    if alert.sequence <= case.last_alert_sequence and alert.event_id == case.event_id:
        return Change()
    relevance = _relevance(policy, alert, case.corruption_relevance)
    related = case.corruption_related if case.corruption_marked_by_hand else is_corruption_related(policy, relevance)
    raised = alert.to_level > case.level
    updated = replace(
        case,
        level=alert.to_level,
        title=alert.title or case.title,
        corruption_relevance=relevance,
        corruption_related=related,
        information_notice=not related,
        updated_at=now,
        last_alert_sequence=alert.sequence if alert.event_id == case.event_id else case.last_alert_sequence,
        regions=alert.regions or case.regions,
        level_reasons=alert.reason_texts or case.level_reasons,
    )
    audit: list[AuditEntry] = [
        AuditEntry(
            SYSTEM,
            "case.level_change",
            f"cases/{case.id}",
            {"alert_id": alert.id, "from": case.level.key, "to": alert.to_level.key},
        )
    ]
    events: list[str] = ["case.level_changed"] if alert.to_level != case.level else []
    tasks: tuple[Task, ...] = ()
    if not case.is_open:
        if not raised or alert.to_level < Level.BLUE:
            return Change(case=updated, case_events=tuple(events), audit=tuple(audit))
        # 跟踪处置: the event heats up again after closing, a secondary wave (二次舆情) of the same case.
        updated = replace(
            updated,
            wave=case.wave + 1,
            reopened_at=now,
            closed_at=None,
            disposition=None,
            disposition_rationale="",
            status=CaseStatus.AWAITING_ACK,
        )
        audit.append(AuditEntry(SYSTEM, "case.reopen", f"cases/{case.id}", {"wave": updated.wave}))
        events.append("case.reopened")
    updated = _clocks(policy, updated, alert)
    meeting = None
    if raised or related != case.corruption_related or not case.is_open:
        routed, routed_audit = _route(policy, directory, updated, now, cause="level_raised")
        if routed.routed_to != case.routed_to or not case.is_open or related != case.corruption_related:
            updated = routed
            audit.extend(routed_audit)
            events.append("case.routed")
        if not related and case.corruption_related:
            tasks = (_notice_task(policy, updated, now),)
        meeting = _emergency_meeting(policy, updated, now) if raised else None
    cancel, timers = _ack_timer(updated)
    return Change(
        case=updated,
        case_events=tuple(events),
        tasks=tasks,
        meetings=(meeting,) if meeting else (),
        timers=timers,
        cancel_timers=cancel,
        audit=tuple(audit),
    )


def ack_timer_fired(policy: RoutingPolicy, directory: Directory, case: Case, due_at: datetime, now: datetime) -> Change:
    """The acknowledgement deadline ``due_at`` passed: escalate one rung (recorded), with a new deadline.

    A stale timer (the case was acknowledged, closed or re-routed with another deadline since) changes nothing.
    At the top of the ladder the miss is recorded and no further timer is set.
    """
    if case.status is not CaseStatus.AWAITING_ACK or case.ack_deadline != due_at:
        return Change()
    target = f"cases/{case.id}"
    higher = next_rung(policy, case.routed_to) if case.corruption_related else None
    if higher is None:
        missed = AuditEntry(SYSTEM, "case.ack_missed", target, {"rung": case.routed_to.key, "top": True})
        return Change(case=replace(case, updated_at=now), case_events=("case.ack_missed",), audit=(missed,))
    deadline = ack_deadline(policy, case.level, now, escalated=True)
    escalation = Escalation(case.routed_to, higher, "ack_deadline_missed", now, deadline)
    escalated = replace(
        case,
        routed_to=higher,
        routed_people=people_for(directory, higher),
        ack_deadline=deadline,
        escalations=(*case.escalations, escalation),
        updated_at=now,
    )
    cancel, timers = _ack_timer(escalated)
    entry = AuditEntry(
        SYSTEM,
        "case.escalate",
        target,
        {
            "from": case.routed_to.key,
            "to": higher.key,
            "cause": "ack_deadline_missed",
            "ack_deadline": deadline.isoformat(),
        },
    )
    return Change(case=escalated, case_events=("case.escalated",), timers=timers, cancel_timers=cancel, audit=(entry,))


def acknowledge(case: Case, actor: str, agency: str | None, note: str, now: datetime) -> Change:
    if case.status is not CaseStatus.AWAITING_ACK:
        raise InvalidTransition(f"case {case.id} is {case.status.value}, not awaiting acknowledgement")
    acked = replace(case, status=CaseStatus.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor, updated_at=now)
    entry = AuditEntry(
        actor, "case.acknowledge", f"cases/{case.id}", {"note": note, "rung": case.routed_to.key}, agency
    )
    return Change(case=acked, case_events=("case.acknowledged",), cancel_timers=(("ack", case.id),), audit=(entry,))


def begin_verification(case: Case, actor: str, agency: str | None, now: datetime) -> Change:
    """核查: the acknowledged case is being verified before a finding is set."""
    if case.status is not CaseStatus.ACKNOWLEDGED:
        raise InvalidTransition(f"case {case.id} is {case.status.value}, not acknowledged")
    verifying = replace(case, status=CaseStatus.VERIFYING, updated_at=now)
    entry = AuditEntry(actor, "case.verify", f"cases/{case.id}", {}, agency)
    return Change(case=verifying, case_events=("case.verifying",), audit=(entry,))


def close_case(case: Case, actor: str, agency: str | None, now: datetime) -> Change:
    if case.status is not CaseStatus.IN_DISPOSITION:
        raise InvalidTransition(f"case {case.id} is {case.status.value}; only a case in disposition closes")
    closed = replace(case, status=CaseStatus.CLOSED, closed_at=now, updated_at=now)
    entry = AuditEntry(actor, "case.close", f"cases/{case.id}", {"wave": case.wave}, agency)
    return Change(case=closed, case_events=("case.closed",), cancel_timers=(("ack", case.id),), audit=(entry,))


def mark_corruption(
    policy: RoutingPolicy,
    directory: Directory,
    case: Case,
    related: bool,
    reason: str,
    actor: str,
    agency: str | None,
    now: datetime,
) -> Change:
    """The office marks the event 涉腐 or 非涉腐 by hand: audited, and the case re-routed (a notice for propaganda
    when it is not 涉腐; up the discipline chain by level when it is)."""
    marked = replace(
        case, corruption_related=related, corruption_marked_by_hand=True, information_notice=not related, updated_at=now
    )
    entry = AuditEntry(
        actor,
        "case.mark_corruption",
        f"cases/{case.id}",
        {"corruption_related": related, "reason": reason, "was": case.corruption_related},
        agency,
    )
    if not case.is_open or related == case.corruption_related:
        return Change(case=marked, case_events=("case.corruption_marked",), audit=(entry,))
    routed, routed_audit = _route(policy, directory, marked, now, cause="corruption_marked")
    cancel, timers = _ack_timer(routed)
    tasks = () if related else (_notice_task(policy, routed, now),)
    return Change(
        case=routed,
        case_events=("case.corruption_marked", "case.routed"),
        tasks=tasks,
        timers=timers,
        cancel_timers=cancel,
        audit=(entry, *routed_audit),
    )


def publication_published(case: Case, publication_id: str, published_at: datetime, now: datetime) -> Change:
    """A release for the case went out: the golden-period clock (first response) and, for a rumour, the
    refutation clock are met at ``published_at`` (the first time only)."""
    updated = case
    if case.first_response_at is None:
        updated = replace(updated, first_response_at=published_at)
    if case.rumour and case.refuted_at is None:
        updated = replace(updated, refuted_at=published_at)
    if updated == case:
        return Change()
    updated = replace(updated, updated_at=now)
    entry = AuditEntry(
        SYSTEM,
        "case.clock_met",
        f"cases/{case.id}",
        {
            "publication_id": publication_id,
            "published_at": published_at.isoformat(),
            "golden_period_met": _met(updated.first_response_at, updated.first_response_due_at),
            "refutation_met": _met(updated.refuted_at, updated.refutation_due_at) if updated.rumour else None,
        },
    )
    return Change(case=updated, case_events=("case.clock_met",), audit=(entry,))


def _met(at: datetime | None, due: datetime | None) -> bool | None:
    if due is None or at is None:
        return None
    return at <= due
