"""The fetch loop: every tick, ask the source registry what is due, fetch it, ingest what came, record how it went.

- At most ``max_concurrency`` sources are fetched at once, and a source is never fetched twice at the same time
  (a slow fetch that outlives a tick is skipped by the next one, not started again).
- A success is next due one ``schedule_interval`` after it started. A failure is retried sooner and then less and
  less often: ``failure_backoff_base_s · 2^(n-1)`` after the n-th failure in a row, capped at
  ``failure_backoff_max_s``, so a broken site is not hammered and a passing glitch costs one short wait.
- Nothing escapes a fetch: a bug in an adapter or an ingest failure (Kafka down) is recorded as the source's error,
  and the conditional-GET state is then not advanced, so the next fetch reads the content again.
- Backpressure (``budget.py``): while the produce budget is full (``pressure()``) a tick starts no fetch, so sources
  wait instead of piling pages up in memory; a fetch whose ingest is refused with retry advice waits that long and
  hands the same page again (the adapter fetches its next page only after that), for at most
  ``backpressure_max_wait_s``, after which the refusal is recorded as the fetch's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from qingfeng.errors import ServiceError
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.ports import FetchState, Ingest, IngestSummary, SourceStore
from services.collector.sources.base import Emit, Item, Outcome, SourceAdapter

__all__ = ["FetchReport", "Scheduler", "SchedulerConfig", "next_fetch_delay"]

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class SchedulerConfig:
    tick_s: float = 5.0
    max_concurrency: int = 8
    # For sources without a schedule_interval, and the shortest one honoured.
    default_interval_s: float = 900.0
    min_interval_s: float = 10.0
    failure_backoff_base_s: float = 60.0
    failure_backoff_max_s: float = 6 * 3600.0
    # One fetch of one source (all its pages) may not take longer than this.
    fetch_timeout_s: float = 600.0
    # On stop, fetches in flight get this long to finish before they are cancelled.
    shutdown_grace_s: float = 10.0
    # A fetch whose ingest is refused for backpressure retries the same page for at most this long.
    backpressure_max_wait_s: float = 120.0


@dataclass(frozen=True)
class FetchReport:
    """What one fetch of one source did (also what was recorded in the registry)."""

    source_id: str
    started_at: datetime
    summary: IngestSummary
    error: str | None
    next_fetch_at: datetime
    not_modified: bool = False


def next_fetch_delay(source: source_pb2.Source, failed: bool, config: SchedulerConfig) -> timedelta:
    """How long after the start of this fetch the source is due again."""
    if failed:
        failures = source.status.consecutive_failures + 1
        seconds = config.failure_backoff_base_s * 2.0 ** min(failures - 1, 30)
        return timedelta(seconds=min(seconds, config.failure_backoff_max_s))
    interval = source.schedule_interval.ToTimedelta().total_seconds() or config.default_interval_s
    return timedelta(seconds=max(interval, config.min_interval_s))


class _IngestFailed(Exception):
    pass


def _add(a: IngestSummary, b: IngestSummary) -> IngestSummary:
    return IngestSummary(a.accepted + b.accepted, a.duplicate + b.duplicate, a.rejected + b.rejected)


class Scheduler:
    """Runs the fetch loop over a ``SourceStore`` with one adapter per source kind (see ``sources.build_adapters``)."""

    def __init__(
        self,
        store: SourceStore,
        ingest: Ingest,
        adapters: Mapping[common_pb2.SourceKind.ValueType, SourceAdapter],
        config: SchedulerConfig | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        pressure: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._pressure = pressure  # True while the produce budget is full: start no fetch
        self._held_ticks = 0
        self._adapters = adapters
        self.config = config or SchedulerConfig()
        self._now = now
        self._slots = asyncio.Semaphore(self.config.max_concurrency)
        self._in_flight: dict[str, asyncio.Task[FetchReport]] = {}

    async def tick(self) -> list[asyncio.Task[FetchReport]]:
        """Start a fetch for every due source not already being fetched; returns the started tasks."""
        started: list[asyncio.Task[FetchReport]] = []
        if self._pressure():
            self._held_ticks += 1
            if self._held_ticks == 1 or self._held_ticks % 60 == 0:
                _log.warning("produce budget full: no fetch started (%d ticks in a row)", self._held_ticks)
            return started
        self._held_ticks = 0
        for source in await self._store.due(self._now()):
            if source.paused or source.id in self._in_flight:
                continue
            task = asyncio.create_task(self._bounded(source), name=f"fetch:{source.id}")
            self._in_flight[source.id] = task
            task.add_done_callback(self._forget)
            started.append(task)
        return started

    def _forget(self, task: asyncio.Task[FetchReport]) -> None:
        source_id = task.get_name().removeprefix("fetch:")
        if self._in_flight.get(source_id) is task:
            del self._in_flight[source_id]

    async def run_once(self) -> list[FetchReport]:
        """One tick, waiting for its fetches (for tests and one-shot runs)."""
        tasks = await self.tick()
        return list(await asyncio.gather(*tasks)) if tasks else []

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``tick_s`` until ``stop`` is set, then let fetches in flight finish (within the grace)."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:  # the registry may be briefly unreachable; the loop must outlive that
                    _log.exception("scheduler tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.config.tick_s)
        finally:
            await self.drain(self.config.shutdown_grace_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait for fetches in flight; cancel those still running after ``timeout_s``."""
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _bounded(self, source: source_pb2.Source) -> FetchReport:
        async with self._slots:
            return await self.fetch(source)

    async def fetch(self, source: source_pb2.Source) -> FetchReport:
        """Fetch one source now, ingest its items and record the outcome; never raises (except on cancellation)."""
        started_at = self._now()
        status = source.status
        state = FetchState(status.etag, status.last_modified) if status.etag or status.last_modified else None
        summary = IngestSummary()

        async def emit(items: Sequence[Item]) -> None:
            nonlocal summary
            if not items:
                return
            waited_until = time.monotonic() + self.config.backpressure_max_wait_s
            while True:
                try:
                    summary = _add(summary, await self._ingest(items))
                    return
                except ServiceError as err:
                    # Backpressure: the same page again after the advised delay; the source waits meanwhile.
                    delay = err.retry_delay_s
                    if delay is None or time.monotonic() + delay > waited_until:
                        raise _IngestFailed(f"ingest failed: {type(err).__name__}: {err}") from err
                    await asyncio.sleep(delay)
                except Exception as err:
                    raise _IngestFailed(f"ingest failed: {type(err).__name__}: {err}") from err

        kind_name = common_pb2.SourceKind.Name(source.kind) if source.kind in common_pb2.SourceKind.values() else "?"
        with _tracer.start_as_current_span(
            "collector.fetch_source", attributes={"qingfeng.source_id": source.id, "qingfeng.source_kind": kind_name}
        ) as span:
            outcome = await self._collect(source, state, emit, kind_name)
            if outcome.error:
                span.set_attribute("qingfeng.fetch_error", outcome.error)
        delay = next_fetch_delay(source, outcome.error is not None, self.config)
        finished_at = self._now()
        next_fetch_at = max(started_at + delay, finished_at + timedelta(seconds=self.config.min_interval_s))
        report = FetchReport(source.id, started_at, summary, outcome.error, next_fetch_at, outcome.not_modified)
        await self._record(report, outcome.fetch_state)
        return report

    async def _collect(
        self,
        source: source_pb2.Source,
        state: FetchState | None,
        emit: Emit,
        kind_name: str,
    ) -> Outcome:
        adapter = self._adapters.get(source.kind)
        if adapter is None:
            return Outcome(error=f"sources of kind {kind_name} are not fetched by the scheduler")
        try:
            async with asyncio.timeout(self.config.fetch_timeout_s):
                return await adapter.collect(source, state, emit)
        except _IngestFailed as err:
            return Outcome(error=str(err))
        except TimeoutError:
            return Outcome(error=f"fetch took longer than {self.config.fetch_timeout_s:g} s")
        except Exception as err:
            _log.exception("source %s: adapter failed", source.id)
            return Outcome(error=f"internal error: {type(err).__name__}: {err}")

    async def _record(self, report: FetchReport, fetch_state: FetchState | None) -> None:
        try:
            await self._store.record_fetch(
                report.source_id,
                at=report.started_at,
                summary=report.summary,
                error=report.error,
                fetch_state=fetch_state if report.error is None or fetch_state == FetchState() else None,
                next_fetch_at=report.next_fetch_at,
            )
        except Exception:
            # The source stays due and is fetched again next tick; dedupe absorbs the repeat.
            _log.exception("source %s: recording the fetch failed", report.source_id)
        level = logging.WARNING if report.error else logging.INFO
        _log.log(
            level,
            "source %s fetched: %s accepted, %s duplicate, %s rejected%s; next at %s",
            report.source_id,
            report.summary.accepted,
            report.summary.duplicate,
            report.summary.rejected,
            f"; error: {report.error}" if report.error else (" (not modified)" if report.not_modified else ""),
            report.next_fetch_at.isoformat(),
        )
