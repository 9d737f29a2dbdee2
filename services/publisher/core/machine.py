"""The draft state machine (报送审签): every allowed transition is a function here; anything else is refused.

    DRAFT ──submit──▶ PENDING_APPROVAL ──last approval──▶ APPROVED ──schedule──▶ SCHEDULED
      ▲                 │      ▲                            │                      │
      │             reject     └──── edit (text changed) ───┴──────────────────────┘
      │                 ▼                                   │ publish / due        │ due
    (edit)◀──────── REJECTED                                ▼                      ▼
                                                          PUBLISHING ──▶ PUBLISHED | PARTIALLY_FAILED | FAILED
                                                                                 │
                                                                    all retracted ▼
                                                                             RETRACTED

Rules: whoever wrote a revision never signs (four-eyes); the signer must hold the next step's role; one person
signs at most one step of a revision; a rejection needs a reason; a signer signs the revision they read (a stale
revision is refused, so nobody approves an unseen text); an edit after submission or approval resets the chain and
sends the draft back for approval. Every function takes ``now`` and returns a new Draft with ``version`` bumped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from services.publisher.core.model import (
    LEVELS,
    Actor,
    Decision,
    Draft,
    DraftStatus,
    Kind,
    Publication,
    PublicationStatus,
    Step,
)
from services.publisher.core.policy import SignOffPolicy
from services.publisher.errors import (
    AlreadySigned,
    ConcurrentModification,
    InvalidArgument,
    InvalidState,
    NotSignedOff,
    PermissionDenied,
)

__all__ = [
    "EDITABLE",
    "approved_steps",
    "came_due",
    "edit",
    "new_draft",
    "next_step",
    "publishable",
    "schedule",
    "settle",
    "sign_off",
    "start_publishing",
    "submit",
]

S = DraftStatus
EDITABLE = frozenset({S.DRAFT, S.REJECTED, S.PENDING_APPROVAL, S.APPROVED, S.SCHEDULED})
# Edits in these states send the draft (back) for approval: somebody has seen or signed the old text.
_BACK_TO_APPROVAL = frozenset({S.PENDING_APPROVAL, S.APPROVED, S.SCHEDULED})
_PUBLISHABLE = frozenset({S.APPROVED, S.SCHEDULED})


def _refuse(draft: Draft, action: str) -> InvalidState:
    return InvalidState(f"cannot {action} draft {draft.id!r}: it is {draft.status.value}")


def _bump(draft: Draft, now: datetime, **changes: object) -> Draft:
    return replace(draft, version=draft.version + 1, updated_at=now, **changes)  # type: ignore[arg-type]


def new_draft(
    *,
    id: str,
    case_id: str,
    kind: Kind,
    author: Actor,
    now: datetime,
    title: str,
    body: str,
    level: str = "",
    event_id: str = "",
    request_id: str = "",
    template_id: str = "",
    reply_to_post_id: str = "",
    channel_ids: Sequence[str] = (),
    due_at: datetime | None = None,
    clock_started_at: datetime | None = None,
) -> Draft:
    if not case_id:
        raise InvalidArgument.of("draft.case_id", "required")
    if level and level not in LEVELS:
        raise InvalidArgument.of("draft.level", f"must be one of {', '.join(LEVELS)}")
    if kind is Kind.REPLY and not reply_to_post_id:
        raise InvalidArgument.of("draft.reply_to_post_id", "required for a reply to a netizen")
    return Draft(
        id=id,
        case_id=case_id,
        kind=kind,
        title=title,
        body=body,
        author=author.principal,
        authors=frozenset({author.principal}),
        created_at=now,
        updated_at=now,
        level=level,
        event_id=event_id,
        request_id=request_id,
        template_id=template_id,
        reply_to_post_id=reply_to_post_id,
        channel_ids=tuple(dict.fromkeys(channel_ids)),
        due_at=due_at,
        clock_started_at=clock_started_at,
    )


def edit(
    draft: Draft,
    actor: Actor,
    now: datetime,
    *,
    title: str | None = None,
    body: str | None = None,
    channel_ids: Sequence[str] | None = None,
    reply_to_post_id: str | None = None,
    expected_revision: int = 0,
) -> Draft:
    """Change the text or the channels. A text change is a new revision; after submission it resets the chain."""
    if draft.status not in EDITABLE:
        raise _refuse(draft, "edit")
    if expected_revision and expected_revision != draft.revision:
        raise ConcurrentModification(
            f"draft {draft.id!r} is at revision {draft.revision}, the edit was made on {expected_revision}"
        )
    text_changed = (title is not None and title != draft.title) or (body is not None and body != draft.body)
    changes: dict[str, object] = {}
    if channel_ids is not None:
        changes["channel_ids"] = tuple(dict.fromkeys(channel_ids))
    if reply_to_post_id is not None:
        changes["reply_to_post_id"] = reply_to_post_id
    if text_changed:
        changes.update(
            title=draft.title if title is None else title,
            body=draft.body if body is None else body,
            revision=draft.revision + 1,
            authors=draft.authors | {actor.principal},
        )
        if draft.status in _BACK_TO_APPROVAL:
            changes.update(status=S.PENDING_APPROVAL, chain=_reset(draft.chain), scheduled_at=None)
        elif draft.status is S.REJECTED:
            changes.update(status=S.DRAFT, chain=())
    elif draft.status is S.SCHEDULED and channel_ids is not None:
        # New channels were not part of what was signed as scheduled; the text is unchanged, so approval stands.
        changes.update(status=S.APPROVED, scheduled_at=None)
    if not changes:
        return draft
    return _bump(draft, now, **changes)


def _reset(chain: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(Step(order=s.order, role=s.role, official_level=s.official_level) for s in chain)


def submit(draft: Draft, actor: Actor, policy: SignOffPolicy, now: datetime, *, level: str = "") -> Draft:
    """Send for review; the chain is fixed here from the policy for the case's level."""
    if draft.status not in (S.DRAFT, S.REJECTED):
        raise _refuse(draft, "submit")
    chosen = level or draft.level
    if chosen not in policy.chains:
        raise InvalidArgument.of("level", f"the case's level is needed to choose the sign-off chain, got {chosen!r}")
    if not draft.title.strip() or not draft.body.strip():
        raise InvalidArgument.of("draft.body", "title and body must not be empty")
    steps = tuple(
        Step(order=i, role=s.role, official_level=s.official_level) for i, s in enumerate(policy.chains[chosen], 1)
    )
    return _bump(draft, now, status=S.PENDING_APPROVAL, level=chosen, chain=steps)


