"""The indexer's serialised documents against the real Elasticsearch: a post is created as its document, and a post
the grader already wrote an ``event_id`` onto (indexed before it, or again) keeps that id (create, 409, update with
``doc_as_upsert``), with every field of the post's document as ``post_document`` gives it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import bulk_index, ensure_index
from qingfeng.kafka import Producer, Record
from qingfeng.v1 import common_pb2, post_pb2

from services.collector.indexer import PostIndexer, post_document
from services.collector.settings import CollectorSettings

pytestmark = pytest.mark.integration


def _post(n: int) -> post_pb2.Post:
    p = post_pb2.Post(
        id=f"weibo:merge:{n}",
        source_id="merge",
        source_kind=common_pb2.SOURCE_KIND_WEIBO_API,
        native_id=str(n),
        text=f"某局长涉嫌受贿{n}",
        text_simplified=f"某局长涉嫌受贿{n}",
        keywords=["受贿"],
    )
    p.created_at.FromDatetime(datetime(2025, 3, 1, 8, n, tzinfo=UTC).replace(tzinfo=None))
    p.enrichment.relevance = 0.5
    p.enrichment.lexicon_version = "v1"
    if n == 1:
        p.enrichment.regions.add(code="110000", name="北京市")
    return p


def _records(posts: list[post_pb2.Post]) -> list[Record]:
    return [Record("t", 0, n, p.id.encode(), p.SerializeToString(), (), 0) for n, p in enumerate(posts)]


async def test_indexed_posts_are_their_documents_and_keep_the_graders_event_id(
    settings: CollectorSettings, es: AsyncElasticsearch
) -> None:
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    posts = [_post(n) for n in range(3)]
    # The grader wrote post 0's event before the indexer saw the post.
    assert (await bulk_index(es, names.write_alias, [(posts[0].id, {"event_id": "e-0"})], merge=True)).ok
    async with Producer(settings.kafka) as producer:
        indexer = PostIndexer(
            es, names.write_alias, producer, kafka=settings.kafka, topics=settings.topics, settings=settings.indexer
        )
        await indexer.handle(_records(posts))
        assert indexer.indexed == 3
        # The grader writes post 2's event, then the post is indexed again (a redelivery): both ids stay.
        assert (await bulk_index(es, names.write_alias, [(posts[2].id, {"event_id": "e-2"})], merge=True)).ok
        await indexer.handle(_records(posts))
        assert indexer.indexed == 6
    await es.indices.refresh(index=names.read_alias)
    for post, event_id in zip(posts, ["e-0", None, "e-2"], strict=True):
        source = (await es.get(index=names.write_alias, id=post.id)).body["_source"]
        assert source.pop("event_id", None) == event_id
        assert source == post_document(post)
    assert (await es.count(index=names.read_alias)).body["count"] == 3
