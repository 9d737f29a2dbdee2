"""Each post indexed once with its event: the indexer joins the grader's assignments (issue 13), and the grader's
index role then writes only what is missing or different.

- an assignment on the topic before the post is indexed: the document is written once (``_version`` 1, one
  ``_seq_no``) with its ``event_id``, and the index role's lookup (once refreshed) finds it done
  (``posts_already_assigned``) without writing it again;
- the grader publishing, but no assignment for a post: the batch waits until the post's deadline, not longer;
- no grader publishing: the batch does not wait;
- a re-assignment after the post was indexed: the index role updates it, the last assignment wins;
- the grader ahead of the indexer (its stub first): the final document has the post's text and its event id;
- an indexer far behind (its posts older than the reader's look-back): the reader seeks back to the indexer's
  position and the posts are indexed with their events.

Real Kafka and Elasticsearch: topics, posts family and events family are the test's own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import IndexNames, delete_family, ensure_index
from qingfeng.kafka import OutgoingRecord, Producer, Record, ensure_topics
from qingfeng.kafka.security import client_kwargs
from qingfeng.kafka.topics import TopicSpec
from qingfeng.v1 import post_event_pb2, post_pb2

from services.collector.indexer import post_document
from services.collector.settings import CollectorSettings
from services.grader.adapters.elastic import ElasticEventIndex
from services.grader.adapters.kafka import POST_EVENTS_EVENT_TYPE, POST_EVENTS_KEY
from services.grader.adapters.post_events import ElasticPostEvents
from services.grader.app import POST_EVENTS_PARTITIONS
from services.grader.indexer import GraderIndexer
from services.grader.settings import GraderTopics, IndexRoleSettings
from tests.services.collector.integration.helpers import IndexerKit

pytestmark = pytest.mark.integration


def _post(n: int) -> post_pb2.Post:
    return IndexerKit.post(n)


def _records(posts: list[post_pb2.Post]) -> list[Record]:
    return IndexerKit.records(posts, now=True)  # collected just now: the deadline is ahead


async def _publish(settings: CollectorSettings, pairs: list[tuple[str, str]], n: int = 0) -> None:
    message = post_event_pb2.PostEventAssignments(
        assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
    )
    topic = settings.indexer.post_events_topic
    async with Producer(settings.kafka) as producer:
        await producer.send_many([OutgoingRecord(topic, POST_EVENTS_KEY, message, POST_EVENTS_EVENT_TYPE, f"pe:{n}")])


class Joined:
    """The indexer with its post-events reader running, and the grader's index role (its ``handle`` only)."""

    def __init__(
        self, settings: CollectorSettings, es: AsyncElasticsearch, names: IndexNames, *, missing_wait_s: float = 60.0
    ) -> None:
        self.missing_wait_s = missing_wait_s
        self.settings = settings
        self.es = es
        self.names = names
        self.stop = asyncio.Event()

    async def __aenter__(self) -> Joined:
        self.producer = Producer(self.settings.kafka)
        await self.producer.start()
        self.indexer = IndexerKit(self.settings).indexer(self.es, self.names.write_alias, self.producer)
        assert self.indexer.event_ids is not None
        self.reader = asyncio.create_task(self.indexer.event_ids.run(self.stop))
        self.post_events = ElasticPostEvents(self.es, self.names, refresh=True, poll_s=0.2)
        prefix = self.settings.elasticsearch.index_prefix
        self.role = GraderIndexer(
            ElasticEventIndex(self.es, IndexNames(prefix, "events").write_alias),
            self.post_events,
            self.producer,
            kafka=self.settings.kafka,
            topics=GraderTopics(
                events=f"{prefix}.events",
                post_events=self.settings.indexer.post_events_topic,
                deadletter=self.settings.topics.deadletter,
            ),
            group_id=f"{prefix}-index",
            settings=IndexRoleSettings(assign_delay_s=0.0, missing_wait_s=self.missing_wait_s),
        )
        return self

    async def ready(self) -> None:
        assert self.indexer.event_ids is not None
        await asyncio.wait_for(self.indexer.event_ids.ready.wait(), 30)

    async def known(self, post_id: str, event_id: str) -> None:
        """Until the reader has read ``post_id``'s assignment ``event_id``."""
        assert self.indexer.event_ids is not None
        for _ in range(300):
            if self.indexer.event_ids.known.get(post_id) == event_id:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{post_id} -> {event_id} never read")

    async def role_handles(self, pairs: list[tuple[str, str]]) -> None:
        """The index role's handling of one post-events record holding ``pairs`` (as published just now)."""
        message = post_event_pb2.PostEventAssignments(
            assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
        )
        topic = self.settings.indexer.post_events_topic
        now_ms = int(time.time() * 1000)
        await self.role.handle([Record(topic, 0, 0, POST_EVENTS_KEY.encode(), message.SerializeToString(), (), now_ms)])

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 10)
        await self.producer.stop()


