"""The engine's owner (checkpoints, recovery, commands) and the event-time merge, over in-memory fakes.

The fakes here (``FakeStore``, ``FakeSink``, ``FakeIndex``, ``FakeAlertLog``) are the in-memory ports; the server
tests reuse them. ``FakeIndex`` stands for what the index role makes of the published snapshots (``Ports`` links it
to the sink): the owner itself never writes Elasticsearch.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from qingfeng.kafka import DeadLetterSpec, Delivery, Record
from qingfeng.v1 import common_pb2, event_pb2, post_pb2

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, THREE_TIER_POLICY, PolicyLoadError
from services.grader.consumer import EventTimeMerge, Item, PostConsumer
from services.grader.core import GraderConfig, PostView
from services.grader.errors import Unavailable
from services.grader.ports import AuditEntry, Checkpoint, CheckpointInfo, Outputs, PolicyRecord
from services.grader.settings import CheckpointSettings, ConsumerSettings
from services.grader.state import EngineOwner
from services.grader.state_codec import decode_state, encode_state

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
W = common_pb2.WarningLevel


@dataclass
class FakeStore:
    checkpoint: Checkpoint | None = None
    policies: dict[str, PolicyRecord] = field(default_factory=dict)
    active: str | None = None
    audit: list[AuditEntry] = field(default_factory=list)
    saves: int = 0
    fail: bool = False

    async def load(self) -> Checkpoint | None:
        return self.checkpoint

    async def save(
        self, checkpoint: Checkpoint | None, *, policy: PolicyRecord | None = None, audit: Sequence[AuditEntry] = ()
    ) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.saves += 1
        if checkpoint is not None:
            self.checkpoint = checkpoint
        if policy is not None:
            self.policies[policy.version] = policy
            self.active = policy.version
        self.audit.extend(audit)

    async def active_policy(self) -> PolicyRecord | None:
        return self.policies[self.active] if self.active else None

    async def policy(self, version: str) -> PolicyRecord | None:
        return self.policies.get(version)

    async def checkpoint_info(self) -> CheckpointInfo | None:
        cp = self.checkpoint
        return None if cp is None else CheckpointInfo(cp.positions, cp.generation, cp.saved_at)

    async def order_batches(self) -> list[list[tuple[int, int, int]]]:
        return []  # no order log here (the owner is built without one)


@dataclass
class FakeIndex:
    docs: dict[str, event_pb2.Event] = field(default_factory=dict)
    fail: bool = False

    async def index(self, events: Sequence[event_pb2.Event]) -> None:
        if self.fail:
            raise Unavailable("elasticsearch down")
        self.docs.update({e.id: e for e in events})


@dataclass
class FakeSink:
    """The alerts topic as one partition (a list of alert ids) plus the events and assignments published.

    ``downstream``: the index role's view, fed every published snapshot (the latest per event wins)."""

    alerts: list[event_pb2.Alert] = field(default_factory=list)
    events: list[event_pb2.Event] = field(default_factory=list)
    assignments: list[dict[str, str]] = field(default_factory=list)
    downstream: FakeIndex | None = None
    fail: bool = False

    async def publish(self, outputs: Outputs) -> dict[int, int]:
        if self.fail:
            raise ConnectionError("kafka down")
        self.alerts.extend(outputs.alerts)
        self.events.extend(outputs.events)
        if outputs.assignments:
            self.assignments.append(dict(outputs.assignments))
        if self.downstream is not None:
            self.downstream.docs.update({e.id: e for e in outputs.events})
        return {0: len(self.alerts)} if outputs.alerts else {}

    def post_events(self) -> dict[str, str]:
        """Post id -> event id as the index role ends up writing them (later records win)."""
        out: dict[str, str] = {}
        for batch in self.assignments:
            out.update(batch)
        return out


@dataclass
class FakeAlertLog:
    sink: FakeSink

    async def emitted(self, since: Mapping[int, int]) -> set[str]:
        return {a.id for a in self.sink.alerts[since.get(0, 0) :]}


