"""In-memory stand-ins for the collector's ports and for time, shared by the collector's tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import Fetcher, FetcherConfig
from services.collector.ports import FetchState, IngestSummary, Rejected


@dataclass
class RecordedFetch:
    source_id: str
    at: datetime
    summary: IngestSummary
    error: str | None
    fetch_state: FetchState | None
    next_fetch_at: datetime


class FakeSourceStore:
    """A SourceStore over a dict, updating each source's status the way the real registry does."""

    def __init__(self, sources: Sequence[source_pb2.Source] = ()) -> None:
        self.sources: dict[str, source_pb2.Source] = {s.id: s for s in sources}
        self.records: list[RecordedFetch] = []

    def add(self, source: source_pb2.Source) -> None:
        self.sources[source.id] = source

    async def due(self, now: datetime) -> list[source_pb2.Source]:
        due = []
        for source in sorted(self.sources.values(), key=lambda s: s.id):
            next_at = source.status.next_fetch_at
            if not source.paused and (not next_at.seconds or next_at.ToDatetime(UTC) <= now):
                copy = source_pb2.Source()
                copy.CopyFrom(source)
                due.append(copy)
        return due

    async def record_fetch(
        self,
        source_id: str,
        *,
        at: datetime,
        summary: IngestSummary,
        error: str | None,
        fetch_state: FetchState | None,
        next_fetch_at: datetime,
    ) -> None:
        self.records.append(RecordedFetch(source_id, at, summary, error, fetch_state, next_fetch_at))
        status = self.sources[source_id].status
        status.last_fetch_at.FromDatetime(at)
        status.next_fetch_at.FromDatetime(next_fetch_at)
        status.items_seen += summary.accepted + summary.duplicate + summary.rejected
        status.items_accepted += summary.accepted
        status.items_duplicate += summary.duplicate
        status.items_rejected += summary.rejected
        if error is None:
            status.last_success_at.FromDatetime(at)
            status.last_error = ""
            status.consecutive_failures = 0
        else:
            status.last_error = error
            status.consecutive_failures += 1
        if fetch_state is not None:
            status.etag = fetch_state.etag
            status.last_modified = fetch_state.last_modified


class FakeIngest:
    """Keeps what it was given; a post id seen before counts as a duplicate. ``fail_times`` makes it raise."""

    def __init__(self, fail_times: int = 0) -> None:
        self.posts: list[post_pb2.Post] = []
        self.rejected: list[Rejected] = []
        self.calls = 0
        self.fail_times = fail_times
        self._seen: set[str] = set()

    async def __call__(self, items: Sequence[post_pb2.Post | Rejected]) -> IngestSummary:
        self.calls += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise ConnectionError("broker unreachable")
        accepted = duplicate = rejected = 0
        for item in items:
            if isinstance(item, Rejected):
                self.rejected.append(item)
                rejected += 1
            elif item.id in self._seen:
                duplicate += 1
            else:
                self._seen.add(item.id)
                self.posts.append(item)
                accepted += 1
        return IngestSummary(accepted, duplicate, rejected)


@dataclass
class FakeTime:
    """A monotonic clock and a sleep that only advances it, recording every wait asked for."""

    monotonic: float = 1000.0
    wall: datetime = field(default_factory=lambda: datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.monotonic

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.monotonic += seconds
        self.wall += timedelta(seconds=seconds)


class Collected:
    """An ``emit`` callback that keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[list[post_pb2.Post | Rejected]] = []

    async def __call__(self, items: Sequence[post_pb2.Post | Rejected]) -> None:
        self.batches.append(list(items))

    @property
    def items(self) -> list[post_pb2.Post | Rejected]:
        return [item for batch in self.batches for item in batch]

    @property
    def posts(self) -> list[post_pb2.Post]:
        return [item for item in self.items if isinstance(item, post_pb2.Post)]

    @property
    def rejected(self) -> list[Rejected]:
        return [item for item in self.items if isinstance(item, Rejected)]


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def mock_fetcher(
    handler: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]],
    time: FakeTime,
    config: FetcherConfig | None = None,
) -> Fetcher:
    """A Fetcher whose requests are answered by ``handler`` and whose waits only advance ``time``."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Fetcher(
        config or FetcherConfig(default_min_interval_s=0.0),
        client=client,
        clock=time.clock,
        sleep=time.sleep,
        now=time.now,
        random_fn=lambda: 1.0,
    )


def make_source(
    kind: common_pb2.SourceKind.ValueType, source_id: str = "src", url: str = "", **fields: Any
) -> source_pb2.Source:
    return source_pb2.Source(id=source_id, kind=kind, name=source_id, url=url, **fields)


class FakeProducer:
    """The pipeline's producer port in memory: every record is acknowledged at once and kept in ``sent``."""

    max_request_size = 1_048_576

    def __init__(self) -> None:
        self.sent: list[OutgoingRecord] = []

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        batch = list(records)
        self.sent.extend(batch)
        return [Delivery(r.topic, 0, i) for i, r in enumerate(batch)]
