"""The index role waits for a post the collector's indexer has not written yet, instead of writing a stub for it.

A stub (``{id, event_id}`` upserted before the post exists) turns the indexer's own ``create`` into a conflict and a
second, costlier write; once the indexer lagged by a few seconds every post went that way in the soak. Real
Elasticsearch; the posts family is the test's own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch, ConflictError
from prometheus_client import REGISTRY
from qingfeng.elastic import IndexNames, create_client, delete_family, ensure_index
from qingfeng.settings import ElasticsearchSettings

from services.grader.adapters.post_events import ElasticPostEvents

pytestmark = pytest.mark.integration


@pytest.fixture
async def posts(es_url: str) -> AsyncIterator[tuple[AsyncElasticsearch, IndexNames]]:
    es = create_client(ElasticsearchSettings(url=es_url, request_timeout_s=30))
    prefix = f"qftest-{uuid.uuid4().hex[:10]}"
    try:
        names = await ensure_index(es, prefix, "posts", cjk="unigram")
        yield es, names
    finally:
        await delete_family(es, IndexNames(prefix, "posts"))
        await es.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _indexer_creates(es: AsyncElasticsearch, names: IndexNames, post_id: str, event_id: str) -> None:
    """What the collector's indexer does first: ``create`` the whole post with the event id it knows."""
    document = {"id": post_id, "text": "局长受贿", "event_id": event_id}
    await es.create(index=names.write_alias, id=post_id, document=document)


async def test_a_post_indexed_late_is_waited_for_and_written_once(
    posts: tuple[AsyncElasticsearch, IndexNames],
) -> None:
    es, names = posts
    writer = ElasticPostEvents(es, names, poll_s=0.2)
    task = asyncio.create_task(writer.assign({"late": "ev-1"}, wait_until=time.time() + 30))
    await asyncio.sleep(1.0)
    assert not task.done(), "still waiting for the post"
    await _indexer_creates(es, names, "late", "ev-1")  # no conflict: nothing was written before it
    await asyncio.wait_for(task, 15)  # found after the next refresh (posts refresh every 5 s)
    doc = (await es.get(index=names.write_alias, id="late")).body
    assert doc["_source"] == {"id": "late", "text": "局长受贿", "event_id": "ev-1"}
    assert doc["_version"] == 1, "written once, by the indexer"
    assert (writer.waited, writer.already_assigned, writer.stubs, writer.written) == (1, 1, 0, 0)


async def test_past_its_time_a_post_gets_a_stub_and_the_indexer_then_conflicts(
    posts: tuple[AsyncElasticsearch, IndexNames],
) -> None:
    es, names = posts
    writer = ElasticPostEvents(es, names, poll_s=0.2)
    stubs_before = _metric("qingfeng_grader_post_event_ids_total", outcome="stub")
    started = time.monotonic()
    await writer.assign({"never": "ev-2"}, wait_until=time.time() + 0.6)
    assert 0.5 <= time.monotonic() - started < 10, "waited until its time, then wrote"
    assert (writer.waited, writer.stubs, writer.written) == (1, 1, 1)
    assert _metric("qingfeng_grader_post_event_ids_total", outcome="stub") == stubs_before + 1, "on /metrics"
    stub = (await es.get(index=names.write_alias, id="never")).body["_source"]
    assert stub == {"id": "never", "event_id": "ev-2"}
    with pytest.raises(ConflictError):  # what waiting avoids: the indexer's create now needs a second write
        await _indexer_creates(es, names, "never", "ev-2")


async def test_a_post_indexed_with_another_event_is_updated_once_refreshed(
    posts: tuple[AsyncElasticsearch, IndexNames],
) -> None:
    es, names = posts
    await _indexer_creates(es, names, "merged", "ev-old")
    await es.indices.refresh(index=names.write_alias)
    writer = ElasticPostEvents(es, names, poll_s=0.2)
    await writer.assign({"merged": "ev-new"}, wait_until=time.time() + 30)
    doc = (await es.get(index=names.write_alias, id="merged")).body
    assert doc["_source"]["event_id"] == "ev-new" and doc["_version"] == 2
    assert (writer.waited, writer.stubs, writer.written) == (0, 0, 1)