@dataclass
class Ports:
    store: FakeStore = field(default_factory=FakeStore)
    sink: FakeSink = field(default_factory=FakeSink)
    index: FakeIndex = field(default_factory=FakeIndex)

    def __post_init__(self) -> None:
        self.sink.downstream = self.index

    def owner(self, every_batches: int = 1000, *, post_event_ids: bool = True) -> EngineOwner:
        return EngineOwner(
            self.store,
            self.sink,
            FakeAlertLog(self.sink),
            post_event_ids=post_event_ids,
            config=GraderConfig(),
            cadence=CheckpointSettings(every_batches=every_batches, every_s=3600),
            clock=lambda: datetime(2025, 6, 2, tzinfo=UTC),
        )


DEFAULT_TEXT = DEFAULT_POLICY.read_text(encoding="utf-8")


async def started(ports: Ports, every_batches: int = 1000) -> EngineOwner:
    """An owner over the ports with the default policy configured, recovered (from their checkpoint, if any)."""
    owner = ports.owner(every_batches)
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    return owner


def story(n: int = 120, start: datetime = T0, every_s: float = 6.0, prefix: str = "p") -> list[PostView]:
    """An original and its reposts from distinct authors, some from a media account: blue, yellow, then orange."""
    posts = [PostView(f"{prefix}0", start, author_id=f"{prefix}u0", author_followers=900_000, text="某局长违规")]
    for i in range(1, n):
        posts.append(
            PostView(
                f"{prefix}{i}",
                start + timedelta(seconds=every_s * i),
                author_id=f"{prefix}u{i}",
                author_followers=100,
                author_is_media=i == 30,
                parent_id=f"{prefix}0",
                comments=40,
                region_codes=("330100",) if i % 2 else ("330200",),
            )
        )
    return posts


async def feed(owner: EngineOwner, posts: list[PostView], batch: int = 10) -> None:
    for i in range(0, len(posts), batch):
        chunk = posts[i : i + batch]
        await owner.run_batch(chunk, {0: owner.positions.get(0, 0) + len(chunk)}, max(p.created_at for p in chunk))


def ids(alerts: list[event_pb2.Alert]) -> list[str]:
    return [a.id for a in alerts]


# -- state encoding ---------------------------------------------------------------------------------------------


async def test_state_blob_round_trips() -> None:
    ports = Ports()
    owner = await started(ports)
    await feed(owner, story(40))
    data = owner.engine.snapshot()
    assert decode_state(encode_state(data)) == data


# -- recovery ---------------------------------------------------------------------------------------------------


async def test_fresh_start_grades_and_publishes_alerts_with_snapshots_and_documents() -> None:
    ports = Ports()
    owner = await started(ports)
    assert not owner.stale and not owner.has_checkpoint
    await feed(owner, story())
    levels = [(a.from_level, a.to_level) for a in ports.sink.alerts]
    assert levels[0] == (W.WARNING_LEVEL_NONE, W.WARNING_LEVEL_BLUE)
    assert max(a.to_level for a in ports.sink.alerts) == W.WARNING_LEVEL_ORANGE
    assert ids(ports.sink.alerts) == [f"ev-p0:{i}" for i in range(1, len(levels) + 1)]
    assert set(ports.index.docs) == {"ev-p0"} and ports.sink.events
    assert owner.positions == {0: 120}


async def test_each_batch_publishes_its_posts_live_events_with_its_outputs() -> None:
    ports = Ports()
    owner = await started(ports, every_batches=2)
    posts = story(40)
    await feed(owner, posts, batch=10)
    clusterer = owner.engine.clusterer
    live = {p.id: clusterer.resolve(clusterer.posts.get(p.id) or "") for p in posts}
    assert len(ports.sink.assignments) == 4, "one publication per batch, acknowledged with its alerts"
    assert ports.sink.post_events() == {k: v for k, v in live.items() if v} and len(live) == 40
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 40}


