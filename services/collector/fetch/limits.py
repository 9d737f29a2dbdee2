"""Per-host politeness: at most N requests in flight to one host, and a minimum interval between request starts.

Time is injected (a monotonic clock and a sleep coroutine) so tests run without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["Clock", "HostLimiter", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Host:
    semaphore: asyncio.Semaphore
    # Monotonic time before which the next request to this host may not start.
    next_start: float = 0.0
    # A floor set by the host itself (robots.txt Crawl-delay), on top of what each caller asks for.
    crawl_delay_s: float = 0.0


class HostLimiter:
    """Hands out request slots per host.

    The interval is a reservation: each caller books the next free start time before it sleeps, so callers that
    arrive together are spaced out rather than all waking at once.
    """

    def __init__(self, *, concurrency: int, clock: Clock, sleep: Sleep) -> None:
        if concurrency < 1:
            raise ValueError(f"per-host concurrency must be at least 1, got {concurrency}")
        self._concurrency = concurrency
        self._clock = clock
        self._sleep = sleep
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(asyncio.Semaphore(self._concurrency))
        return state

    def set_crawl_delay(self, host: str, seconds: float) -> None:
        """Record the host's own requested delay between requests (robots.txt ``Crawl-delay``)."""
        self._host(host).crawl_delay_s = max(0.0, seconds)

    @asynccontextmanager
    async def slot(self, host: str, min_interval_s: float) -> AsyncIterator[None]:
        """Wait for a free slot on ``host`` and hold it while the body runs."""
        state = self._host(host)
        async with state.semaphore:
            interval = max(min_interval_s, state.crawl_delay_s)
            now = self._clock()
            start = max(now, state.next_start)
            state.next_start = start + interval
            if start > now:
                await self._sleep(start - now)
            yield