def next_step(draft: Draft) -> Step | None:
    return next((s for s in draft.chain if s.decision is None), None)


def approved_steps(draft: Draft) -> int:
    return sum(1 for s in draft.chain if s.decision is Decision.APPROVED)


def sign_off(draft: Draft, actor: Actor, decision: Decision, comment: str, revision: int, now: datetime) -> Draft:
    """Decide the next pending step of the chain."""
    if draft.status is not S.PENDING_APPROVAL:
        if draft.status in _PUBLISHABLE and decision is Decision.APPROVED:
            raise AlreadySigned(f"draft {draft.id!r} is already approved")
        raise _refuse(draft, "sign off")
    if revision != draft.revision:
        raise ConcurrentModification(
            f"draft {draft.id!r} is at revision {draft.revision}; the signer read revision {revision}"
        )
    if actor.principal in draft.authors:
        raise PermissionDenied(f"{actor.principal!r} wrote this draft and cannot sign it off (four-eyes)")
    if any(s.signer == actor.principal for s in draft.chain):
        raise AlreadySigned(f"{actor.principal!r} already signed revision {draft.revision} of draft {draft.id!r}")
    step = next_step(draft)
    if step is None:  # pragma: no cover - a complete chain leaves PENDING_APPROVAL
        raise _refuse(draft, "sign off")
    if step.role not in actor.roles:
        raise PermissionDenied(f"step {step.order} of draft {draft.id!r} must be signed by the role {step.role!r}")
    if decision is Decision.REJECTED and not comment.strip():
        raise InvalidArgument.of("comment", "a rejection needs a reason")
    signed = replace(
        step, decision=decision, signer=actor.principal, comment=comment.strip(), decided_at=now, revision=revision
    )
    chain = tuple(signed if s.order == step.order else s for s in draft.chain)
    if decision is Decision.REJECTED:
        return _bump(draft, now, chain=chain, status=S.REJECTED)
    done = all(s.decision is Decision.APPROVED for s in chain)
    return _bump(draft, now, chain=chain, status=S.APPROVED if done else S.PENDING_APPROVAL)


def publishable(draft: Draft) -> None:
    """Raise unless the draft has been signed off and not yet started publishing."""
    if draft.status in (S.DRAFT, S.PENDING_APPROVAL, S.REJECTED):
        raise NotSignedOff(f"draft {draft.id!r} is {draft.status.value}: its sign-off chain is not complete")
    if draft.status not in _PUBLISHABLE:
        raise _refuse(draft, "publish")


def schedule(draft: Draft, at: datetime, channel_ids: Sequence[str], now: datetime) -> Draft:
    publishable(draft)
    channels = tuple(dict.fromkeys(channel_ids or draft.channel_ids))
    if not channels:
        raise InvalidArgument.of("channel_ids", "at least one channel is needed")
    return _bump(draft, now, status=S.SCHEDULED, scheduled_at=at, channel_ids=channels)


def start_publishing(draft: Draft, channel_ids: Sequence[str], now: datetime) -> Draft:
    """Publish now (or the schedule came due)."""
    publishable(draft)
    channels = tuple(dict.fromkeys(channel_ids or draft.channel_ids))
    if not channels:
        raise InvalidArgument.of("channel_ids", "at least one channel is needed")
    return _bump(draft, now, status=S.PUBLISHING, channel_ids=channels, scheduled_at=draft.scheduled_at or now)


def came_due(draft: Draft, now: datetime) -> Draft:
    """A scheduled draft whose time has come is publishing (the worker calls this as it picks it up)."""
    if draft.status is not S.SCHEDULED:
        return draft
    return _bump(draft, now, status=S.PUBLISHING)


def settle(draft: Draft, publications: Sequence[Publication], now: datetime) -> Draft:
    """The draft's status from its publications once none is pending (else unchanged)."""
    if draft.status not in (S.SCHEDULED, S.PUBLISHING, S.PUBLISHED, S.PARTIALLY_FAILED, S.FAILED, S.RETRACTED):
        return draft
    if not publications:
        return draft
    statuses = [p.status for p in publications]
    if PublicationStatus.PENDING in statuses:
        target = S.SCHEDULED if draft.status is S.SCHEDULED else S.PUBLISHING
    elif all(s is PublicationStatus.RETRACTED for s in statuses):
        target = S.RETRACTED
    elif all(s is PublicationStatus.FAILED for s in statuses):
        target = S.FAILED
    elif PublicationStatus.FAILED in statuses:
        target = S.PARTIALLY_FAILED
    else:
        target = S.PUBLISHED
    live = [p.published_at for p in publications if p.published_at is not None]
    first = min(live) if live else draft.published_at
    if target is draft.status and first == draft.published_at:
        return draft
    return _bump(draft, now, status=target, published_at=first)