async def test_post_event_ids_off_publishes_no_assignments() -> None:
    ports = Ports()
    owner = ports.owner(post_event_ids=False)
    await owner.activate_configured(DEFAULT_TEXT, str(DEFAULT_POLICY))
    await owner.recover()
    await feed(owner, story(40))
    assert ports.sink.assignments == [] and ports.sink.alerts


async def test_a_replay_publishes_the_same_assignments_again() -> None:
    posts = story(60)
    reference = Ports()
    await feed(await started(reference), posts)
    ports = Ports()
    first = await started(ports, every_batches=3)
    await feed(first, posts[:40])  # checkpoint at 30; batch 4 published, then "crash"
    second = await started(ports, every_batches=3)
    await feed(second, posts[30:])
    assert ports.sink.post_events() == reference.sink.post_events()
    assert ports.sink.assignments[3] == ports.sink.assignments[4], "the lost batch again, with the same pairs"


async def test_checkpoint_cadence_every_n_batches() -> None:
    ports = Ports()
    owner = await started(ports, every_batches=3)
    await feed(owner, story(60), batch=10)  # 6 batches
    assert owner.checkpoints == 2
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 60}


async def test_crash_replay_suppresses_alerts_already_published_and_loses_none() -> None:
    posts = story(150)
    reference = Ports()
    ref_owner = await started(reference)
    await feed(ref_owner, posts)

    ports = Ports()
    first = await started(ports, every_batches=3)
    await feed(first, posts[:70])  # checkpoint after batch 6 (60 posts); batch 7 published, then "crash"
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 60}
    published_before_crash = len(ports.sink.alerts)

    second = await started(ports, every_batches=3)
    assert second.positions == {0: 60}
    await feed(second, posts[60:])
    assert ids(ports.sink.alerts) == ids(reference.sink.alerts)
    assert second.suppressed == published_before_crash - _alerts_before(ports, 60, posts)
    assert [s.level for s in second.engine.snapshots()] == [s.level for s in ref_owner.engine.snapshots()]


def _alerts_before(ports: Ports, position: int, posts: list[PostView]) -> int:
    cutoff = posts[position - 1].created_at
    return sum(1 for a in ports.sink.alerts if a.grade.graded_at.ToDatetime(tzinfo=UTC) <= cutoff)


async def test_failed_effect_turns_stale_and_recovery_rebuilds_from_the_checkpoint() -> None:
    ports = Ports()
    owner = await started(ports, every_batches=1)
    posts = story(40)
    await feed(owner, posts[:20])
    ports.sink.fail = True
    with pytest.raises(Unavailable):
        await owner.run_batch(posts[20:30], {0: 30}, posts[29].created_at)
    assert owner.stale
    with pytest.raises(Unavailable):
        await owner.run_batch(posts[30:], {0: 40}, posts[-1].created_at)
    ports.sink.fail = False
    await owner.recover()
    assert owner.positions == {0: 20}  # the batch whose effects failed is read again
    await feed(owner, posts[20:])
    assert len(ids(ports.sink.alerts)) == len(set(ids(ports.sink.alerts)))


# -- commands ---------------------------------------------------------------------------------------------------


async def test_command_is_stored_with_pending_outputs_and_audit_before_it_is_published() -> None:
    ports = Ports()
    owner = await started(ports)
    await feed(owner, story(20))
    before = len(ports.sink.alerts)
    ports.sink.fail = True  # stored, but the publish fails: a crash between the two
    audit = AuditEntry(actor="alice", action="event.override", target="ev-p0")
    outputs = await owner.command(lambda g: g.override("ev-p0", "red", "领导批示", "alice", T0), audit)
    assert [a.to_level for a in outputs.alerts] == [W.WARNING_LEVEL_RED]
    assert owner.stale and len(ports.sink.alerts) == before
    stored = ports.store.checkpoint
    assert stored is not None and [a.id for a in stored.pending.alerts] == [a.id for a in outputs.alerts]
    assert ports.store.audit[-1] == audit

    ports.sink.fail = False
    restarted = await started(ports)  # publishes the pending override alert exactly once
    assert [a.to_level for a in ports.sink.alerts[before:]] == [W.WARNING_LEVEL_RED]
    assert restarted.engine.event("ev-p0") is not None
    snapshot = restarted.engine.event("ev-p0")
    assert snapshot is not None and snapshot.grade.override is not None
    again = await started(ports)  # the same pending outputs again: the alert is already out
    assert len(ports.sink.alerts) == before + 1 and again.suppressed == 1


