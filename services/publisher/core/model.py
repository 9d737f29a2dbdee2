"""The publisher's terms: drafts with their versions and sign-off chain, and publications (one per channel).

Everything is a frozen dataclass; a transition returns a new value. ``Draft.version`` counts every change and is what
the store compares on write (optimistic concurrency); ``Draft.revision`` counts edits of the text only, and sign-offs
apply to one revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "LEVELS",
    "Actor",
    "Decision",
    "Draft",
    "DraftStatus",
    "Kind",
    "Publication",
    "PublicationStatus",
    "Step",
    "Version",
]


class Kind(StrEnum):
    STATEMENT = "statement"  # 情况通报
    PROGRESS = "progress"  # 调查进展
    REFUTATION = "refutation"  # 辟谣
    RESULT = "result"  # 处理结果
    REPLY = "reply"  # 答复


LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")


class DraftStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    RETRACTED = "retracted"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class PublicationStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    FAILED = "failed"  # dead-lettered; an operator may replay it
    RETRACTED = "retracted"
    CORRECTED = "corrected"


@dataclass(frozen=True)
class Actor:
    """A verified caller (or a service account such as the publication-request consumer)."""

    principal: str
    agency: str | None = None
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Step:
    """One signature the chain requires (审签)."""

    order: int
    role: str
    official_level: str
    decision: Decision | None = None
    signer: str | None = None
    comment: str = ""
    decided_at: datetime | None = None
    revision: int = 0


@dataclass(frozen=True)
class Version:
    """The text of one revision, kept for the history and the diff."""

    revision: int
    title: str
    body: str
    author: str
    at: datetime


@dataclass(frozen=True)
class Draft:
    id: str
    case_id: str
    kind: Kind
    title: str
    body: str
    author: str
    created_at: datetime
    updated_at: datetime
    status: DraftStatus = DraftStatus.DRAFT
    # "" until known; the chain is chosen from it at submission.
    level: str = ""
    event_id: str = ""
    # The PublicationRequest it came from (at most one draft per request id); "" for drafts written by people.
    request_id: str = ""
    template_id: str = ""
    reply_to_post_id: str = ""
    channel_ids: tuple[str, ...] = ()
    # Everyone who wrote a revision: none of them may sign (four-eyes).
    authors: frozenset[str] = frozenset()
    chain: tuple[Step, ...] = ()
    revision: int = 1
    version: int = 1
    scheduled_at: datetime | None = None
    due_at: datetime | None = None
    # The alert the response clock starts from (golden period, 24 h for a refutation); None when unknown.
    clock_started_at: datetime | None = None
    published_at: datetime | None = None


@dataclass(frozen=True)
class Publication:
    """A draft on one channel. ``id`` is the idempotency key sent to the channel."""

    id: str
    draft_id: str
    case_id: str
    channel_id: str
    due_at: datetime
    status: PublicationStatus = PublicationStatus.PENDING
    attempts: int = 0
    # ``attempts`` when the current round began (0, or when an operator replayed the dead letter): the retry budget
    # counts from here.
    round_start: int = 0
    # When the next attempt may start (backoff); None means now.
    next_attempt_at: datetime | None = None
    # Set before calling the channel, cleared with the outcome: still set after a crash means "outcome unknown".
    in_flight: bool = False
    external_id: str = ""
    url: str = ""
    last_error: str = ""
    published_at: datetime | None = None
    retracted_at: datetime | None = None
    retraction_reason: str = ""
    corrections: tuple[str, ...] = ()
    version: int = 1
