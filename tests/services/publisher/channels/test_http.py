"""How long a channel asked us to wait: Retry-After in both forms, and Mastodon's X-RateLimit-Reset."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.publisher.channels._http import retry_after_s

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"Retry-After": "Mon, 30 Nov 2026 04:02:00 GMT"}, 120.0),
        ({"Retry-After": "Mon, 30 Nov 2026 03:00:00 GMT"}, 0.0),  # a time already past: no wait, never negative
        ({"X-RateLimit-Reset": "2026-11-30T04:05:00.000000Z"}, 300.0),
        ({"X-RateLimit-Reset": "2026-11-30T12:05:00+08:00"}, 300.0),
        ({"X-RateLimit-Reset": str(int(NOW.timestamp()) + 45)}, 45.0),
        ({"Retry-After": "8", "X-RateLimit-Reset": "2026-11-30T04:05:00Z"}, 8.0),  # Retry-After wins
        ({"Retry-After": "soon"}, None),
        ({"X-RateLimit-Reset": "tomorrow"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(httpx.Headers(headers), NOW) == expected
