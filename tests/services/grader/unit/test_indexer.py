"""The index role's batch handler (``indexer.GraderIndexer.handle``) and the grade role's assignment records
(``adapters/kafka.KafkaOutputSink``), over in-memory fakes of Elasticsearch and the producer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from qingfeng.kafka import Delivery, OutgoingRecord, Record
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import event_pb2, post_event_pb2, post_pb2

from services.grader.adapters.kafka import (
    ASSIGNMENTS_PER_RECORD,
    POST_EVENTS_EVENT_TYPE,
    POST_EVENTS_KEY,
    KafkaOutputSink,
)
from services.grader.errors import Unavailable
from services.grader.indexer import GraderIndexer
from services.grader.ports import Outputs
from services.grader.settings import ConsumerSettings, GraderSettings, GraderTopics, IndexRoleSettings
from tests.services.grader.unit.test_state import FakeIndex

TOPICS = GraderTopics(events="t.events.v1", deadletter="t.deadletter.v1")


@dataclass
class FakeProducer:
    """Keeps what was sent; each record gets the next offset of its topic (partition 0)."""

    sent: list[OutgoingRecord] = field(default_factory=list)
    max_request_size: int = 1_000_000

    async def send_many(self, records: Sequence[OutgoingRecord]) -> list[Delivery]:
        out = []
        for r in records:
            offset = sum(1 for s in self.sent if s.topic == r.topic)
            self.sent.append(r)
            out.append(Delivery(topic=r.topic, partition=0, offset=offset))
        return out


@dataclass
class FakePostEvents:
    docs: dict[str, str] = field(default_factory=dict)
    calls: list[list[tuple[str, str]]] = field(default_factory=list)
    fail: bool = False
    already_assigned: int = 0

    async def assign(self, assignments: Mapping[str, str], *, wait_until: float | None = None) -> None:
        if self.fail:
            raise Unavailable("elasticsearch down")
        self.calls.append(list(assignments.items()))
        self.docs.update(assignments)


def _indexer(events: FakeIndex, posts: FakePostEvents | None, producer: FakeProducer) -> GraderIndexer:
    return GraderIndexer(events, posts, producer, kafka=KafkaSettings(), topics=TOPICS, group_id="g",  # type: ignore[arg-type]
                         settings=IndexRoleSettings())  # fmt: skip


_offsets: dict[str, int] = {}


def _record(topic: str, value: bytes | None, key: str = "k") -> Record:
    offset = _offsets[topic] = _offsets.get(topic, -1) + 1
    return Record(topic, 0, offset, key.encode(), value, (), 0)


def _event(event_id: str, version: int, title: str = "") -> Record:
    return _record(TOPICS.events, event_pb2.Event(id=event_id, version=version, title=title).SerializeToString(),
                   event_id)  # fmt: skip


def _assigned(*pairs: tuple[str, str]) -> Record:
    message = post_event_pb2.PostEventAssignments(
        assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
    )
    return _record(TOPICS.post_events_topic, message.SerializeToString(), POST_EVENTS_KEY)


async def test_the_last_snapshot_per_event_and_the_last_assignment_per_post_win() -> None:
    events, posts, producer = FakeIndex(), FakePostEvents(), FakeProducer()
    indexer = _indexer(events, posts, producer)
    batch = [
        _event("ev-a", 1, "first"),
        _assigned(("p1", "ev-a"), ("p2", "ev-a")),
        _event("ev-b", 1),
        _event("ev-a", 2, "second"),
        _assigned(("p3", "ev-b"), ("p1", "ev-b")),  # ev-a merged into ev-b: p1 re-assigned
    ]
    await indexer.handle(batch)
    assert {k: (v.version, v.title) for k, v in events.docs.items()} == {"ev-a": (2, "second"), "ev-b": (1, "")}
    assert posts.docs == {"p1": "ev-b", "p2": "ev-a", "p3": "ev-b"}
    assert posts.calls == [[("p2", "ev-a"), ("p3", "ev-b"), ("p1", "ev-b")]], "one write, the re-assignment last"
    assert (indexer.events_indexed, indexer.posts_assigned, producer.sent) == (2, 3, [])


async def test_a_later_batch_re_assigns_a_post() -> None:
    posts = FakePostEvents()
    indexer = _indexer(FakeIndex(), posts, FakeProducer())
    await indexer.handle([_assigned(("p1", "ev-a"))])
    await indexer.handle([_assigned(("p1", "ev-b"))])
    assert posts.docs == {"p1": "ev-b"}


async def test_bad_records_are_dead_lettered_with_their_reason_and_the_rest_is_written() -> None:
    events, posts, producer = FakeIndex(), FakePostEvents(), FakeProducer()
    indexer = _indexer(events, posts, producer)
    batch = [
        _record(TOPICS.events, b"\xff\xfe not an event"),
        _event("", 3),  # decodes, but names no event
        _event("ev-a", 1),
        _record(TOPICS.post_events_topic, None),  # a tombstone
        _assigned(("p1", "ev-a"), ("", "ev-a"), ("p2", "")),  # half-empty pairs are skipped
    ]
    await indexer.handle(batch)
    assert set(events.docs) == {"ev-a"} and posts.docs == {"p1": "ev-a"}
    letters = [post_pb2.DeadLetter.FromString(r.message.SerializeToString()) for r in producer.sent]
    assert [r.topic for r in producer.sent] == [TOPICS.deadletter] * 3
    assert sorted((letter.topic, letter.reason) for letter in letters) == sorted(
        [
            (TOPICS.events, post_pb2.DEAD_LETTER_REASON_UNDECODABLE),
            (TOPICS.events, post_pb2.DEAD_LETTER_REASON_INVALID),
            (TOPICS.post_events_topic, post_pb2.DEAD_LETTER_REASON_UNDECODABLE),
        ]
    )
    assert all(letter.message and letter.source == "grader-index" for letter in letters)
    assert indexer.dead_lettered == 3


@pytest.mark.parametrize("down", ["events", "posts"])
async def test_an_elasticsearch_failure_fails_the_batch_so_nothing_is_committed(down: str) -> None:
    events, posts = FakeIndex(fail=down == "events"), FakePostEvents(fail=down == "posts")
    indexer = _indexer(events, posts, FakeProducer())
    with pytest.raises(Unavailable):
        await indexer.handle([_event("ev-a", 1), _assigned(("p1", "ev-a"))])
    assert indexer.events_indexed == indexer.posts_assigned == 0  # run_batches commits only after handle returned


async def test_without_post_event_ids_only_the_events_topic_is_read() -> None:
    indexer = _indexer(FakeIndex(), None, FakeProducer())
    assert indexer.topics == [TOPICS.events]
    assert _indexer(FakeIndex(), FakePostEvents(), FakeProducer()).topics == [TOPICS.events, TOPICS.post_events_topic]


async def test_the_sink_publishes_assignments_in_ordered_chunks_with_stable_ids() -> None:
    producer = FakeProducer()
    sink = KafkaOutputSink(producer, alerts_topic="a", events_topic="e", post_events_topic="pe")  # type: ignore[arg-type]
    count = ASSIGNMENTS_PER_RECORD + 5
    assignments = {f"p{i}": f"ev-{i % 7}" for i in range(count)}
    await sink.publish(Outputs(assignments=assignments))
    records = [r for r in producer.sent if r.topic == "pe"]
    assert len(records) == 2 and {r.key for r in records} == {POST_EVENTS_KEY}
    assert {r.event_type for r in records} == {POST_EVENTS_EVENT_TYPE}
    decoded = [(a.post_id, a.event_id) for r in records for a in r.message.assignments]  # type: ignore[attr-defined]
    assert decoded == list(assignments.items()), "every pair once, in the order applied"
    again = FakeProducer()
    await KafkaOutputSink(again, alerts_topic="a", events_topic="e", post_events_topic="pe").publish(  # type: ignore[arg-type]
        Outputs(assignments=assignments)
    )
    assert [r.event_id for r in again.sent] == [r.event_id for r in records], "a replay carries the same ids"
    assert records[0].event_id != records[1].event_id


async def test_the_sink_without_a_post_events_topic_publishes_no_assignments() -> None:
    producer = FakeProducer()
    sink = KafkaOutputSink(producer, alerts_topic="a", events_topic="e")  # type: ignore[arg-type]
    await sink.publish(Outputs(assignments={"p1": "ev-a"}))
    assert producer.sent == []


def test_names_derive_from_the_events_topic_and_the_grader_group(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GraderTopics().post_events_topic == "qingfeng.post-events.v1"
    assert GraderTopics(events="qftest.abc.events.v1").post_events_topic == "qftest.abc.post-events.v1"
    assert GraderTopics(events="qf-e2e-1.events").post_events_topic == "qf-e2e-1.post-events"
    assert GraderTopics(events="elsewhere", post_events="mine").post_events_topic == "mine"
    assert GraderSettings().index_group_id == "grader-index"
    # From the environment too, where pydantic-settings merges the values into the defaults (e2e suites, benches).
    monkeypatch.setenv("QF_GRADER_TOPICS__EVENTS", "qf-e2e-2.events")
    monkeypatch.setenv("QF_GRADER_CONSUMER__GROUP_ID", "qf-e2e-2-grader")
    from_env = GraderSettings()
    assert from_env.topics.post_events_topic == "qf-e2e-2.post-events"
    assert from_env.index_group_id == "qf-e2e-2-grader-index"
    monkeypatch.delenv("QF_GRADER_TOPICS__EVENTS")
    monkeypatch.delenv("QF_GRADER_CONSUMER__GROUP_ID")
    assert GraderSettings(consumer=ConsumerSettings(group_id="run-7-grader")).index_group_id == "run-7-grader-index"
    assert GraderSettings(index=IndexRoleSettings(group_id="own")).index_group_id == "own"
    assert GraderSettings().role == "all"


async def test_the_events_index_is_prepared_in_the_loop_and_retried_until_elasticsearch_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    import qingfeng.kafka.consumer as module  # the runner the index role resumes (run_batches_resuming)

    attempts: list[str] = []
    consumed: list[list[str]] = []

    async def prepare() -> None:
        attempts.append("prepare")
        if len(attempts) < 3:
            raise ConnectionError("elasticsearch: connection refused")

    async def fake_run_batches(kafka: object, topics: list[str], group: str, handle: object, stop: asyncio.Event,
                               **_: object) -> None:  # fmt: skip
        consumed.append(topics)

    monkeypatch.setattr(module, "run_batches", fake_run_batches)
    indexer = GraderIndexer(FakeIndex(), FakePostEvents(), FakeProducer(), kafka=KafkaSettings(), topics=TOPICS,  # type: ignore[arg-type]
                            group_id="g", settings=IndexRoleSettings(retry_backoff_s=0.001, retry_backoff_max_s=0.002),
                            prepare=prepare)  # fmt: skip
    await asyncio.wait_for(indexer.run(asyncio.Event()), 5)
    assert attempts == ["prepare"] * 3 and indexer.failures == 2, "retried with backoff, never fatal"
    assert consumed == [[TOPICS.events, TOPICS.post_events_topic]], "consumes only once the index exists"
