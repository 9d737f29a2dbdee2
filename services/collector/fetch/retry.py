"""When to try a request again and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "Backoff", "parse_retry_after"]

# 408 and 425 are the server saying "not now"; 429 is rate limiting; the 5xx are the server's trouble.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date. None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # "²".isdigit() is true, float("²") refuses it
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits a random time in [c/2, c] where c = min(base·2^(n-1), max).

    Half of the delay is fixed so a retry never comes back immediately; the other half is random so clients that
    failed together do not retry together.
    """

    base_s: float = 1.0
    max_s: float = 60.0
    random: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.base_s * 2.0 ** max(0, attempt - 1))
        return ceiling / 2.0 + self.random() * ceiling / 2.0