@pytest.fixture
async def names(settings: CollectorSettings, es: AsyncElasticsearch) -> AsyncIterator[IndexNames]:
    topic = settings.indexer.post_events_topic
    await ensure_topics(settings.kafka, [TopicSpec(topic, partitions=POST_EVENTS_PARTITIONS)])  # as the grader does
    yield await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    await delete_family(es, IndexNames(settings.elasticsearch.index_prefix, "events"))


async def _doc(es: AsyncElasticsearch, names: IndexNames, post_id: str) -> dict[str, object]:
    return dict((await es.get(index=names.write_alias, id=post_id)).body)


async def test_a_post_with_its_assignment_is_indexed_once_and_not_again_by_the_index_role(
    settings: CollectorSettings, es: AsyncElasticsearch, names: IndexNames
) -> None:
    posts = [_post(0), _post(1)]
    async with Joined(settings, es, names) as joined:
        await joined.ready()
        await _publish(settings, [(posts[0].id, "ev-a"), (posts[1].id, "ev-b")])
        await joined.known(posts[1].id, "ev-b")
        await joined.indexer.handle(_records(posts))
        assert joined.indexer.indexed == 2 and joined.indexer.with_event == 2
        first = await _doc(es, names, posts[0].id)
        assert first["_version"] == 1  # one write: created with its event id
        source = first["_source"]
        assert isinstance(source, dict) and source.pop("event_id") == "ev-a"
        assert source == post_document(posts[0])
        # The index role, later: both found done by the realtime lookup (not refreshed yet), nothing written.
        await joined.role_handles([(posts[0].id, "ev-a"), (posts[1].id, "ev-b")])
        assert joined.role.posts_already_assigned == 2 and joined.post_events.written == 0
        assert joined.role.posts_assigned == 2
        after = await _doc(es, names, posts[0].id)
        assert (after["_version"], after["_seq_no"]) == (1, first["_seq_no"])


async def test_the_wait_is_bounded_by_the_deadline_and_skipped_without_a_grader(
    settings: CollectorSettings, es: AsyncElasticsearch, names: IndexNames
) -> None:
    wait_s = settings.indexer.event_wait_s
    assert wait_s >= 1.5
    async with Joined(settings, es, names) as joined:
        await joined.ready()
        # No grader has published: the batch is written at once, without event ids.
        started = time.monotonic()
        await joined.indexer.handle(_records([_post(0)]))
        assert time.monotonic() - started < wait_s / 2
        assert joined.indexer.with_event == 0
        # The grader publishes, but not this post: the batch waits for it until its deadline, then goes without.
        await _publish(settings, [("weibo:idx:other", "ev-x")])
        await joined.known("weibo:idx:other", "ev-x")
        started = time.monotonic()
        await joined.indexer.handle(_records([_post(1)]))
        waited = time.monotonic() - started
        assert wait_s * 0.8 <= waited <= wait_s + 2.0, waited
        source = (await _doc(es, names, _post(1).id))["_source"]
        assert isinstance(source, dict) and "event_id" not in source
        # ... and its assignment, arriving while a batch waits, ends the wait early.
        later = asyncio.create_task(joined.indexer.handle(_records([_post(2)])))
        await asyncio.sleep(0.3)
        await _publish(settings, [(_post(2).id, "ev-late")], n=1)
        started = time.monotonic()
        await later
        assert time.monotonic() - started < wait_s
        source = (await _doc(es, names, _post(2).id))["_source"]
        assert isinstance(source, dict) and source["event_id"] == "ev-late"


