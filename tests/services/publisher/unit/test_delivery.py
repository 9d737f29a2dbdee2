from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.publisher.core import delivery
from services.publisher.core.model import Publication, PublicationStatus
from services.publisher.errors import InvalidArgument, InvalidState

NOW = datetime(2026, 11, 30, tzinfo=UTC)
POLICY = delivery.RetryPolicy(max_attempts=3, base_s=2, max_s=10)
P = PublicationStatus


def pub(**kw: object) -> Publication:
    return Publication(id="p1", draft_id="d", case_id="c", channel_id="x", due_at=NOW, **kw)  # type: ignore[arg-type]


def test_first_attempt_needs_no_lookup_later_ones_do() -> None:
    first = pub()
    assert not delivery.needs_lookup(first)
    claimed = delivery.claim(first, NOW)
    assert claimed.in_flight and claimed.attempts == 1
    assert delivery.needs_lookup(claimed)


@pytest.mark.parametrize(
    ("attempts", "retry_after", "wait_s"),
    [(1, None, 2), (2, None, 4), (3, None, 8), (4, None, 10), (9, None, 10), (1, 30.0, 30), (3, 1.0, 8)],
)
def test_backoff(attempts: int, retry_after: float | None, wait_s: float) -> None:
    assert delivery.backoff(attempts, POLICY, retry_after) == timedelta(seconds=wait_s)


def test_retryable_failure_waits_then_dead_letters_after_the_budget() -> None:
    p = delivery.claim(pub(), NOW)
    p = delivery.failed(p, "unavailable: 503", NOW, POLICY, retryable=True)
    assert p.status is P.PENDING and not p.in_flight and p.next_attempt_at == NOW + timedelta(seconds=2)
    p = delivery.failed(delivery.claim(p, NOW), "e", NOW, POLICY, retryable=True)
    assert p.status is P.PENDING
    p = delivery.failed(delivery.claim(p, NOW), "e", NOW, POLICY, retryable=True)
    assert p.status is P.FAILED and p.attempts == 3 and p.last_error == "e"


def test_non_retryable_failure_dead_letters_at_once() -> None:
    p = delivery.failed(delivery.claim(pub(), NOW), "invalid: 422", NOW, POLICY, retryable=False)
    assert p.status is P.FAILED and p.attempts == 1


def test_replay_gives_a_new_budget_and_still_looks_up_first() -> None:
    p = delivery.failed(delivery.claim(pub(), NOW), "x", NOW, POLICY, retryable=False)
    r = delivery.replayed(p, NOW)
    assert r.status is P.PENDING and delivery.needs_lookup(r)
    again = delivery.failed(delivery.claim(r, NOW), "y", NOW, POLICY, retryable=True)
    assert again.status is P.PENDING
    with pytest.raises(InvalidState):
        delivery.replayed(r, NOW)


def test_delivered_records_where() -> None:
    p = delivery.delivered(delivery.claim(pub(), NOW), "123", "http://x/123", NOW)
    assert (p.status, p.external_id, p.url) == (P.PUBLISHED, "123", "http://x/123")
    assert p.published_at == NOW and not p.in_flight


def test_retract_and_correct_only_live_publications() -> None:
    live = delivery.delivered(delivery.claim(pub(), NOW), "1", "u", NOW)
    with pytest.raises(InvalidArgument):
        delivery.retracted(live, " ", NOW)
    gone = delivery.retracted(live, "信息有误", NOW)
    assert gone.status is P.RETRACTED and gone.retraction_reason == "信息有误"
    with pytest.raises(InvalidState):
        delivery.retracted(gone, "again", NOW)
    with pytest.raises(InvalidState):
        delivery.corrected(pub(), "text")
    fixed = delivery.corrected(live, "更正：时间为11月30日")
    assert fixed.status is P.CORRECTED and fixed.corrections == ("更正：时间为11月30日",)
    with pytest.raises(InvalidState):
        delivery.claim(live, NOW)
