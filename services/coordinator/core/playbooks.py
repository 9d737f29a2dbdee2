"""Dispositions → playbooks: the finding on a case creates the agencies' tasks and the publication requests.

verified true → the lead goes to case management (案件管理); reasonable suggestion → supervised rectification;
false information → a refutation request (due on the refutation clock) and a task for the police; needs
investigation → progress releases on a schedule; misunderstanding → a reply. The steps are policy (playbooks.yaml).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.coordinator.core.cases import InvalidTransition
from services.coordinator.core.model import (
    AuditEntry,
    Case,
    CaseStatus,
    Change,
    Disposition,
    PublicationAsk,
    Task,
    TaskStatus,
)
from services.coordinator.core.policy import Playbooks, PublicationStep, RoutingPolicy
from services.coordinator.core.routing import make_id

__all__ = ["set_disposition"]

_DISPOSABLE = frozenset({CaseStatus.ACKNOWLEDGED, CaseStatus.VERIFYING, CaseStatus.IN_DISPOSITION})


def _due(policy: RoutingPolicy, case: Case, step: PublicationStep, now: datetime, n: int) -> datetime:
    if step.due == "refutation":
        base = case.refutation_due_at or now + policy.clocks.refute_within
    elif step.due == "golden_period":
        base = case.first_response_due_at or now + policy.clocks.golden_period
    else:
        base = now + step.due_within
    return base + step.every * n


def set_disposition(
    policy: RoutingPolicy,
    playbooks: Playbooks,
    case: Case,
    disposition: Disposition,
    rationale: str,
    actor: str,
    agency: str | None,
    now: datetime,
) -> Change:
    """Set the finding and run its playbook once per (case, wave, disposition): setting the same finding again
    creates nothing new. A false-information finding starts the refutation clock when no rumour alert did."""
    if case.status not in _DISPOSABLE:
        raise InvalidTransition(f"case {case.id} is {case.status.value}; acknowledge it before setting a disposition")
    updated = replace(
        case, disposition=disposition, disposition_rationale=rationale, status=CaseStatus.IN_DISPOSITION, updated_at=now
    )
    if disposition is Disposition.FALSE_INFORMATION and updated.refutation_due_at is None:
        updated = replace(updated, rumour=True, refutation_due_at=now + policy.clocks.refute_within)
    playbook = playbooks.by_disposition.get(disposition)
    tasks: list[Task] = []
    asks: list[PublicationAsk] = []
    if playbook is not None and case.disposition is not disposition:
        for step in playbook.tasks:
            tasks.append(
                Task(
                    id=make_id("t", case.id, case.wave, step.step),
                    case_id=case.id,
                    agency=step.agency,
                    assignee_unit=step.assignee_unit,
                    description=step.description.replace("{title}", case.title),
                    due_at=now + step.due_within,
                    status=TaskStatus.OPEN,
                    created_at=now,
                    updated_at=now,
                    playbook_step=step.step,
                )
            )
        for pub in playbook.publications:
            for n in range(pub.repeat):
                asks.append(
                    PublicationAsk(
                        id=make_id("pr", case.id, case.wave, pub.step, n),
                        case_id=case.id,
                        event_id=case.event_id,
                        kind=pub.kind,
                        level=case.level,
                        due_at=_due(policy, updated, pub, now, n),
                        playbook_step=pub.step,
                        requested_at=now,
                        requested_by=actor,
                        facts=(("事件", case.title), ("核查结论", rationale)),
                    )
                )
    entry = AuditEntry(
        actor,
        "case.set_disposition",
        f"cases/{case.id}",
        {
            "disposition": disposition.value,
            "rationale": rationale,
            "tasks": [t.id for t in tasks],
            "publication_requests": [a.id for a in asks],
        },
        agency,
    )
    return Change(
        case=updated,
        case_events=("case.disposition_set",),
        tasks=tuple(tasks),
        publications=tuple(asks),
        audit=(entry,),
    )
