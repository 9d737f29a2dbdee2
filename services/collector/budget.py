"""The produce budget: how many posts the collector has handed to Kafka and not yet seen acknowledged, bounded.

Without a bound a slow or unreachable Kafka makes the collector buffer without limit: aiokafka's idempotent producer
never expires a batch, so every import chunk and every fetched page waits in memory. With it, work is admitted only
while fewer than ``limit`` posts are in flight; a call that finds the budget full waits ``admission_wait_s`` for room
and is then refused with retry advice, which ``server.py`` turns into a gRPC status with ``google.rpc.RetryInfo``:

- ``ProduceOverloaded`` (RESOURCE_EXHAUSTED, retry after ``retry_after_s``): Kafka is acknowledging, only slower than
  posts arrive;
- ``KafkaStalled`` (UNAVAILABLE, retry after ``stalled_retry_after_s``): posts are in flight and nothing was
  acknowledged for ``stall_after_s`` (the broker is down or unreachable).

The scheduler asks ``saturated`` before starting fetches, so sources slow down instead of piling pages up. One
batch larger than the whole budget is still admitted when nothing else is in flight, so work never deadlocks.

Metrics: ``qingfeng_collector_produce_in_flight``, ``qingfeng_collector_produce_budget`` and
``qingfeng_collector_produce_rejected_total{reason}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from qingfeng.errors import ResourceExhausted, Unavailable

__all__ = ["BudgetConfig", "KafkaStalled", "ProduceBudget", "ProduceOverloaded"]

IN_FLIGHT = Gauge("qingfeng_collector_produce_in_flight", "Posts handed to Kafka and not yet acknowledged")
LIMIT = Gauge("qingfeng_collector_produce_budget", "Posts that may be in flight to Kafka at once")
REJECTED = Counter(
    "qingfeng_collector_produce_rejected",
    "Ingest calls refused because the produce budget stayed full (reason: overloaded or kafka_stalled)",
    ["reason"],
)


class ProduceOverloaded(ResourceExhausted):
    """The budget stayed full for the admission wait while Kafka was still acknowledging: retry after the advice."""


class KafkaStalled(Unavailable):
    """Posts are in flight and Kafka acknowledged nothing for a while: it is down or unreachable; retry later."""


@dataclass(frozen=True)
class BudgetConfig:
    limit: int = 20_000
    admission_wait_s: float = 2.0
    retry_after_s: float = 1.0
    stall_after_s: float = 10.0
    stalled_retry_after_s: float = 5.0


class ProduceBudget:
    """Counts posts in flight to Kafka; ``acquire`` waits briefly for room, then refuses with retry advice."""

    def __init__(self, config: BudgetConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._in_flight = 0
        self._progress_at = clock()  # last acknowledgement, or when the budget last became busy
        self._room = asyncio.Condition()
        LIMIT.set(config.limit)
        IN_FLIGHT.set(0)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def saturated(self) -> bool:
        """True while no more posts would be admitted without waiting (or Kafka is stalled)."""
        return self._in_flight >= self.config.limit or self.stalled

    @property
    def stalled(self) -> bool:
        """Posts are in flight and nothing was acknowledged for ``stall_after_s``."""
        return self._in_flight > 0 and self._clock() - self._progress_at > self.config.stall_after_s

    def _fits(self, n: int) -> bool:
        return self._in_flight == 0 or self._in_flight + n <= self.config.limit

    async def acquire(self, n: int) -> None:
        """Take room for ``n`` posts, waiting at most ``admission_wait_s``; else raise the refusal with advice."""
        if n <= 0:
            return
        async with self._room:
            try:
                async with asyncio.timeout(self.config.admission_wait_s):
                    await self._room.wait_for(lambda: self._fits(n))
            except TimeoutError:
                raise self.refusal() from None
            if self._in_flight == 0:
                self._progress_at = self._clock()
            self._in_flight += n
            IN_FLIGHT.set(self._in_flight)

    def refusal(self) -> ProduceOverloaded | KafkaStalled:
        """The error for a call that cannot be admitted now (counted as rejected)."""
        if self.stalled:
            REJECTED.labels("kafka_stalled").inc()
            return KafkaStalled(
                f"Kafka acknowledged nothing for {self._clock() - self._progress_at:.0f} s with "
                f"{self._in_flight} posts in flight; retry later",
                retry_delay_s=self.config.stalled_retry_after_s,
            )
        REJECTED.labels("overloaded").inc()
        return ProduceOverloaded(
            f"the collector has {self._in_flight} posts in flight to Kafka (budget {self.config.limit}); "
            "retry the same posts later",
            retry_delay_s=self.config.retry_after_s,
        )

    async def release(self, n: int, *, acknowledged: bool) -> None:
        """Give back room for ``n`` posts whose send settled (``acknowledged``: Kafka took them)."""
        if n <= 0:
            return
        async with self._room:
            self._in_flight = max(0, self._in_flight - n)
            if acknowledged:
                self._progress_at = self._clock()
            IN_FLIGHT.set(self._in_flight)
            self._room.notify_all()
