"""The grader writes each graded post's event id onto its posts document, behind the alert path; a graceful stop
(its final checkpoint) leaves every id written. ``post_event_ids=false`` writes none.

Real Kafka and Elasticsearch; the posts family, topics and database are the test's own, deleted afterwards.
"""

from __future__ import annotations

import pytest
from qingfeng.elastic import IndexNames, create_client, delete_family, ensure_index
from qingfeng.kafka import Producer

from tests.services.grader.integration.conftest import MakeSettings, Running
from tests.services.grader.integration.helpers import produce_posts, synthetic_stream

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("enabled", [True, False])
async def test_posts_carry_their_event_once_the_grader_stopped(make_settings: MakeSettings, enabled: bool) -> None:
    settings = make_settings(post_event_ids=enabled, post_event_ids_pending=2)
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
            await running.graceful()
        expected = {
            post_id: event_id
            for post_id in (p.id for p in stream)
            if (event_id := running.app.owner.engine.clusterer.resolve(
                running.app.owner.engine.clusterer.posts.get(post_id) or "") or "")
        }  # fmt: skip
        await es.indices.refresh(index=names.read_alias)
        found = await es.search(
            index=names.read_alias, query={"exists": {"field": "event_id"}}, size=len(stream) + 10, source=["event_id"]
        )
        written = {hit["_id"]: hit["_source"]["event_id"] for hit in found.body["hits"]["hits"]}
        if enabled:
            assert len(expected) > len(stream) // 2, "most posts joined an event"
            assert written == expected, "every graded post carries its live event, and nothing else is written"
        else:
            assert written == {}, "post_event_ids=false writes no event id"
    finally:
        await delete_family(es, names)
        await es.close()
