"""Abuse limits: a partner that floods the gateway slows itself, not everybody else.

- ``RateLimiter``: per-identity token buckets for calls and for every item of a client stream (``reserve`` lets a
  stream wait briefly for its next token instead of failing at once, which bounds the rate without buffering);
- ``FailureLimiter``: failed authentications per peer address in a fixed window, so tokens cannot be guessed at speed;
- ``ConcurrencyLimiter``: calls in flight per identity and per server, with a separate, smaller cap on streams
  (they stay open for long and each holds buffers).

All are plain in-memory state of one event loop (no locks needed); every map is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ConcurrencyLimiter", "FailureLimiter", "RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


@dataclass
class RateLimiter:
    """``rate_per_s`` calls per second on average, bursts up to ``burst``, counted per key."""

    rate_per_s: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _refilled(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated_s=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated_s) * self.rate_per_s)
        bucket.updated_s = now
        return bucket

    def allow(self, key: str) -> bool:
        bucket = self._refilled(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def reserve(self, key: str, max_wait_s: float, count: int = 1) -> float | None:
        """Take ``count`` tokens (the items of a batch): the seconds to wait before going on, or None (refused).

        As ``count`` items reserved one after the other, each after the previous one's wait: refused when the first
        token is more than ``max_wait_s`` ahead (or, for a batch, when one item's refill, 1/rate, is); otherwise all
        are taken and the wait is until the last is due. A reservation drives the bucket below zero, so calls made
        meanwhile are refused until the debt is repaid.
        """
        bucket = self._refilled(key)
        count = max(1, count)
        first_wait_s = max(0.0, (1.0 - bucket.tokens) / self.rate_per_s)
        if first_wait_s > max_wait_s or (count > 1 and count > bucket.tokens and 1.0 / self.rate_per_s > max_wait_s):
            return None
        wait_s = max(0.0, (count - bucket.tokens) / self.rate_per_s)
        bucket.tokens -= count
        return wait_s


@dataclass
class FailureLimiter:
    """At most ``max_failures`` failed authentications per peer in each ``window_s``; then the peer is refused until
    the window ends, whatever it sends. At most ``max_peers`` peers are tracked (the oldest windows go first)."""

    max_failures: int
    window_s: float
    max_peers: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict)  # peer -> (window start, failures)

    def _current(self, peer: str) -> tuple[float, int]:
        now = self.clock()
        start, count = self._windows.get(peer, (now, 0))
        return (now, 0) if now - start >= self.window_s else (start, count)

    def blocked(self, peer: str) -> bool:
        return self._current(peer)[1] >= self.max_failures

    def record_failure(self, peer: str) -> None:
        start, count = self._current(peer)
        self._windows.pop(peer, None)  # re-insert last: dict order is then the order of last failure
        self._windows[peer] = (start, count + 1)
        while len(self._windows) > self.max_peers:
            del self._windows[next(iter(self._windows))]


@dataclass
class ConcurrencyLimiter:
    """Calls in flight: at most ``per_identity`` for one identity, ``streams_per_identity`` of them streams, and
    ``per_server`` over everybody."""

    per_identity: int
    streams_per_identity: int
    per_server: int
    _calls: dict[str, int] = field(default_factory=dict)
    _streams: dict[str, int] = field(default_factory=dict)
    _total: int = 0

    def acquire(self, key: str, *, stream: bool) -> str | None:
        """Count one call in; None when admitted, else which limit refused it (for the error message)."""
        if self._total >= self.per_server:
            return f"the gateway is at its limit of {self.per_server} concurrent calls"
        if self._calls.get(key, 0) >= self.per_identity:
            return f"{key} has {self.per_identity} calls in flight already"
        if stream and self._streams.get(key, 0) >= self.streams_per_identity:
            return f"{key} has {self.streams_per_identity} streams open already"
        self._total += 1
        self._calls[key] = self._calls.get(key, 0) + 1
        if stream:
            self._streams[key] = self._streams.get(key, 0) + 1
        return None

    def release(self, key: str, *, stream: bool) -> None:
        self._total -= 1
        _decrement(self._calls, key)
        if stream:
            _decrement(self._streams, key)

    def in_flight(self, key: str | None = None) -> int:
        return self._total if key is None else self._calls.get(key, 0)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
