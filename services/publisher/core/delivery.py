"""Delivery of one publication to one channel, as decisions over values (the worker does the I/O).

The exactly-once rule lives in ``claim`` and ``needs_lookup``: an attempt is claimed (``in_flight``, ``attempts``+1)
and that is committed *before* the channel is called. If the process dies after the channel accepted the post but
before the outcome was stored, the publication is found still claimed; any publication with an earlier attempt is
first looked up on the channel (``ChannelAdapter.find``) and only re-delivered when nothing landed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.publisher.core.model import Publication, PublicationStatus
from services.publisher.errors import InvalidArgument, InvalidState

__all__ = [
    "RetryPolicy",
    "backoff",
    "claim",
    "corrected",
    "delivered",
    "failed",
    "needs_lookup",
    "replayed",
    "retracted",
]

P = PublicationStatus


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 2.0
    max_s: float = 300.0
    # An attempt claimed longer ago than this is presumed dead (its worker crashed) and may be taken over.
    lease_s: float = 60.0


def backoff(attempts: int, policy: RetryPolicy, retry_after_s: float | None = None) -> timedelta:
    """Wait before the next attempt: exponential in the attempts made, at least the channel's Retry-After."""
    exponential = min(policy.max_s, policy.base_s * 2 ** max(0, attempts - 1))
    return timedelta(seconds=max(exponential, retry_after_s or 0.0))


def needs_lookup(pub: Publication) -> bool:
    """Whether an earlier attempt may have landed: then ask the channel before delivering again."""
    return pub.attempts > 0


def claim(pub: Publication, now: datetime) -> Publication:
    if pub.status is not P.PENDING:
        raise InvalidState(f"publication {pub.id!r} is {pub.status.value}, not pending")
    return replace(pub, in_flight=True, attempts=pub.attempts + 1, next_attempt_at=now, version=pub.version + 1)


def delivered(pub: Publication, external_id: str, url: str, now: datetime) -> Publication:
    return replace(
        pub,
        status=P.PUBLISHED,
        in_flight=False,
        external_id=external_id,
        url=url,
        published_at=now,
        last_error="",
        next_attempt_at=None,
        version=pub.version + 1,
    )


def failed(
    pub: Publication,
    message: str,
    now: datetime,
    policy: RetryPolicy,
    *,
    retryable: bool,
    retry_after_s: float | None = None,
) -> Publication:
    """After a failed attempt: back to pending with a backoff, or FAILED (dead letter) when it cannot succeed."""
    if retryable and pub.attempts - pub.round_start < policy.max_attempts:
        return replace(
            pub,
            in_flight=False,
            last_error=message,
            next_attempt_at=now + backoff(pub.attempts, policy, retry_after_s),
            version=pub.version + 1,
        )
    return replace(
        pub, status=P.FAILED, in_flight=False, last_error=message, next_attempt_at=None, version=pub.version + 1
    )


def replayed(pub: Publication, now: datetime) -> Publication:
    """An operator sends a dead letter again: a fresh round of attempts (the lookup still guards duplicates)."""
    if pub.status is not P.FAILED:
        raise InvalidState(f"publication {pub.id!r} is {pub.status.value}; only failed publications are replayed")
    # attempts stays > 0 on purpose so the next attempt first looks on the channel; the budget restarts from it.
    return replace(
        pub,
        status=P.PENDING,
        next_attempt_at=now,
        in_flight=False,
        round_start=pub.attempts,
        version=pub.version + 1,
    )


def retracted(pub: Publication, reason: str, now: datetime) -> Publication:
    if not reason.strip():
        raise InvalidArgument.of("reason", "a retraction needs a reason")
    if pub.status not in (P.PUBLISHED, P.CORRECTED):
        raise InvalidState(f"publication {pub.id!r} is {pub.status.value}; only live publications are retracted")
    return replace(pub, status=P.RETRACTED, retracted_at=now, retraction_reason=reason.strip(), version=pub.version + 1)


def corrected(pub: Publication, text: str) -> Publication:
    if not text.strip():
        raise InvalidArgument.of("text", "the correction text is required")
    if pub.status not in (P.PUBLISHED, P.CORRECTED):
        raise InvalidState(f"publication {pub.id!r} is {pub.status.value}; only live publications are corrected")
    return replace(pub, status=P.CORRECTED, corrections=(*pub.corrections, text.strip()), version=pub.version + 1)
