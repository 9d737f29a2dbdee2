"""Core values ⇄ protobuf: cases (full, or the partner's summary), tasks, meetings, instructions, publication
requests and audit records. The only module besides the servicer and the consumer that knows ``qingfeng.v1``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.storage import AuditRecord
from qingfeng.v1 import case_pb2, common_pb2, publication_pb2, publication_request_pb2

from services.coordinator.core.model import (
    Attachment,
    Case,
    CaseStatus,
    Decision,
    Disposition,
    Instruction,
    Meeting,
    PublicationAsk,
    Task,
    TaskStatus,
)
from services.coordinator.errors import InvalidArgument

__all__ = [
    "AGENCY_OF",
    "agency_enum",
    "agency_key",
    "attachment_proto",
    "case_proto",
    "from_timestamp",
    "instruction_proto",
    "meeting_proto",
    "publication_request_proto",
    "task_proto",
    "timestamp",
]

# Identity agency strings (gateway/access.py) ⇄ the contract's Agency enum.
AGENCY_OF: Final[dict[str, common_pb2.Agency.ValueType]] = {
    "opinion_office": common_pb2.AGENCY_OPINION_OFFICE,
    "discipline_commission": common_pb2.AGENCY_DISCIPLINE_COMMISSION,
    "propaganda": common_pb2.AGENCY_PROPAGANDA,
    "police_cyber": common_pb2.AGENCY_POLICE_CYBER,
    "petitions": common_pb2.AGENCY_PETITIONS,
    "daily_newspaper": common_pb2.AGENCY_DAILY_NEWSPAPER,
    "telecom_regulator": common_pb2.AGENCY_TELECOM_REGULATOR,
    "case_management": common_pb2.AGENCY_CASE_MANAGEMENT,
    "municipal_committee": common_pb2.AGENCY_MUNICIPAL_COMMITTEE,
    "responsible_unit": common_pb2.AGENCY_RESPONSIBLE_UNIT,
    "channel_operator": common_pb2.AGENCY_CHANNEL_OPERATIONS,
}
_KEY_OF: Final = {v: k for k, v in AGENCY_OF.items()}
CASE_STATUS: Final = {
    CaseStatus.AWAITING_ACK: case_pb2.CASE_STATUS_AWAITING_ACKNOWLEDGEMENT,
    CaseStatus.ACKNOWLEDGED: case_pb2.CASE_STATUS_ACKNOWLEDGED,
    CaseStatus.VERIFYING: case_pb2.CASE_STATUS_VERIFYING,
    CaseStatus.IN_DISPOSITION: case_pb2.CASE_STATUS_IN_DISPOSITION,
    CaseStatus.CLOSED: case_pb2.CASE_STATUS_CLOSED,
}
DISPOSITION: Final = {
    Disposition.VERIFIED_TRUE: case_pb2.DISPOSITION_VERIFIED_TRUE,
    Disposition.REASONABLE_SUGGESTION: case_pb2.DISPOSITION_REASONABLE_SUGGESTION,
    Disposition.FALSE_INFORMATION: case_pb2.DISPOSITION_FALSE_INFORMATION,
    Disposition.NEEDS_INVESTIGATION: case_pb2.DISPOSITION_NEEDS_INVESTIGATION,
    Disposition.MISUNDERSTANDING: case_pb2.DISPOSITION_MISUNDERSTANDING,
}
TASK_STATUS: Final = {
    TaskStatus.OPEN: case_pb2.TASK_STATUS_OPEN,
    TaskStatus.IN_PROGRESS: case_pb2.TASK_STATUS_IN_PROGRESS,
    TaskStatus.DONE: case_pb2.TASK_STATUS_DONE,
    TaskStatus.CANCELLED: case_pb2.TASK_STATUS_CANCELLED,
}
_CAUSE: Final = {
    "ack_deadline_missed": case_pb2.ESCALATION_CAUSE_ACK_DEADLINE_MISSED,
    "level_raised": case_pb2.ESCALATION_CAUSE_LEVEL_RAISED,
    "manual": case_pb2.ESCALATION_CAUSE_MANUAL,
}
_DRAFT_KIND: Final = {
    "statement": publication_pb2.DRAFT_KIND_STATEMENT,
    "progress": publication_pb2.DRAFT_KIND_PROGRESS,
    "refutation": publication_pb2.DRAFT_KIND_REFUTATION,
    "result": publication_pb2.DRAFT_KIND_RESULT,
    "reply": publication_pb2.DRAFT_KIND_REPLY,
}


def _wl(level: int) -> common_pb2.WarningLevel.ValueType:
    return common_pb2.WarningLevel.ValueType(int(level))


def _ol(rung: int) -> common_pb2.OfficialLevel.ValueType:
    return common_pb2.OfficialLevel.ValueType(int(rung))


def agency_enum(key: str | None) -> common_pb2.Agency.ValueType:
    return AGENCY_OF.get(key or "", common_pb2.AGENCY_UNSPECIFIED)


def agency_key(value: common_pb2.Agency.ValueType) -> str | None:
    return _KEY_OF.get(value)


def timestamp(at: datetime | None) -> Timestamp | None:
    if at is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(at.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp, field: str = "timestamp") -> datetime:
    """``ts`` as an aware datetime; ``InvalidArgument`` naming ``field`` when it is outside years 1 to 9999 or its
    nanos are out of range (a record or request from elsewhere can carry any seconds and nanos)."""
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidArgument.of(field, f"not a valid time ({err})") from None


def _actor(principal: str, agency: str | None = None) -> common_pb2.Actor | None:
    if not principal:
        return None
    return common_pb2.Actor(id=principal, display_name=principal, agency=agency_enum(agency))


def case_proto(case: Case, *, restricted: bool = True) -> case_pb2.Case:
    """The case; ``restricted=False`` is a partner's summary: what it needs to do its tasks, no case details
    (routing, acknowledgement, escalations, the finding's rationale, 涉腐 marks, regions and people are left out)."""
    msg = case_pb2.Case(
        id=case.id,
        title=case.title,
        level=_wl(case.level),
        status=CASE_STATUS[case.status],
        disposition=DISPOSITION[case.disposition] if case.disposition else case_pb2.DISPOSITION_UNSPECIFIED,
        created_at=timestamp(case.created_at),
        updated_at=timestamp(case.updated_at),
        closed_at=timestamp(case.closed_at),
        first_response_due_at=timestamp(case.first_response_due_at),
        refutation_due_at=timestamp(case.refutation_due_at),
        wave=case.wave,
    )
    if not restricted:
        return msg
    msg.event_id = case.event_id
    msg.routed_to = _ol(case.routed_to)
    msg.disposition_rationale = case.disposition_rationale
    msg.corruption_related = case.corruption_related
    msg.corruption_marked_by_hand = case.corruption_marked_by_hand
    msg.corruption_relevance = case.corruption_relevance
    msg.information_notice = case.information_notice
    for field, value in (
        ("ack_deadline", case.ack_deadline),
        ("acknowledged_at", case.acknowledged_at),
        ("first_alert_at", case.first_alert_at),
        ("first_response_at", case.first_response_at),
        ("refuted_at", case.refuted_at),
        ("reopened_at", case.reopened_at),
    ):
        if value is not None:
            getattr(msg, field).CopyFrom(timestamp(value))
    if case.acknowledged_by:
        msg.acknowledged_by.CopyFrom(common_pb2.Actor(id=case.acknowledged_by, display_name=case.acknowledged_by))
    for e in case.escalations:
        msg.escalations.add(
            from_level=_ol(e.from_rung),
            to_level=_ol(e.to_rung),
            cause=_CAUSE.get(e.cause, case_pb2.ESCALATION_CAUSE_MANUAL),
            escalated_at=timestamp(e.at),
            ack_deadline=timestamp(e.ack_deadline),
        )
    for code, name in case.regions:
        msg.regions.add(code=code, name=name)
    for person in case.routed_people:
        msg.routed_people.add(id=person, display_name=person, agency=common_pb2.AGENCY_DISCIPLINE_COMMISSION)
    return msg


def task_proto(task: Task, now: datetime) -> case_pb2.Task:
    sup = task.supervision
    return case_pb2.Task(
        id=task.id,
        case_id=task.case_id,
        agency=agency_enum(task.agency),
        assignee_unit=task.assignee_unit,
        description=task.description,
        due_at=timestamp(task.due_at),
        status=TASK_STATUS[task.status],
        overdue=task.overdue(now),
        supervision=case_pb2.Supervision(
            reminders=sup.reminders,
            last_reminded_at=timestamp(sup.last_reminded_at),
            supervised_by=_ol(sup.supervised_by or 0),
        ),
        result=task.result,
        completed_at=timestamp(task.completed_at),
        completed_by=_actor(task.completed_by),
        playbook_step=task.playbook_step,
        created_at=timestamp(task.created_at),
        updated_at=timestamp(task.updated_at),
        progress=[
            case_pb2.TaskProgress(
                note=p.note,
                reported_at=timestamp(p.reported_at),
                reported_by=_actor(p.reported_by),
                attachment_ids=list(p.attachment_ids),
            )
            for p in task.progress
        ],
        attachments=[attachment_proto(a) for a in task.attachments],
    )


def attachment_proto(a: Attachment) -> case_pb2.Attachment:
    return case_pb2.Attachment(
        id=a.id,
        name=a.name,
        content_type=a.content_type,
        size_bytes=a.size_bytes,
        sha256=a.sha256,
        added_at=timestamp(a.added_at),
        added_by=_actor(a.added_by),
    )


def _decision_proto(d: Decision, visible: set[str] | None) -> case_pb2.Decision:
    ids = [t for t in d.task_ids if visible is None or t in visible]
    return case_pb2.Decision(
        text=d.text, owner=agency_enum(d.owner), task_ids=ids, case_id=d.case_id, due_at=timestamp(d.due_at)
    )


def meeting_proto(meeting: Meeting, *, partner: str | None = None) -> case_pb2.Meeting:
    """The meeting; for a partner agency only its own decisions and no minutes (不泄露案情)."""
    decisions = [d for d in meeting.decisions if partner is None or d.owner == partner]
    return case_pb2.Meeting(
        id=meeting.id,
        kind=case_pb2.MEETING_KIND_EMERGENCY if meeting.kind == "emergency" else case_pb2.MEETING_KIND_QUARTERLY,
        title=meeting.title,
        case_ids=list(meeting.case_ids) if partner is None else [],
        convened_at=timestamp(meeting.convened_at),
        scheduled_at=timestamp(meeting.scheduled_at),
        attendees=[agency_enum(a) for a in meeting.attendees],
        minutes=meeting.minutes if partner is None else "",
        decisions=[_decision_proto(d, None) for d in decisions],
        convened_by=_actor(meeting.convened_by),
        minutes_recorded_at=timestamp(meeting.minutes_recorded_at),
        present=[agency_enum(a) for a in meeting.present],
    )


def instruction_proto(i: Instruction) -> case_pb2.Instruction:
    return case_pb2.Instruction(
        id=i.id,
        case_id=i.case_id,
        leader=common_pb2.Actor(id=i.leader_id, display_name=i.leader_name, role=i.leader_role),
        level=_ol(i.rung),
        text=i.text,
        issued_at=timestamp(i.issued_at),
        recorded_at=timestamp(i.recorded_at),
        recorded_by=_actor(i.recorded_by),
        task_ids=list(i.task_ids),
    )


def publication_request_proto(ask: PublicationAsk) -> publication_request_pb2.PublicationRequest:
    return publication_request_pb2.PublicationRequest(
        id=ask.id,
        case_id=ask.case_id,
        event_id=ask.event_id,
        kind=_DRAFT_KIND[ask.kind],
        level=_wl(ask.level),
        facts=dict(ask.facts),
        due_at=timestamp(ask.due_at),
        playbook_step=ask.playbook_step,
        requested_at=timestamp(ask.requested_at),
        requested_by=_actor(ask.requested_by),
    )


def audit_proto(r: AuditRecord) -> case_pb2.AuditRecord:
    return case_pb2.AuditRecord(
        seq=r.seq,
        actor=common_pb2.Actor(id=r.actor, display_name=r.actor, agency=agency_enum(r.agency)),
        agency=agency_enum(r.agency),
        action=r.action,
        target=r.target,
        at=timestamp(r.at),
        prev_hash=bytes.fromhex(r.prev_hash),
        hash=bytes.fromhex(r.hash),
        detail=str(r.details.get("summary", "")) or ", ".join(f"{k}={v}" for k, v in sorted(r.details.items())),
        trace_id=str(r.details.get("trace_id", "")),
    )
