"""Posts carry their event, written by the grader's index role from what the grade role published on Kafka.

- role ``all``: after a graceful stop every graded post's document carries its live event (``post_event_ids=false``
  publishes and writes none);
- the index role alone: assignments and snapshots published in order end in Elasticsearch with the newer event
  id of a re-assigned post (an event merged into another) and the last snapshot of each event;
- the grade role with Elasticsearch unreachable (a closed loopback port) is ready and alerts; an index role started
  afterwards writes the events and the posts' event ids it published meanwhile.

Real Kafka and Elasticsearch; the posts family, topics and database are the test's own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import IndexNames, create_client, delete_family, ensure_index
from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.settings import ElasticsearchSettings
from qingfeng.v1 import event_pb2, post_event_pb2

from services.grader.adapters.kafka import EVENT_EVENT_TYPE, POST_EVENTS_EVENT_TYPE, POST_EVENTS_KEY
from services.grader.app import build_index_role
from services.grader.settings import GraderSettings
from tests.services.grader.integration.conftest import MakeSettings, Running, index_lag
from tests.services.grader.integration.helpers import produce_posts, read_alerts, synthetic_stream

pytestmark = pytest.mark.integration


async def _event_ids(es: AsyncElasticsearch, names: IndexNames, size: int) -> dict[str, str]:
    await es.indices.refresh(index=names.read_alias)
    found = await es.search(index=names.read_alias, query={"exists": {"field": "event_id"}}, size=size,
                            source=["event_id"])  # fmt: skip
    return {hit["_id"]: hit["_source"]["event_id"] for hit in found.body["hits"]["hits"]}


def _live_events(running: Running, post_ids: list[str]) -> dict[str, str]:
    clusterer = running.app.owner.engine.clusterer
    return {p: e for p in post_ids if (e := clusterer.resolve(clusterer.posts.get(p) or "") or "")}


class IndexRole:
    """The index role alone (role ``index``), its loop as a task."""

    def __init__(self, settings: GraderSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()

    async def __aenter__(self) -> IndexRole:
        role, self.cleanups = await build_index_role(self.settings)
        self.indexer = role.indexer
        self.task = asyncio.create_task(role.indexer.run(self.stop))
        return self

    async def caught_up(self, timeout_s: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while await index_lag(self.settings) > 0:
            assert not self.task.done(), self.task
            assert loop.time() < deadline, f"index role behind after {timeout_s:.0f} s"
            await asyncio.sleep(0.2)

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 30)
        for cleanup in reversed(self.cleanups):
            await cleanup()


@pytest.mark.parametrize("enabled", [True, False])
async def test_posts_carry_their_event_once_the_grader_stopped(make_settings: MakeSettings, enabled: bool) -> None:
    settings = make_settings(post_event_ids=enabled)
    es = create_client(settings.elasticsearch)
    names = IndexNames(settings.elasticsearch.index_prefix, "posts")
    try:
        await ensure_index(es, settings.elasticsearch.index_prefix, "posts", cjk="unigram")
        stream = synthetic_stream()
        running = await Running.start(settings)
        producer = Producer(settings.kafka)
        await producer.start()
        try:
            await produce_posts(producer, settings.topics.posts, stream)
            await running.wait_posts(len(stream))
        finally:
            await producer.stop()
            await running.graceful()  # the grade loop first, then the index role once it wrote everything
        expected = _live_events(running, [p.id for p in stream])
        written = await _event_ids(es, names, len(stream) + 10)
        if enabled:
            assert len(expected) > len(stream) // 2, "most posts joined an event"
            assert written == expected, "every graded post carries its live event, and nothing else is written"
        else:
            assert written == {}, "post_event_ids=false writes no event id"
    finally:
        await delete_family(es, names)
        await es.close()


async def test_the_index_role_applies_assignments_in_order_so_a_reassignment_ends_with_the_newer_event(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(role="index")
    prefix = settings.elasticsearch.index_prefix
    es = create_client(settings.elasticsearch)
    posts = IndexNames(prefix, "posts")
    try:
        posts_alias = (await ensure_index(es, prefix, "posts", cjk="unigram")).write_alias
        await es.index(index=posts_alias, id="p-indexed", document={"id": "p-indexed", "text": "已索引"}, refresh=True)
        async with IndexRole(settings) as role:
            producer = Producer(settings.kafka)
            await producer.start()
            try:
                for version, title in ((1, "旧标题"), (2, "新标题")):
                    snapshot = event_pb2.Event(id="ev-b", version=version, title=title)
                    await producer.send_many(
                        [OutgoingRecord(settings.topics.events, "ev-b", snapshot, EVENT_EVENT_TYPE, f"ev-b:v{version}")]
                    )
                # Two batches of the grader: p-indexed and p-late join ev-a; then ev-a is merged into ev-b.
                for n, pairs in enumerate(
                    ([("p-indexed", "ev-a"), ("p-late", "ev-a")], [("p-indexed", "ev-b"), ("p-late", "ev-b")])
                ):
                    message = post_event_pb2.PostEventAssignments(
                        assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
                    )
                    record = OutgoingRecord(
                        settings.topics.post_events_topic, POST_EVENTS_KEY, message, POST_EVENTS_EVENT_TYPE, f"pe:{n}"
                    )
                    await producer.send_many([record])
            finally:
                await producer.stop()
            await role.caught_up()
            assert role.indexer.failures == 0
        assert await _event_ids(es, posts, 10) == {"p-indexed": "ev-b", "p-late": "ev-b"}
        kept = await es.get(index=posts.read_alias, id="p-indexed")
        assert kept.body["_source"]["text"] == "已索引", "a partial update: the post's own fields stay"
        events = IndexNames(prefix, "events")
        await es.indices.refresh(index=events.read_alias)
        doc = await es.get(index=events.read_alias, id="ev-b")
        assert doc.body["_source"]["title"] == "新标题"
    finally:
        await delete_family(es, posts)
        await es.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens there


async def test_the_grade_role_alerts_while_elasticsearch_is_unreachable(make_settings: MakeSettings) -> None:
    settings = make_settings(role="grade")
    unreachable = settings.model_copy(
        update={"elasticsearch": ElasticsearchSettings(url=f"http://127.0.0.1:{_closed_port()}",
                                                       index_prefix=settings.elasticsearch.index_prefix)}
    )  # fmt: skip
    es = create_client(settings.elasticsearch)
    posts = IndexNames(settings.elasticsearch.index_prefix, "posts")
    try:
        await ensure_index(es, settings.elasticsearch.index_prefix, "posts", cjk="unigram")
        stream = synthetic_stream()
        running = await Running.start(unreachable)
        assert running.app.indexer is None, "role grade runs no index role"
        try:
            for check in running.app.readiness:
                if check.name != "engine":  # the engine is ready once the loop recovered (below)
                    await check.probe()
            producer = Producer(settings.kafka)
            await producer.start()
            try:
                await produce_posts(producer, settings.topics.posts, stream)
                await running.wait_posts(len(stream))
            finally:
                await producer.stop()
            consumer = running.app.consumer
            assert not running.app.owner.stale and consumer.recoveries == 1, "the start only, never after a failure"
            expected = _live_events(running, [p.id for p in stream])
        finally:
            await running.graceful()
        alerts = await read_alerts(settings.kafka, settings.topics.alerts, expect=1)
        assert alerts and len({a.id for a in alerts}) == len(alerts), "alerts published, none twice"
        assert await index_lag(settings) > 0, "what the grade role published waits on Kafka for the index role"

        # The index role, started now against the real cluster, writes what was published meanwhile.
        async with IndexRole(settings.model_copy(update={"role": "index"})) as role:
            await role.caught_up()
        assert await _event_ids(es, posts, len(stream) + 10) == expected
        events = IndexNames(settings.elasticsearch.index_prefix, "events")
        await es.indices.refresh(index=events.read_alias)
        indexed = await es.count(index=events.read_alias)
        assert indexed.body["count"] >= len({a.event_id for a in alerts})
    finally:
        await delete_family(es, posts)
        await es.close()
