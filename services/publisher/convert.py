"""Core values ↔ protobuf messages (publication.proto), in one place for the servicer, the consumer and the outbox."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.v1 import common_pb2, publication_pb2

from services.publisher.core.clocks import ResponseClock
from services.publisher.core.model import (
    Decision,
    Draft,
    DraftStatus,
    Kind,
    Publication,
    PublicationStatus,
    Version,
)
from services.publisher.core.policy import ChannelRule, Template
from services.publisher.errors import InvalidArgument

__all__ = [
    "KIND_OF",
    "LEVEL_OF",
    "actor_proto",
    "channel_proto",
    "clock_status",
    "draft_proto",
    "draft_status_enum",
    "kind_enum",
    "level_name",
    "publication_proto",
    "publication_status_enum",
    "template_proto",
    "timestamp",
    "to_datetime",
    "version_proto",
]

pb = publication_pb2

_KIND = {
    Kind.STATEMENT: pb.DRAFT_KIND_STATEMENT,
    Kind.PROGRESS: pb.DRAFT_KIND_PROGRESS,
    Kind.REFUTATION: pb.DRAFT_KIND_REFUTATION,
    Kind.RESULT: pb.DRAFT_KIND_RESULT,
    Kind.REPLY: pb.DRAFT_KIND_REPLY,
}
KIND_OF = {v: k for k, v in _KIND.items()}

_STATUS = {
    DraftStatus.DRAFT: pb.DRAFT_STATUS_EDITING,
    DraftStatus.PENDING_APPROVAL: pb.DRAFT_STATUS_IN_REVIEW,
    DraftStatus.APPROVED: pb.DRAFT_STATUS_APPROVED,
    DraftStatus.REJECTED: pb.DRAFT_STATUS_REJECTED,
    DraftStatus.SCHEDULED: pb.DRAFT_STATUS_SCHEDULED,
    DraftStatus.PUBLISHED: pb.DRAFT_STATUS_PUBLISHED,
    DraftStatus.PUBLISHING: pb.DRAFT_STATUS_PUBLISHING,
    DraftStatus.PARTIALLY_FAILED: pb.DRAFT_STATUS_PARTIALLY_FAILED,
    DraftStatus.FAILED: pb.DRAFT_STATUS_FAILED,
    DraftStatus.RETRACTED: pb.DRAFT_STATUS_RETRACTED,
}
STATUS_OF = {v: k for k, v in _STATUS.items()}

_PUB_STATUS = {
    PublicationStatus.PENDING: pb.PUBLICATION_STATUS_PENDING,
    PublicationStatus.PUBLISHED: pb.PUBLICATION_STATUS_PUBLISHED,
    PublicationStatus.FAILED: pb.PUBLICATION_STATUS_FAILED,
    PublicationStatus.RETRACTED: pb.PUBLICATION_STATUS_RETRACTED,
    PublicationStatus.CORRECTED: pb.PUBLICATION_STATUS_CORRECTED,
}
PUB_STATUS_OF = {v: k for k, v in _PUB_STATUS.items()}

LEVEL_OF = {
    common_pb2.WARNING_LEVEL_BLUE: "blue",
    common_pb2.WARNING_LEVEL_YELLOW: "yellow",
    common_pb2.WARNING_LEVEL_ORANGE: "orange",
    common_pb2.WARNING_LEVEL_RED: "red",
}
_LEVEL = {v: k for k, v in LEVEL_OF.items()}

_OFFICIAL = {
    "opinion_office": common_pb2.OFFICIAL_LEVEL_OPINION_OFFICE,
    "deputy_standing_member": common_pb2.OFFICIAL_LEVEL_DEPUTY_STANDING_MEMBER,
    "secretary": common_pb2.OFFICIAL_LEVEL_SECRETARY,
    "municipal_committee": common_pb2.OFFICIAL_LEVEL_MUNICIPAL_COMMITTEE,
}

_CHANNEL_KIND = {
    "mastodon": pb.CHANNEL_KIND_MICROBLOG,
    "weibo": pb.CHANNEL_KIND_MICROBLOG,
    "webhook": pb.CHANNEL_KIND_NEWSPAPER,
    "feed": pb.CHANNEL_KIND_WEBSITE,
}

_AGENCIES = dict(common_pb2.Agency.items())


def kind_enum(kind: Kind) -> pb.DraftKind.ValueType:
    return _KIND[kind]


def draft_status_enum(status: DraftStatus) -> pb.DraftStatus.ValueType:
    return _STATUS[status]


def publication_status_enum(status: PublicationStatus) -> pb.PublicationStatus.ValueType:
    return _PUB_STATUS[status]


def level_name(level: common_pb2.WarningLevel.ValueType) -> str:
    return LEVEL_OF.get(level, "")


def timestamp(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at.astimezone(UTC))
    return out


def to_datetime(ts: Timestamp, field: str = "timestamp") -> datetime:
    """``ts`` as an aware datetime; ``InvalidArgument`` naming ``field`` when it is outside years 1 to 9999 or its
    nanos are out of range (a record or request from elsewhere can carry any seconds and nanos)."""
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidArgument.of(field, f"not a valid time ({err})") from None


def actor_proto(principal: str, agency: str | None = None, role: str = "") -> common_pb2.Actor:
    number = _AGENCIES.get(f"AGENCY_{(agency or '').upper()}", common_pb2.AGENCY_UNSPECIFIED)
    return common_pb2.Actor(id=principal, display_name=principal, agency=number, role=role)


def clock_status(clock: ResponseClock | None) -> pb.ResponseClockStatus.ValueType:
    if clock is None:
        return pb.RESPONSE_CLOCK_STATUS_UNSPECIFIED
    if clock.met is None:
        return pb.RESPONSE_CLOCK_STATUS_RUNNING
    return pb.RESPONSE_CLOCK_STATUS_MET if clock.met else pb.RESPONSE_CLOCK_STATUS_MISSED


def draft_proto(d: Draft, clock: ResponseClock | None = None) -> pb.Draft:
    out = pb.Draft(
        id=d.id,
        case_id=d.case_id,
        kind=_KIND[d.kind],
        title=d.title,
        body=d.body,
        template_id=d.template_id,
        status=_STATUS[d.status],
        channel_ids=list(d.channel_ids),
        level=_LEVEL.get(d.level, common_pb2.WARNING_LEVEL_UNSPECIFIED),
        reply_to_post_id=d.reply_to_post_id,
        author=actor_proto(d.author),
        revision=d.revision,
        event_id=d.event_id,
        publication_request_id=d.request_id,
        response_clock=clock.name if clock else "",
        response_clock_status=clock_status(clock),
    )
    for step in d.chain:
        s = out.sign_off.add(
            order=step.order,
            role=step.role,
            official_level=_OFFICIAL.get(step.official_level, common_pb2.OFFICIAL_LEVEL_UNSPECIFIED),
            comment=step.comment,
            revision=step.revision,
        )
        if step.decision is Decision.APPROVED:
            s.decision = pb.SIGN_OFF_DECISION_APPROVED
        elif step.decision is Decision.REJECTED:
            s.decision = pb.SIGN_OFF_DECISION_REJECTED
        if step.signer:
            s.signer.CopyFrom(actor_proto(step.signer, role=step.role))
        if step.decided_at:
            s.decided_at.CopyFrom(timestamp(step.decided_at))
    for field, value in (("scheduled_at", d.scheduled_at), ("due_at", clock.due_at if clock else d.due_at),
                         ("created_at", d.created_at), ("updated_at", d.updated_at),
                         ("published_at", d.published_at)):  # fmt: skip
        if value is not None:
            getattr(out, field).CopyFrom(timestamp(value))
    return out


def version_proto(v: Version) -> pb.DraftVersion:
    out = pb.DraftVersion(revision=v.revision, title=v.title, body=v.body, author=actor_proto(v.author))
    out.created_at.CopyFrom(timestamp(v.at))
    return out


def publication_proto(
    p: Publication,
    draft: Draft,
    channel: ChannelRule | None,
    clock: ResponseClock | None,
) -> pb.Publication:
    out = pb.Publication(
        id=p.id,
        draft_id=p.draft_id,
        case_id=p.case_id,
        channel_id=p.channel_id,
        channel_kind=_CHANNEL_KIND.get(channel.kind, pb.CHANNEL_KIND_UNSPECIFIED)
        if channel
        else pb.CHANNEL_KIND_UNSPECIFIED,
        external_id=p.external_id,
        url=p.url,
        status=_PUB_STATUS[p.status],
        attempts=p.attempts,
        last_error=p.last_error,
        retraction_reason=p.retraction_reason,
        draft_kind=_KIND[draft.kind],
        event_id=draft.event_id,
        publication_request_id=draft.request_id,
        response_clock=clock.name if clock else "",
        response_clock_status=clock_status(clock),
    )
    for text in p.corrections:
        out.corrections.add(text=text)
    for field, value in (("published_at", p.published_at), ("retracted_at", p.retracted_at),
                         ("due_at", clock.due_at if clock else draft.due_at),
                         ("next_attempt_at", p.next_attempt_at if p.status is PublicationStatus.PENDING else None),
                         ):  # fmt: skip
        if value is not None:
            getattr(out, field).CopyFrom(timestamp(value))
    return out


def channel_proto(c: ChannelRule) -> pb.Channel:
    return pb.Channel(
        id=c.id,
        kind=_CHANNEL_KIND.get(c.kind, pb.CHANNEL_KIND_UNSPECIFIED),
        display_name=c.display_name,
        account=c.account,
        enabled=c.enabled,
    )


def template_proto(t: Template) -> pb.Template:
    return pb.Template(id=t.id, kind=_KIND[t.kind], display_name=t.display_name, title=t.title, body=t.body)