async def test_a_reassignment_after_indexing_is_written_by_the_index_role(
    settings: CollectorSettings, es: AsyncElasticsearch, names: IndexNames
) -> None:
    post = _post(3)
    async with Joined(settings, es, names) as joined:
        await joined.ready()
        await _publish(settings, [(post.id, "ev-a")])
        await joined.known(post.id, "ev-a")
        await joined.indexer.handle(_records([post]))
        # ev-a merged into ev-b after the post was indexed: the grader re-assigns it.
        await joined.role_handles([(post.id, "ev-a")])
        await joined.role_handles([(post.id, "ev-b")])
        assert joined.role.posts_already_assigned == 1 and joined.post_events.written == 1
        doc = await _doc(es, names, post.id)
        source = doc["_source"]
        assert isinstance(source, dict) and source["event_id"] == "ev-b" and source["text"] == post.text
        assert doc["_version"] == 2


async def test_a_stub_written_first_is_completed_by_the_indexer(
    settings: CollectorSettings, es: AsyncElasticsearch, names: IndexNames
) -> None:
    post = _post(4)
    async with Joined(settings, es, names, missing_wait_s=0.0) as joined:  # no wait for the post: a stub at once
        await joined.ready()
        # The grader's index role ahead of the indexer: the post is nowhere yet, so a stub {id, event_id}.
        await joined.role_handles([(post.id, "ev-s")])
        assert joined.post_events.written == 1 and joined.role.posts_already_assigned == 0
        await joined.indexer.handle(_records([post]))  # no assignment on the topic: written without event_id
        source = (await _doc(es, names, post.id))["_source"]
        assert isinstance(source, dict) and source.pop("event_id") == "ev-s"
        assert source == post_document(post)


async def test_an_indexer_far_behind_gets_the_assignments_of_its_own_position(
    settings: CollectorSettings, es: AsyncElasticsearch, names: IndexNames
) -> None:
    """Assignments published 10 minutes ago (past the 60 s look-back, and 300 newer ones beyond the map's 200): the
    reader seeks back to the indexer's position and the old batch's posts are indexed with their events."""
    settings = settings.model_copy(update={"indexer": settings.indexer.model_copy(update={"event_ids_max": 200})})
    topic = settings.indexer.post_events_topic
    old_s = time.time() - 600
    old_posts = [IndexerKit.post(n) for n in range(20, 25)]
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka))  # CreateTime set by hand: published long ago
    await producer.start()
    try:
        for n, post in enumerate(old_posts):
            value = _pairs([(post.id, f"ev-old-{n}")]).SerializeToString()
            await producer.send_and_wait(
                topic, value, key=POST_EVENTS_KEY.encode(), timestamp_ms=int(old_s * 1000) + 500
            )
        newer = _pairs([(f"weibo:idx:new{n}", "ev-new") for n in range(300)]).SerializeToString()
        await producer.send_and_wait(topic, newer, key=POST_EVENTS_KEY.encode())
    finally:
        await producer.stop()
    async with Joined(settings, es, names) as joined:
        await joined.ready()
        tail = joined.indexer.event_ids
        assert tail is not None and old_posts[0].id not in tail.known
        stamp = int(old_s * 1000)
        batch = [Record("t", 0, n, p.id.encode(), p.SerializeToString(), (), stamp) for n, p in enumerate(old_posts)]
        await joined.indexer.handle(batch)
        assert tail.resyncs == 1
        for n, post in enumerate(old_posts):
            source = (await _doc(es, names, post.id))["_source"]
            assert isinstance(source, dict) and source.get("event_id") == f"ev-old-{n}", post.id
        assert tail.paused(), "read no further than ahead_s past the old position"


def _pairs(pairs: list[tuple[str, str]]) -> post_event_pb2.PostEventAssignments:
    return post_event_pb2.PostEventAssignments(
        assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
    )
