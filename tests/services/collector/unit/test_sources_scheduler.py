from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import FetchState
from services.collector.scheduler import Scheduler, SchedulerConfig
from services.collector.sources import Emit, Outcome, post_id
from tests.services.collector.fakes import FakeIngest, FakeSourceStore, make_source

RSS = common_pb2.SOURCE_KIND_RSS
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


Script = Callable[[source_pb2.Source, FetchState | None, Emit], Awaitable[Outcome]]


class ScriptedAdapter:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.states: list[FetchState | None] = []

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        self.states.append(state)
        return await self.script(source, state, emit)


def _post(source: source_pb2.Source, native: str) -> post_pb2.Post:
    return post_pb2.Post(id=post_id(source.kind, source.id, native), source_id=source.id, text=native)


def _source(source_id: str, interval_s: int = 900, kind: common_pb2.SourceKind.ValueType = RSS) -> source_pb2.Source:
    return make_source(kind, source_id, f"https://{source_id}.example/", schedule_interval=Duration(seconds=interval_s))


async def _ok(source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
    await emit([_post(source, "a"), _post(source, "b")])
    return Outcome(fetch_state=FetchState(etag='"e"'), emitted=2)


async def _fail(source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
    return Outcome(error="HTTP 503: gave up after 3 attempt(s)")


def _scheduler(
    store: FakeSourceStore, ingest: FakeIngest, adapter: ScriptedAdapter, clock: Clock, **config: float
) -> Scheduler:
    return Scheduler(store, ingest, {RSS: adapter}, SchedulerConfig(**config), now=clock)  # type: ignore[arg-type]


async def test_due_sources_are_fetched_ingested_and_recorded() -> None:
    store = FakeSourceStore([_source("a"), _source("b")])
    ingest, clock, adapter = FakeIngest(), Clock(), ScriptedAdapter(_ok)
    scheduler = _scheduler(store, ingest, adapter, clock)
    reports = await scheduler.run_once()
    assert sorted(r.source_id for r in reports) == ["a", "b"]
    assert all(r.summary.accepted == 2 and r.error is None for r in reports)
    assert all(r.next_fetch_at == START + timedelta(seconds=900) for r in reports)
    assert store.sources["a"].status.etag == '"e"' and store.sources["a"].status.items_accepted == 2
    assert await scheduler.run_once() == []  # nothing due until the interval has passed
    clock.now += timedelta(seconds=900)
    again = await scheduler.run_once()
    assert [r.summary.duplicate for r in again] == [2, 2]
    assert adapter.states[-1] == FetchState(etag='"e"')  # the stored validators are sent back


async def test_failures_back_off_exponentially_and_success_resets() -> None:
    store = FakeSourceStore([_source("flaky", interval_s=300)])
    clock = Clock()
    outcomes = [_fail, _fail, _fail, _ok]

    async def script(source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        return await outcomes.pop(0)(source, state, emit)

    scheduler = _scheduler(store, FakeIngest(), ScriptedAdapter(script), clock)
    delays = []
    for _ in range(4):
        (report,) = await scheduler.run_once()
        delays.append((report.next_fetch_at - clock.now).total_seconds())
        clock.now = report.next_fetch_at
    assert delays == [60.0, 120.0, 240.0, 300.0]
    status = store.sources["flaky"].status
    assert status.consecutive_failures == 0 and status.last_error == ""
    assert store.records[0].error == "HTTP 503: gave up after 3 attempt(s)"
    assert store.records[0].fetch_state is None  # a failed fetch keeps the stored validators


async def test_backoff_is_capped() -> None:
    source = _source("down")
    source.status.consecutive_failures = 40
    store = FakeSourceStore([source])
    clock = Clock()
    (report,) = await _scheduler(
        store, FakeIngest(), ScriptedAdapter(_fail), clock, failure_backoff_max_s=3600
    ).run_once()
    assert report.next_fetch_at - START == timedelta(hours=1)


async def test_ingest_failure_and_adapter_bug_become_errors() -> None:
    store = FakeSourceStore([_source("a")])
    clock = Clock()
    (report,) = await _scheduler(store, FakeIngest(fail_times=1), ScriptedAdapter(_ok), clock).run_once()
    assert report.error == "ingest failed: ConnectionError: broker unreachable"
    assert store.records[-1].fetch_state is None and store.sources["a"].status.etag == ""

    async def bug(source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        raise KeyError("oops")

    clock.now = report.next_fetch_at
    (report,) = await _scheduler(store, FakeIngest(), ScriptedAdapter(bug), clock).run_once()
    assert report.error == "internal error: KeyError: 'oops'"
    assert store.sources["a"].status.consecutive_failures == 2


async def test_kinds_without_adapter_and_paused_sources() -> None:
    paused = _source("paused")
    paused.paused = True
    store = FakeSourceStore([_source("tip", kind=common_pb2.SOURCE_KIND_MANUAL_TIP), paused])
    (report,) = await _scheduler(store, FakeIngest(), ScriptedAdapter(_ok), Clock()).run_once()
    assert report.source_id == "tip"
    assert report.error == "sources of kind SOURCE_KIND_MANUAL_TIP are not fetched by the scheduler"


async def test_concurrency_is_bounded_and_no_source_runs_twice() -> None:
    store = FakeSourceStore([_source(f"s{i}") for i in range(5)])
    running = peak = 0
    release = asyncio.Event()

    async def slow(source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return Outcome()

    adapter = ScriptedAdapter(slow)
    scheduler = _scheduler(store, FakeIngest(), adapter, Clock(), max_concurrency=2)
    first = await scheduler.tick()
    second = await scheduler.tick()  # all five are in flight: none is started again
    await asyncio.sleep(0.01)
    assert (len(first), len(second), peak) == (5, 0, 2)
    release.set()
    await asyncio.gather(*first)
    assert peak == 2 and len(adapter.states) == 5 and len(store.records) == 5


async def test_fetch_timeout() -> None:
    async def hang(source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        await asyncio.sleep(10)
        return Outcome()

    store = FakeSourceStore([_source("hang")])
    (report,) = await _scheduler(store, FakeIngest(), ScriptedAdapter(hang), Clock(), fetch_timeout_s=0.01).run_once()
    assert report.error == "fetch took longer than 0.01 s"


async def test_run_loop_stops_and_drains() -> None:
    store = FakeSourceStore([_source("a")])
    scheduler = _scheduler(store, FakeIngest(), ScriptedAdapter(_ok), Clock(), tick_s=0.01)
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(loop, 1)
    assert len(store.records) == 1  # fetched once: not due again within its interval