async def test_command_that_cannot_be_stored_is_not_applied() -> None:
    ports = Ports()
    owner = await started(ports)
    await feed(owner, story(20))
    await owner.close()  # a checkpoint with the event in it
    ports.store.fail = True
    with pytest.raises(Unavailable):
        await owner.command(lambda g: g.override("ev-p0", "red", "x", "alice", T0), AuditEntry("a", "b", "c"))
    ports.store.fail = False
    await owner.recover()
    snapshot = owner.engine.event("ev-p0")
    assert snapshot is not None and snapshot.grade.override is None


async def test_command_errors_leave_the_engine_unchanged() -> None:
    ports = Ports()
    owner = await started(ports)
    await feed(owner, story(20))
    saves = ports.store.saves
    with pytest.raises(KeyError):
        await owner.command(lambda g: g.override("ev-nope", "red", "x", "a", T0), AuditEntry("a", "b", "c"))
    assert ports.store.saves == saves and not owner.stale


# -- the active policy ------------------------------------------------------------------------------------------


async def test_configured_policy_is_activated_once_and_a_later_update_survives_restart() -> None:
    ports = Ports()
    await started(ports)
    assert ports.store.active == "four-level.v4"
    assert [a.action for a in ports.store.audit] == ["policy.activate"]
    text = THREE_TIER_POLICY.read_text(encoding="utf-8")
    ports.store.policies["three-tier.v1"] = PolicyRecord("three-tier.v1", text, "x", "three_tier", T0, "bob")
    ports.store.active = "three-tier.v1"
    owner = await started(ports)  # the file's version is known: the later activation stays
    assert owner.active is not None and owner.active.record.version == "three-tier.v1"
    assert len(ports.store.audit) == 1


async def test_invalid_configured_policy_refuses_to_start(tmp_path: object) -> None:
    ports = Ports()
    owner = ports.owner()
    with pytest.raises(PolicyLoadError):
        await owner.activate_configured("kind: grading-policy\nname: x\n", "broken.yaml")


async def test_state_graded_under_another_policy_is_regraded_on_recovery() -> None:
    ports = Ports()
    owner = await started(ports)
    await feed(owner, story(120))
    await owner.close()
    assert ports.store.checkpoint is not None
    before = len(ports.sink.alerts)
    text = THREE_TIER_POLICY.read_text(encoding="utf-8")
    ports.store.policies["three-tier.v1"] = PolicyRecord("three-tier.v1", text, "x", "three_tier", T0, "bob")
    ports.store.active = "three-tier.v1"
    restarted = await started(ports)
    assert restarted.engine.state_policy_version == "three-tier.v1"
    regraded = ports.sink.events[-1]
    assert regraded.grade.scheme == common_pb2.LEVEL_SCHEME_THREE_TIER and len(ports.sink.alerts) >= before


# -- the event-time merge ---------------------------------------------------------------------------------------


def _items(partitions: int = 3, per_partition: int = 40, seed: int = 1) -> dict[int, list[Item]]:
    rng = random.Random(seed)
    out: dict[int, list[Item]] = {}
    for p in range(partitions):
        t = 0.0
        rows = []
        for offset in range(per_partition):
            t += rng.choice([0.5, 1.0, 3.0, 10.0])
            record = Record(topic="posts", partition=p, offset=offset, key=None, value=b"", headers=(), timestamp_ms=0)
            rows.append(Item(record, t))
        out[p] = rows
    return out


def _drain(items: dict[int, list[Item]], chunking: random.Random, limit: int) -> list[tuple[int, int]]:
    merge = EventTimeMerge()
    merge.reset({p: 0 for p in items})
    cursor = dict.fromkeys(items, 0)
    released: list[tuple[int, int]] = []

    def caught_up(p: int, next_offset: int) -> bool:
        return next_offset >= len(items[p])

    while len(released) < sum(len(v) for v in items.values()):
        out = merge.release(limit, caught_up)
        released += [(i.record.partition, i.record.offset) for i in out]
        if not out:
            for p in merge.needy(limit):
                n = chunking.randint(0, 7)
                merge.add(p, items[p][cursor[p] : cursor[p] + n])
                cursor[p] = min(len(items[p]), cursor[p] + n)
    return released


def test_merge_order_does_not_depend_on_how_fetches_split_the_partitions() -> None:
    items = _items()
    orders = {tuple(_drain(items, random.Random(seed), limit)) for seed in range(8) for limit in (1, 5, 50)}
    assert len(orders) == 1
    order = orders.pop()
    keys = [items[p][o].key for p, o in order]
    assert keys == sorted(keys)  # each partition is in time order here, so the merge is the global time order


def test_merge_waits_for_a_partition_that_is_not_at_its_end() -> None:
    items = _items(partitions=2, per_partition=3)
    merge = EventTimeMerge()
    merge.reset({0: 0, 1: 0})
    merge.add(0, items[0])
    assert merge.release(10, lambda p, n: False) == []  # partition 1 may still hold an earlier post
    released = merge.release(10, lambda p, n: p == 1)  # partition 1 is at its end: nothing to wait for
    assert [i.record.offset for i in released] == [0, 1, 2]
    merge.add(1, [Item(items[1][0].record, -1.0)])
    assert merge.needy(1) == [0]


def test_dead_letters_sort_first() -> None:
    merge = EventTimeMerge()
    merge.reset({0: 0})
    rec = Record(topic="posts", partition=0, offset=0, key=None, value=b"", headers=(), timestamp_ms=0)
    merge.add(0, [Item(rec, float("-inf"))])
    assert merge.buffered() == 1
    assert len(merge.release(5, lambda p, n: True)) == 1


# -- the consumer loop ------------------------------------------------------------------------------------------


def _record(partition: int, offset: int, value: bytes, at: datetime) -> Record:
    return Record(topic="posts", partition=partition, offset=offset, key=None, value=value, headers=(),
                  timestamp_ms=int(at.timestamp() * 1000))  # fmt: skip


def _wire(view: PostView) -> post_pb2.Post:
    post = post_pb2.Post(id=view.id, parent_id=view.parent_id or "", comments=view.comments,
                         author=post_pb2.Author(id=view.author_id, followers=view.author_followers,
                                                is_media=view.author_is_media))  # fmt: skip
    post.created_at.FromDatetime(view.created_at)
    for code in view.region_codes:
        post.enrichment.regions.add(code=code, name="杭州市" if code == "330100" else "")
    return post


@dataclass
class FakeReader:
    """Two partitions of posts (alternating), read three records per fetch."""

    records: dict[int, list[Record]]
    pos: dict[int, int] = field(default_factory=dict)
    commits: list[dict[int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, views: list[PostView], extra: Sequence[tuple[int, bytes]] = ()) -> FakeReader:
        records: dict[int, list[Record]] = {0: [], 1: []}
        for i, view in enumerate(views):
            p = i % 2
            records[p].append(_record(p, len(records[p]), _wire(view).SerializeToString(), view.created_at))
        for p, value in extra:
            records[p].append(_record(p, len(records[p]), value, views[-1].created_at))
        return cls(records)

    async def partitions(self) -> list[int]:
        return sorted(self.records)

    async def seek(self, positions: Mapping[int, int], *, default: str) -> dict[int, int]:
        self.pos = {p: positions.get(p, 0 if default == "earliest" else len(r)) for p, r in self.records.items()}
        return dict(self.pos)

    async def fetch(self, partitions: Sequence[int], timeout_ms: int, max_records: int) -> dict[int, list[Record]]:
        out = {}
        for p in partitions:
            chunk = self.records[p][self.pos[p] : self.pos[p] + 3]
            if chunk:
                out[p] = chunk
                self.pos[p] += len(chunk)
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        return out

    def caught_up(self, partition: int, next_offset: int) -> bool:
        return next_offset >= len(self.records[partition])

    def lag(self, partition: int, next_offset: int) -> int:
        return max(0, len(self.records[partition]) - next_offset)

    async def commit(self, positions: Mapping[int, int]) -> None:
        self.commits.append(dict(positions))

    async def committed(self) -> dict[int, int]:
        return dict(self.commits[-1]) if self.commits else {}


@dataclass
class FakeDeadLetters:
    sent: list[DeadLetterSpec] = field(default_factory=list)

    async def send(self, specs: Iterable[DeadLetterSpec]) -> list[Delivery]:
        self.sent.extend(specs)
        return []


async def _until(condition: Callable[[], bool], task: asyncio.Task[None]) -> None:
    for _ in range(5000):
        if condition():
            return
        assert not task.done(), task
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_consumer_grades_in_event_time_dead_letters_and_checkpoints_on_stop() -> None:
    ports = Ports()
    owner = await started(ports)
    views = story(60)
    reader = FakeReader.of(views, extra=[(1, b"\x0a\x05ab")])
    dead = FakeDeadLetters()
    consumer = PostConsumer(owner, reader, dead, ConsumerSettings(batch_size=7, poll_timeout_ms=5))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.posts == 60 and consumer.dead_lettered == 1, task)
    stop.set()
    await task
    assert [d.reason for d in dead.sent] == [post_pb2.DEAD_LETTER_REASON_UNDECODABLE]
    assert ports.store.checkpoint is not None and ports.store.checkpoint.positions == {0: 30, 1: 31}
    assert reader.commits[-1] == {0: 30, 1: 31}
    assert max(a.to_level for a in ports.sink.alerts) == W.WARNING_LEVEL_ORANGE
    assert ports.sink.alerts[-1].regions and {r.name for r in ports.sink.alerts[-1].regions} >= {"杭州市"}


async def test_consumer_recovers_after_a_failed_effect_without_repeating_alerts() -> None:
    ports = Ports()
    owner = await started(ports, every_batches=2)
    reader = FakeReader.of(story(60))
    consumer = PostConsumer(owner, reader, FakeDeadLetters(),
                            ConsumerSettings(batch_size=5, poll_timeout_ms=5, retry_backoff_s=0.01))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.batches >= 5, task)
    ports.sink.fail = True
    await _until(lambda: owner.stale, task)
    ports.sink.fail = False
    await _until(lambda: not owner.stale and sum(owner.positions.values()) == 60, task)
    stop.set()
    await task
    published = [a.id for a in ports.sink.alerts]
    assert len(published) == len(set(published))
    reference = Ports()
    await feed(await started(reference), story(60))
    assert published == [a.id for a in reference.sink.alerts]


async def test_idle_tick_lets_a_quiet_event_cool_down_with_the_wall_clock() -> None:
    ports = Ports()
    owner = await started(ports)
    reader = FakeReader.of(story(60))
    later = T0 + timedelta(days=3)
    consumer = PostConsumer(owner, reader, FakeDeadLetters(), ConsumerSettings(batch_size=50, poll_timeout_ms=5),
                            idle_tick_s=0.01, clock=lambda: later)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: any(a.to_level < a.from_level for a in ports.sink.alerts), task)
    stop.set()
    await task
    assert ports.sink.alerts[-1].to_level < ports.sink.alerts[-1].from_level
    assert owner.engine.clock_at == later
    # No replay reproduces a tick: the checkpoint after it holds it, and says so (a standby reloads on it).
    stored = ports.store.checkpoint
    assert stored is not None and stored.generation >= 1 and stored.generation == owner.generation


__all__ = ["FakeAlertLog", "FakeIndex", "FakeSink", "FakeStore", "Ports", "feed", "started", "story"]
